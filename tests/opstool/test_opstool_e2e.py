"""The on-call procedure end to end: the whole app under the local Functions host on the local stack, an Auth0
outage dead-letters events, the outage ends, the ops tool replays them, and each customer ends provisioned with
exactly one Auth0 application, also when the CRM had sent an event twice and when the replay itself crashed."""
from __future__ import annotations

import json
import time

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusReceiveMode, ServiceBusSubQueue

from dlq_helpers import cloud_event, message_for, peek, send
from dlq_helpers import ROOT, Tool

pytestmark = pytest.mark.timeout(240)

QUEUE = "customer-events"
# The app's own retry budget, kept small so that the outage dead-letters within seconds (three scheduled retries,
# then the app dead-letters the event as RetryBudgetSpent), yet large enough (0.5 + 1 + 2 s) for a replayed twin that
# finds its customer busy to outwait the other copy's provisioning on a loaded machine instead of being dead-lettered
# again.
FAST_RETRIES = {"RETRY_MAX_ATTEMPTS": "3", "RETRY_BASE_SECONDS": "0.5", "RETRY_MAX_DELAY_SECONDS": "2"}


def _drain(cs: str) -> None:
    """The session's stack is shared: start from an empty queue and dead-letter queue."""
    with ServiceBusClient.from_connection_string(cs) as client:
        for sub in (None, ServiceBusSubQueue.DEAD_LETTER):
            with client.get_queue_receiver(QUEUE, sub_queue=sub,
                                           receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
                while receiver.receive_messages(max_message_count=100, max_wait_time=1):
                    pass


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def app(stack_env, local_stack, monkeypatch):
    """The function app under the local Functions host, on the local stack, with a small retry budget."""
    from funchost import LocalFunctionsHost
    from shared.bootstrap import reset as reset_service

    reset_service()  # the host runs the app in this process: no service (nor ledger table state) from another test
    for key, value in FAST_RETRIES.items():
        monkeypatch.setenv(key, value)
    _drain(local_stack.settings["ServiceBusConnection"])
    host = LocalFunctionsHost(ROOT, {**local_stack.settings, **FAST_RETRIES}, functions=["customer_events"],
                              poll_interval=0.5).start()
    yield host
    host.stop(15)
    local_stack.control("auth0").clear_faults()
    reset_service()


@pytest.fixture
def ops(local_stack, tmp_path) -> Tool:
    tool = Tool(local_stack.servicebus, tmp_path)
    for key in ("LEDGER_CONNECTION", "LEDGER_TABLE", "LOCAL_STACK_CA_BUNDLE"):
        tool.env[key] = local_stack.settings[key]
    return tool


def _auth0_outage(local_stack) -> None:
    local_stack.control("auth0").set_faults([{"op": "*", "error_rate": 1.0, "errors": [503], "latency_ms": 0}])


def _dead_lettered(cs: str, count: int):
    return _wait(lambda: len(peek(cs, QUEUE, dead_letter=True)) >= count and peek(cs, QUEUE, dead_letter=True),
                 120, f"{count} dead-lettered message(s)")


def _provisioned(local_stack, customer: str):
    from emulators.inspect import view_customers

    def done():
        view = view_customers(local_stack, [customer]).of(customer)
        return view if view.authorization_servers and view.secrets and view.auth0_grants else None

    return _wait(done, 60, f"{customer} provisioned")


def _ledger_status(local_stack, customer: str) -> str | None:
    from shared.adapters.table_ledger import TableLedger

    ledger = TableLedger(local_stack.settings["LEDGER_TABLE"],
                         connection_string=local_stack.settings["LEDGER_CONNECTION"])
    try:
        record, _ = ledger.get_customer(customer)
        return record.status if record else None
    finally:
        ledger.close()


def _original_id(m) -> str:
    """The sender's message id of a dead letter that may be one of the app's retry copies."""
    value = (m.application_properties or {}).get(b"retry-original-message-id")
    return value.decode() if value else m.message_id


def test_replay_after_the_outage_provisions_each_customer_once(app, local_stack, ops):
    cs = local_stack.settings["ServiceBusConnection"]
    _auth0_outage(local_stack)
    acme, beta = cloud_event("acme"), cloud_event("beta")
    # The CRM sent acme's event twice (same event id, another message id): both will be replayed.
    send(cs, QUEUE, message_for(acme), message_for(beta), message_for(acme, message_id="crm-resend-1"))
    dead = _dead_lettered(cs, 3)
    assert {_original_id(m) for m in dead} == {acme["id"], beta["id"], "crm-resend-1"}
    assert {m.dead_letter_reason for m in dead} == {"RetryBudgetSpent"}
    # The last failure is the outage's 503, or, for one of acme's two copies, its twin holding the customer.
    reasons = {_original_id(m): m.dead_letter_error_description for m in dead}
    assert "503" in reasons[beta["id"]]
    assert all("503" in r or "applying an event to this customer" in r for r in reasons.values()), reasons

    listed = ops.run("list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["customer_id"] for r in rows) == ["acme", "acme", "beta"]
    assert all("503" in (r["ledger_error"] or "") for r in rows), rows
    assert _ledger_status(local_stack, "acme") == "provisioning"

    local_stack.control("auth0").clear_faults()  # the outage is over
    replay = ops.run("replay", "--all", "--yes")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "replay summary: 3 replayed" in replay.stdout

    for customer in ("acme", "beta"):
        view = _provisioned(local_stack, customer)
        assert len(view.auth0_applications) == 1, view.line()
    _wait(lambda: _ledger_status(local_stack, "acme") == "provisioned", 30, "acme provisioned in the ledger")
    _wait(lambda: not peek(cs, QUEUE), 30, "the queue to drain")
    time.sleep(2)  # the duplicate has been handled by now: nothing may come back
    from emulators.inspect import view_stack
    assert view_stack(local_stack).duplicates() == {}
    assert peek(cs, QUEUE, dead_letter=True) == []


def test_a_replay_that_crashed_half_way_is_finished_by_running_it_again(app, local_stack, ops):
    cs = local_stack.settings["ServiceBusConnection"]
    _auth0_outage(local_stack)
    event = cloud_event("gamma")
    send(cs, QUEUE, message_for(event))
    _dead_lettered(cs, 1)
    local_stack.control("auth0").clear_faults()

    crashed = ops.run("replay", "--all", env={"OPSTOOL_CRASH_AFTER_SEND": "1"})
    assert crashed.returncode == 99
    view = _provisioned(local_stack, "gamma")  # the copy was sent before the crash: the app provisions it
    assert len(view.auth0_applications) == 1
    _wait(lambda: all(m.get("locked_until_utc") is None
                      for m in local_stack.servicebus.snapshot()["queues"][QUEUE]["dead_letter_messages"]),
          30, "the crashed run's lock to be released")
    assert [_original_id(m) for m in peek(cs, QUEUE, dead_letter=True)] == [event["id"]]

    rerun = ops.run("replay", "--all")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert peek(cs, QUEUE, dead_letter=True) == []
    _wait(lambda: not peek(cs, QUEUE), 30, "the queue to drain")
    time.sleep(2)
    from emulators.inspect import view_customers
    assert len(view_customers(local_stack, ["gamma"]).of("gamma").auth0_applications) == 1
    assert _ledger_status(local_stack, "gamma") == "provisioned"
