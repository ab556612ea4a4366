"""``opstool backfill`` end to end: a file with bad rows and customers already provisioned by hand, sent through
Service Bus to the local Functions host, interrupted halfway and resumed.

- every bad row is reported with its line number and rule before anything is sent, and never sent;
- after the resumed run every valid customer is provisioned, with one Auth0 application each (0 duplicates), the
  hand-made applications adopted (same client id, marked), their existing subscriptions kept;
- a rerun sends nothing, even without the state file (the ledger says what was sent).

``make test`` runs 30 rows (3 bad, 5 by hand); ``make backfill-big`` runs the issue's 500 rows (3 bad, 20 by hand)
with ``BACKFILL_ROWS=500 BACKFILL_BY_HAND=20``.
"""
from __future__ import annotations

import csv
import io
import os
import re

import pytest

from opstool.backfill import INTERRUPT_ENV
from opstool.cli import main as opstool
from shared.adapters.apim_gateway import ApimGateway
from shared.adapters.auth0_identity import Auth0IdentityProvider
from shared.adapters.credentials import get_credential
from shared.domain import naming
from shared.service_layer.core import MANAGED_BY
from shared.service_layer.ports import ApplicationSpec
from shared.settings import AppSettings

ROWS = int(os.environ.get("BACKFILL_ROWS", "30"))
BY_HAND = int(os.environ.get("BACKFILL_BY_HAND", "5"))
pytestmark = pytest.mark.timeout(120 + ROWS)


def _hand_made(settings, customers: list[str]) -> dict[str, str]:
    """Applications made by hand in Auth0 (no marker), with an API Management subscription made by hand too."""
    auth0 = Auth0IdentityProvider.from_settings(settings)
    gateway = ApimGateway.from_settings(settings, get_credential())
    try:
        made = {}
        for customer in customers:
            app = auth0.create_application(ApplicationSpec(
                name=f"{customer} (by hand)", app_type="non_interactive", grant_types=("client_credentials",),
                token_endpoint_auth_method="client_secret_post", is_first_party=False, token_lifetime=7200,
                client_metadata={"owner": "sales-ops"}))
            made[customer] = app.client_id
            gateway.set_subscription(naming.subscription_id(customer), display_name=f"{customer} (by hand)",
                                     product_id="oem")
        return made
    finally:
        auth0.close()
        gateway.close()


def _write_file(path, hand_made: dict[str, str]) -> tuple[list[str], list[int]]:
    """The customers that should end provisioned, and the line numbers of the bad rows."""
    valid, bad_lines = [], []
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["customerId", "displayName", "profile", "plan", "existingClientId"])
        line = 1
        bad_at = {ROWS // 4: ["bad id!", "Bad Id", "oem", "", ""],
                  ROWS // 2: ["bf-noprofile", "No Profile", "", "", ""],
                  3 * ROWS // 4: ["bf-unknown", "Unknown Profile", "reseller", "", ""]}
        hand = iter(hand_made.items())
        for i in range(ROWS):
            line += 1
            if i in bad_at:
                writer.writerow(bad_at[i])
                bad_lines.append(line)
                continue
            pair = next(hand, None)
            if pair:
                customer, client_id = pair
                writer.writerow([customer, f"{customer} Ltd", "oem", "gold", client_id])
            else:
                customer = f"bf-{i:04d}"
                writer.writerow([customer, f"Customer {i}", "oem", "", ""])
            valid.append(customer)
    return valid, bad_lines


def _run(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        code = opstool(["backfill", *args], out=out, err=err)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def premium_apim(local_stack):
    """A tier with room for an authorization server per customer (Developer allows 10 in all)."""
    from shared.adapters import apim_gateway

    local_stack.control("apim").config(sku="Premium")
    apim_gateway._sku_cache.clear()
    yield
    local_stack.control("apim").config(sku="Developer")
    apim_gateway._sku_cache.clear()


def test_backfill_with_bad_rows_hand_made_customers_and_an_interruption(premium_apim, app_host, ledger, stack_env,
                                                                       local_stack, tmp_path):
    settings = AppSettings.load(stack_env)
    hand_made = _hand_made(settings, [f"bf-hand-{i:03d}" for i in range(BY_HAND)])
    path = tmp_path / "customers.csv"
    valid, bad_lines = _write_file(path, hand_made)
    opts = ["--rate", "50", "--max-pending", "16", "--wait", "60", "--yes"]

    # Run 1: interrupted halfway (as Ctrl-C). Every bad row is reported first, with its line and rule.
    half = len(valid) // 2
    code, out, err = _run(str(path), *opts, env={INTERRUPT_ENV: str(half)})
    assert code == 1
    reported = [int(m) for m in re.findall(r"^line (\d+) .*: invalid: ", err, re.M)]
    assert reported == bad_lines
    first_lines = err.splitlines()[:3]
    assert all(": invalid: " in text for text in first_lines), err
    assert "data.profile: is required" in err and "unknown profile 'reseller'" in err
    assert "data.customerId: must be 1-64 characters" in err
    assert "interrupted" in err
    state = path.with_name(path.name + ".backfill-state.jsonl")
    assert len(state.read_text().splitlines()) == half

    # Run 2: resumes, sends the rest only, follows them in the ledger.
    code, out, err = _run(str(path), *opts)
    assert len(state.read_text().splitlines()) == len(valid)
    assert f"sent:         {len(valid) - half} this run" in out
    assert f"provisioned:  {len(valid)} ({len(valid)} by this file" in out, out + err
    assert "failed:       0" in out and "pending:      0" in out and "invalid rows: 3" in out
    assert code == 1  # the bad rows were not sent

    apps = [c for c in local_stack.control("auth0").state()["clients"]
            if (c.get("client_metadata") or {}).get("customer_id")]
    per_customer: dict[str, list[str]] = {}
    for c in apps:
        per_customer.setdefault(c["client_metadata"]["customer_id"], []).append(c["client_id"])
    assert sorted(per_customer) == sorted(valid)
    assert all(len(ids) == 1 for ids in per_customer.values()), "duplicates"
    for customer, client_id in hand_made.items():
        assert per_customer[customer] == [client_id]
        client = next(c for c in apps if c["client_id"] == client_id)
        assert client["client_metadata"] == {"owner": "sales-ops", "customer_id": customer, "profile": "oem",
                                             "managed_by": MANAGED_BY}
        assert client["name"] == f"{customer} (by hand)"
        record = ledger.get_customer(customer)[0]
        assert record.status == "provisioned" and record.auth0_client_id == client_id
    assert all(ledger.get_customer(c)[0].status == "provisioned" for c in valid)
    subscriptions = local_stack.apim.dump_state()["subscriptions"]
    assert sum(1 for s in subscriptions.values() if s["properties"]["state"] == "active") == len(valid)

    # Run 3: nothing sent, even without the state file (the ledger knows every event of this file): no audit row
    # counts another delivery.
    deliveries = {(c, a.event_id): a.attempts for c in valid for a in ledger.list_audit(c)}
    state.unlink()
    code, out, err = _run(str(path), *opts)
    assert not state.exists() or state.read_text() == ""
    assert "sent:         0 this run" in out and f"provisioned:  {len(valid)}" in out
    assert {(c, a.event_id): a.attempts for c in valid for a in ledger.list_audit(c)} == deliveries

    code, out, err = _run(str(path), "--dry-run", *opts)
    assert out.count(": sent-before: ") == len(valid) and ": send: " not in out
