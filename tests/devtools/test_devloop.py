"""The developer loop as `make run`, `make host`, `make reset` and `python -m emulators show` drive it.

One stack for the module, started like `make up` (persisted, in its own process). Hosts run as
`python -m devtools.run` processes, as the Makefile starts them, so the lock, the refusal and Ctrl-C are the real ones.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.listen import receive_results
from devtools.send import build_event, send_events
from devtools.waiting import wait_until
from emulators.runlock import pid_alive

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


def run(*argv: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


class HostProcess:
    """`python -m devtools.run ...` in the background, its output collected as it comes."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "devtools.run", *argv], cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_started(self) -> "HostProcess":
        wait_until(lambda: "Host started" in self.output or self.proc.poll() is not None, timeout=60,
                   what="the host to start")
        assert self.proc.poll() is None, self.output
        return self

    def ctrl_c(self) -> float:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(20)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("devloop")
    settings = folder / "local.settings.json"
    up = run("emulators", "--folder", str(folder), "up", "--persist", "--settings", str(settings))
    assert up.returncode == 0, up.stdout + up.stderr
    # A profiles file of the test's own, to break and fix.
    profiles = folder / "client_profiles.toml"
    shutil.copy(ROOT / "config" / "client_profiles.toml", profiles)
    doc = _customise(settings, profiles)
    info = json.loads((folder / "stack.json").read_text())
    yield {"folder": folder, "settings": settings, "profiles": profiles, "info": info,
           "values": doc["Values"], "args": ["--folder", str(folder), "--settings", str(settings)]}
    run("emulators", "--folder", str(folder), "down")


def _customise(settings: Path, profiles: Path) -> dict:
    """The test's own settings, over what `up` wrote (it writes them again whenever it starts the stack)."""
    doc = json.loads(settings.read_text())
    doc["Values"].update(CLIENT_PROFILES_PATH=str(profiles), RETRY_BASE_SECONDS="0.2")
    settings.write_text(json.dumps(doc))
    return doc


def add_profile_like_oem(stack, name: str) -> None:
    """The fix of a refused event: a profile the configuration lacked, added as a copy of ``oem``."""
    text = stack["profiles"].read_text()
    oem = text[text.index("[profiles.oem]"):].split("\n\n")[0]
    stack["profiles"].write_text(text + "\n\n" + oem.replace("[profiles.oem]", f"[profiles.{name}]") + "\n")


def _control(stack, service: str):
    from emulators.control import StandInControl
    info = json.loads((stack["folder"] / "stack.json").read_text())
    return StandInControl(info["services"][service]["url"], verify=info["ca_cert"])


def show(stack, customer: str) -> dict:
    out = run("emulators", "--folder", str(stack["folder"]), "show", "--json", "--customer", customer)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_second_run_refuses_names_the_first_and_stops_nothing(stack):
    first = HostProcess(*stack["args"])
    try:
        first.wait_started()
        assert "already running" in first.output  # it used the running stack as it is
        for argv in (stack["args"], [*stack["args"], "--host-only"]):
            second = run("devtools.run", *argv)
            assert second.returncode == 3, second.stdout + second.stderr
            assert f"pid {first.proc.pid}" in second.stderr and "make host" in second.stderr
            assert "Host started" not in second.stdout
        # Resetting the stack under a running host is refused too.
        reset = run("emulators", "--folder", str(stack["folder"]), "reset")
        assert reset.returncode == 1 and f"pid {first.proc.pid}" in reset.stderr
        assert first.proc.poll() is None and pid_alive(stack["info"]["pid"])
        assert json.loads((stack["folder"] / "stack.json").read_text())["pid"] == stack["info"]["pid"]

        elapsed = first.ctrl_c()
    finally:
        first.kill()
    assert first.proc.returncode == 0, first.output
    assert elapsed < 5, f"Ctrl-C took {elapsed:.1f} s"
    assert "the local stack keeps running" in first.output
    assert pid_alive(stack["info"]["pid"])  # Ctrl-C stops the host, never the stack

    # The lock went with the process: the next host starts.
    again = HostProcess(*stack["args"], "--host-only")
    try:
        again.wait_started()
    finally:
        again.ctrl_c()


def test_a_dead_letter_survives_a_host_restart_is_listed_and_replayed_after_the_fix(stack):
    customer = "devloop-umbrella"
    auth0, vault = _control(stack, "auth0"), _control(stack, "keyvault")
    auth0.clear_calls()
    vault.clear_calls()
    host = HostProcess(*stack["args"], "--host-only")
    try:
        host.wait_started()
        # The app's warm-up (WARM_UP, on by default): its clients made their first calls while the host connected,
        # before any event. Its log line is not in the host's log: the Functions host drops what a worker logs
        # outside an invocation, and so does this one; the stand-ins saw the calls.
        wait_until(lambda: auth0.calls()["calls"].get("oauth.token") and vault.calls()["calls"], timeout=60,
                   what="the warm-up's calls")
        assert "warm-up: handler built" not in host.output
        # A profile the configuration does not have yet: the app refuses the event and it is dead-lettered.
        send_events([build_event("created", customer, profile="reseller")], stack["values"])
        wait_until(lambda: show(stack, customer)["servicebus"]["entities"]["customer-events"]["dead_lettered"],
                   timeout=90, what="the event to be dead-lettered")
    finally:
        host.ctrl_c()

    # The fix: the profile is added. Then only the app restarts (`make host`); the stack and its queue stay.
    add_profile_like_oem(stack, "reseller")
    host = HostProcess(*stack["args"], "--host-only")
    try:
        host.wait_started()
        [dead] = show(stack, customer)["servicebus"]["entities"]["customer-events"]["dead_letter_messages"]
        assert dead["session_id"] == customer
        # Dead-lettered on its first delivery, counted as the portal and the host's log count it.
        assert dead["delivery_count"] == 1 and dead["reason"] == "UnknownProfile", dead
        text = run("emulators", "--folder", str(stack["folder"]), "show", "--customer", customer).stdout
        assert "delivery count 1: UnknownProfile" in text, text

        listed = run("opstool", "list", "--settings", str(stack["settings"]), "--customer", customer, "--json")
        assert listed.returncode == 0 and dead["message_id"] in listed.stdout, listed.stdout + listed.stderr
        replay = run("opstool", "replay", "--settings", str(stack["settings"]), "--customer", customer, "--yes")
        assert replay.returncode == 0, replay.stdout + replay.stderr

        def provisioned():
            doc = show(stack, customer)
            return doc if doc["apim"]["subscriptions"] and doc["keyvault"]["secrets"] else None

        doc = wait_until(provisioned, timeout=90, what="the replayed event to provision the customer")
        # The CRM's subscription holds the customer's two result events (provisioning-failed, then provisioned):
        # `show --customer` counts them by their customerId, as the unfiltered show counts every message.
        audit = "customer-lifecycle/subscriptions/audit"
        wait_until(lambda: show(stack, customer)["servicebus"]["entities"][audit]["active"] == 2, timeout=30,
                   what="the customer's two result events on the subscription")
        whole = json.loads(run("emulators", "--folder", str(stack["folder"]), "show", "--json").stdout)
        assert whole["servicebus"]["entities"][audit]["active"] >= 2
    finally:
        host.ctrl_c()
    [app] = doc["auth0"]["applications"]
    assert app["customer"] == customer and app["profile"] == "reseller" and app["grant_types"]
    assert app["api_grants"] and app["api_grants"][0]["scope"]
    [secret] = doc["keyvault"]["secrets"]
    assert secret["tags"]["customer_id"] == customer and secret["versions"] == 1 and "value" not in secret
    [sub] = doc["apim"]["subscriptions"]
    assert sub["state"] == "active" and sub["product"] == "oem"
    assert doc["servicebus"]["entities"]["customer-events"]["dead_lettered"] == 0

    # The human form names the same things and never a secret value.
    text = run("emulators", "--folder", str(stack["folder"]), "show", "--customer", customer).stdout
    assert app["client_id"] in text and secret["name"] in text and "state=active" in text
    state = json.loads(run("emulators", "--folder", str(stack["folder"]), "show", "--json").stdout)
    assert state["customer"] is None
    values = [c.get("client_secret") for c in _auth0_clients(stack) if c.get("client_secret")]
    assert values and not [v for v in values if v in text or v in json.dumps(state)]


def _auth0_clients(stack) -> list[dict]:
    from emulators.control import StandInControl
    info = stack["info"]
    return StandInControl(info["services"]["auth0"]["url"], verify=info["ca_cert"]).state()["clients"]


def dead_letters(stack, customer: str) -> list[dict]:
    return show(stack, customer)["servicebus"]["entities"]["customer-events"]["dead_letter_messages"]


def test_the_host_reconnects_by_itself_when_the_stack_restarts_and_state_is_kept(stack):
    folder = str(stack["folder"])
    refused = "devloop-distributor"
    host = HostProcess(*stack["args"], "--host-only")
    try:
        host.wait_started()
        # Dead-lettered before the stack goes down: a profile the configuration does not have.
        send_events([build_event("created", refused, profile="distributor")], stack["values"])
        [dead] = wait_until(lambda: dead_letters(stack, refused), timeout=90, what="the event to be dead-lettered")
        assert run("emulators", "--folder", folder, "down").returncode == 0
        wait_until(lambda: "is unreachable" in host.output, timeout=60, what="the host to report the outage")
        assert "at 1, 2, 4, 8, then every 15 s" in host.output  # the README's schedule, in its words
        up = run("emulators", "--folder", folder, "up", "--persist", "--settings", str(stack["settings"]))
        assert up.returncode == 0, up.stdout + up.stderr
        _customise(stack["settings"], stack["profiles"])
        # The restarted stack took its old ports, so the running host finds it without a restart of its own.
        wait_until(lambda: "reachable again" in host.output, timeout=60, what="the host to reconnect")
        stack["info"] = json.loads((stack["folder"] / "stack.json").read_text())
        send_events([build_event("created", "devloop-after-restart", profile="oem")], stack["values"])
        wait_until(lambda: show(stack, "devloop-after-restart")["apim"]["subscriptions"], timeout=90,
                   what="a customer provisioned after the restart")
    finally:
        elapsed = host.ctrl_c()
    assert elapsed < 5, host.output
    assert host.output.count("reachable again") == 1
    # What the previous test provisioned was kept across the stack's restart (persisted by default).
    kept = show(stack, "devloop-umbrella")
    assert len(kept["auth0"]["applications"]) == 1 and kept["keyvault"]["secrets"]

    # So was the dead letter, with its reason: opstool lists it, and after the fix it is replayed.
    [after] = dead_letters(stack, refused)
    assert (after["sequence_number"], after["reason"], after["delivery_count"]) == (
        dead["sequence_number"], dead["reason"], dead["delivery_count"])
    listed = run("opstool", "list", "--settings", str(stack["settings"]), "--customer", refused, "--json")
    assert listed.returncode == 0 and dead["message_id"] in listed.stdout, listed.stdout + listed.stderr
    add_profile_like_oem(stack, "distributor")
    host = HostProcess(*stack["args"], "--host-only")
    try:
        host.wait_started()
        replay = run("opstool", "replay", "--settings", str(stack["settings"]), "--customer", refused, "--yes")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        wait_until(lambda: show(stack, refused)["apim"]["subscriptions"], timeout=90,
                   what="the replayed event to provision the customer")
    finally:
        host.ctrl_c()
    assert dead_letters(stack, refused) == []


def test_a_deleted_settings_file_is_written_again_without_restarting_the_stack(stack):
    """`make up` on the running stack, and `make host`, write local.settings.json again from the stack (its env
    file); the tools say so when it is missing. Nothing restarts: the stack's pid stays."""
    from emulators.appsettings import missing_settings_hint

    settings, folder = stack["settings"], stack["folder"]
    customised = settings.read_text()
    try:
        settings.unlink()
        hint = missing_settings_hint(settings, folder)
        assert f"pid {stack['info']['pid']}" in hint and "`make up` writes it again" in hint, hint
        up = run("emulators", "--folder", str(folder), "up", "--persist", "--settings", str(settings))
        assert up.returncode == 0, up.stdout + up.stderr
        assert "already running" in up.stdout and "was missing: written again" in up.stdout, up.stdout
        values = json.loads(settings.read_text())["Values"]
        assert values["ServiceBusConnection"] == stack["values"]["ServiceBusConnection"]
        assert settings.stat().st_mode & 0o077 == 0  # it holds the stand-ins' credentials
        assert missing_settings_hint(settings, folder) == ""

        settings.unlink()
        host = HostProcess(*stack["args"], "--host-only")
        try:
            host.wait_started()
            assert "was missing: written again" in host.output
        finally:
            host.ctrl_c()
        assert json.loads(settings.read_text())["Values"]["AUTH0_DOMAIN"] == stack["values"]["AUTH0_DOMAIN"]
        assert json.loads((folder / "stack.json").read_text())["pid"] == stack["info"]["pid"]
    finally:
        settings.write_text(customised)


def test_after_ctrl_c_with_the_stack_down_the_hint_names_what_works(stack):
    folder = str(stack["folder"])
    host = HostProcess(*stack["args"], "--host-only")
    try:
        host.wait_started()
        assert run("emulators", "--folder", folder, "down").returncode == 0
        wait_until(lambda: "is unreachable" in host.output, timeout=60, what="the host to report the outage")
    finally:
        host.ctrl_c()
    hint = host.output[host.output.rindex("the local stack is not running"):]
    assert "`make run` starts the stack and the app" in hint and "make host" not in hint, hint
    # `make host` would refuse now, which is why the hint does not offer it.
    refused = run("devtools.run", *stack["args"], "--host-only")
    assert refused.returncode == 2 and "no local stack is running" in refused.stderr
    up = run("emulators", "--folder", folder, "up", "--persist", "--settings", str(stack["settings"]))
    assert up.returncode == 0, up.stdout + up.stderr
    _customise(stack["settings"], stack["profiles"])
    stack["info"] = json.loads((stack["folder"] / "stack.json").read_text())


def _publish_result(values: dict, customer: str, kind: str) -> str:
    """A result event on the topic as the app publishes it (CloudEvent body, customerId application property)."""
    import uuid

    from azure.servicebus import ServiceBusClient, ServiceBusMessage
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/customer-provisioning",
             "type": f"customer.{kind}", "subject": customer, "time": "2026-12-01T10:00:00Z",
             "data": {"customerId": customer}}
    with ServiceBusClient.from_connection_string(values["ServiceBusConnection"]) as client, \
            client.get_topic_sender("customer-lifecycle") as sender:
        sender.send_messages(ServiceBusMessage(json.dumps(event), message_id=event["id"],
                                               content_type="application/cloudevents+json",
                                               application_properties={"type": event["type"], "customerId": customer}))
    return event["id"]


def test_listen_for_one_customer_leaves_every_event_on_the_subscription(stack):
    """`devtools.listen --customer X` browses: it prints X's events and consumes nobody's, so another customer's
    result events (and X's) are still there for the CRM; a listener without --customer consumes them."""
    list(receive_results(stack["values"], max_wait=1))  # what earlier tests left
    mine = [_publish_result(stack["values"], "listen-mine", k) for k in ("provisioned", "updated")]
    theirs = _publish_result(stack["values"], "listen-theirs", "provisioned")
    settings = ["--settings", str(stack["settings"])]

    out = run("devtools.listen", *settings, "--customer", "listen-mine", "--timeout", "2", "--json")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["id"] for line in out.stdout.splitlines()] == mine
    assert "nothing is consumed" in out.stderr
    again = run("devtools.listen", *settings, "--customer", "listen-theirs", "--count", "1", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["id"] == theirs, again.stdout + again.stderr

    consumed = run("devtools.listen", *settings, "--timeout", "2", "--json")
    assert [json.loads(line)["id"] for line in consumed.stdout.splitlines()] == [*mine, theirs]
    assert run("devtools.listen", *settings, "--peek", "--json").stdout == ""  # consumed now
