"""The secret leak scan: it finds a planted secret, and finds none after a real lifecycle with failures.

End to end: create (confidential and public profiles), a resend, failures injected into the very calls that carry
secrets (a dropped Key Vault PUT, a 503 on the APIM authorization server PUT, a dropped Auth0 create), removal, a
bad event; then every secret the stand-ins generated is searched for in the captured logs (exception texts
included), every ledger row, every dead-lettered message and the events sent.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from chaos import leak_scan
from devtools.send import build_event, send_events
from devtools.waiting import wait_until
from tests.conftest import customer_status



# -- the scan itself ---------------------------------------------------------------------------------------------
def test_scan_finds_a_planted_secret_in_a_log(tmp_path):
    secret = "s3cr3t-Value_0123456789abcdefXYZ"
    clean = tmp_path / "clean.log"
    clean.write_text("step=keyvault.set_secret outcome=ok name=auth0-client-acme\n")
    planted = tmp_path / "planted.log"
    planted.write_text(f"step=apim.set_authorization_server outcome=error reason='bad body {{\"clientSecret\": "
                       f"\"{secret}\"}}'\n")

    leaks = leak_scan.scan({secret: "auth0 client secret"}, leak_scan.from_files([clean, planted]))

    assert [(leak.kind, leak.where) for leak in leaks] == [("auth0 client secret", "log planted.log")]
    # The report names the secret by a fingerprint, never by its value.
    assert secret not in leaks[0].line() and leaks[0].fingerprint == leak_scan.fingerprint(secret)


def test_scan_finds_escaped_and_url_encoded_forms_and_ignores_short_values():
    secret = 'quote"and/slash+plus=0123456789'
    haystacks = [leak_scan.Haystack("json", json.dumps({"body": secret})),
                 leak_scan.Haystack("form", "client_secret=" + secret.replace('"', "%22").replace("/", "%2F")
                                    .replace("+", "%2B").replace("=", "%3D")),
                 leak_scan.Haystack("short", "abc")]
    leaks = leak_scan.scan({secret: "k", "abc": "too short to be a secret"}, haystacks)
    assert sorted(leak.where for leak in leaks) == ["form", "json"]


# -- end to end ----------------------------------------------------------------------------------------------------
class _LogFile(logging.Handler):
    """Everything a record carries: the message, its exception text and its extra fields."""

    def __init__(self, path: Path):
        super().__init__(logging.INFO)
        self.file = open(path, "w", encoding="utf-8")
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.file.write(self.format(record) + "\n" + repr(record.__dict__) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        super().close()


@pytest.fixture
def captured_log(tmp_path):
    path = tmp_path / "host.log"
    handler = _LogFile(path)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield path
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()


@pytest.fixture
def collector(local_stack):
    c = leak_scan.SecretCollector(local_stack).install()
    yield c
    c.uninstall()


@pytest.mark.timeout(180)
def test_no_secret_leaks_through_a_lifecycle_with_failures(collector, captured_log, app_host, ledger, stack_env,
                                                           local_stack):
    auth0, vault, apim = (local_stack.control(n) for n in ("auth0", "keyvault", "apim"))
    # Failures on the calls that carry a secret, so their error paths are in the logs too.
    auth0.fail_next("clients.create", "drop_after")
    vault.fail_next("secrets.set", "drop_after")
    vault.fail_next("secrets.set", 500, count=3)  # past the SDK's in-call retries: the step fails and is retried
    apim.fail_next("authorization_servers.create_or_update", 503, count=3)

    status = lambda cid: customer_status(ledger, cid)  # noqa: E731
    oem = build_event("created", "leak-oem", profile="oem")
    spa = build_event("created", "leak-spa", profile="partner-spa",
                      redirect_uris=["https://spa.example/callback"])
    bad = build_event("invalid", "leak-bad")
    sent = [oem, spa, bad]
    send_events([oem, spa, bad], stack_env)
    wait_until(lambda: status("leak-oem") == "provisioned" and status("leak-spa") == "provisioned", timeout=90,
               what="both customers provisioned")
    removal = build_event("removed", "leak-oem")
    sent.append(removal)
    send_events([removal], stack_env)
    wait_until(lambda: status("leak-oem") == "removed", timeout=60, what="leak-oem removed")
    wait_until(lambda: any(h.where.startswith("dead-lettered") and bad["id"] in h.text for h in leak_scan.from_queue(
        stack_env["ServiceBusConnection"], stack_env["CUSTOMER_EVENTS_QUEUE"])), timeout=60,
        what="the bad event dead-lettered")

    secrets = collector.collect()
    kinds = {kind for kinds in secrets.values() for kind in kinds.split(" = ")}
    # The scan is only worth something if it knows the secrets: of the removed customer too (its application and
    # subscription are gone from the stand-ins now).
    assert {"auth0 client secret", "auth0 management client secret", "key vault secret value",
            "apim subscription key", "managed identity header"} <= kinds
    assert sum(1 for k in secrets.values() if k == "apim subscription key") >= 4  # 2 customers, 2 keys each
    assert sum(injected for injected in auth0.calls()["injected"].values()) >= 1

    haystacks = leak_scan.from_files([captured_log])
    haystacks += leak_scan.from_ledger(stack_env["LEDGER_CONNECTION"], stack_env["LEDGER_TABLE"])
    haystacks += leak_scan.from_queue(stack_env["ServiceBusConnection"], stack_env["CUSTOMER_EVENTS_QUEUE"])
    results = leak_scan.from_subscription(stack_env["ServiceBusConnection"], "customer-lifecycle", "audit")
    assert any("customer.provisioned" in h.text for h in results)  # the CRM's view is searched too
    haystacks += results
    haystacks += leak_scan.from_events(json.dumps(e) for e in sent)
    assert "outcome=failed" in haystacks[0].text  # the failures were logged, with their reasons
    assert [leak.line() for leak in leak_scan.scan(secrets, haystacks)] == []
