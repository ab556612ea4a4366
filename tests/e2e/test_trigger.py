"""The function as the Functions host sees it: found through ``app.get_functions()``, invoked with a real
``azure.functions`` Service Bus message carrying metadata and a settlement client that records what the function
settled, against the whole local stack."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
import uuid
from pathlib import Path

import pytest
from azure.functions.servicebus import ServiceBusMessage

from emulators.inspect import view_customers, view_stack
from shared.service_layer.messages import retry_copy_id

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _event(kind: str, customer: str, **data) -> dict:
    body = {"customerId": customer, **data}
    if kind == "created":
        body.setdefault("displayName", f"{customer} Ltd")
        body.setdefault("profile", "oem")
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/tests", "type": f"customer.{kind}",
            "time": _now(), "data": body}


def _message(event: dict | bytes, delivery_count: int = 1, **props) -> ServiceBusMessage:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    customer = event.get("data", {}).get("customerId") if isinstance(event, dict) else None
    return ServiceBusMessage(
        body=body, message_id=str(uuid.uuid4()), delivery_count=delivery_count, session_id=customer,
        sequence_number=42, enqueued_time_utc=dt.datetime.now(dt.timezone.utc),
        content_type="application/cloudevents+json",
        correlation_id="corr-1", application_properties=props, user_properties={}, trigger_metadata={})


class RecordingActions:
    """Stands for the worker's ServiceBusMessageActions: the settlement itself is funchost's (tests/funchost)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def complete(self, message) -> None:
        self.calls.append(("complete", message.message_id))

    def deadletter(self, message, deadletter_reason=None, deadletter_error_description=None) -> None:
        self.calls.append(("deadletter", message.message_id, deadletter_reason, deadletter_error_description))

    def abandon(self, message) -> None:
        self.calls.append(("abandon", message.message_id))


@pytest.fixture
def actions() -> RecordingActions:
    return RecordingActions()


@pytest.fixture
def trigger(stack_env, actions):
    """The user function behind the registered Service Bus trigger, from a freshly imported app."""
    def forget_app():
        # get_functions() may be called once per app: leave no indexed app behind for the next importer. Not
        # shared.bootstrap: a second copy of it would hold its own settings, which another test's reset() misses.
        for name in [m for m in sys.modules if m == "function_app" or m.startswith("functions")]:
            del sys.modules[name]

    forget_app()
    from shared.bootstrap import reset as reset_service
    reset_service()
    # By path: another test's host may have put a different app's folder first on sys.path.
    spec = importlib.util.spec_from_file_location("function_app", ROOT / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    spec.loader.exec_module(module)
    app = module.app
    functions = {fn.get_function_name(): fn for fn in app.get_functions()}
    fn = functions["customer_events"]
    binding = json.loads(fn.get_function_json())["bindings"][0]
    assert binding["type"] == "serviceBusTrigger"
    # The queue comes from the settings object (with its default), not from a %NAME% expression without one.
    assert binding["queueName"] == stack_env["CUSTOMER_EVENTS_QUEUE"]
    assert binding["connection"] == "ServiceBusConnection"
    assert binding["autoCompleteMessages"] is False  # the function settles: see functions/settlement.py
    user_function = fn.get_user_function()
    yield lambda msg: user_function(msg, message_actions=actions)
    reset_service()
    forget_app()


def test_created_then_removed_through_the_registered_trigger(trigger, actions, local_stack):
    created = _message(_event("created", "acme"))
    trigger(created)
    assert actions.calls == [("complete", created.message_id)]

    acme = view_stack(local_stack).of("acme")
    assert len(acme.auth0_applications) == 1 and acme.auth0_applications[0].startswith("tpc_")
    assert len(acme.auth0_grants) == 1
    assert acme.secrets == ["auth0-client-acme"]
    assert acme.authorization_servers == ["auth0-acme"]
    assert acme.subscriptions == {"customer-acme": "active"}

    trigger(_message(_event("removed", "acme")))
    view = view_customers(local_stack, ["acme"])
    assert not view.of("acme").live
    assert view.of("acme").deleted_secrets == ["auth0-client-acme"]  # soft-deleted, recoverable
    assert view.unattributed == []


def test_invalid_event_is_dead_lettered_at_once_with_the_rule(trigger, actions, local_stack):
    bad = _event("created", "hooli")
    del bad["data"]["profile"]
    msg = _message(bad)
    trigger(msg)  # returns: the message is settled, nothing for the host to redeliver
    assert actions.calls == [("deadletter", msg.message_id, "InvalidEvent", "data.profile: is required")]


def test_unknown_profile_is_dead_lettered_with_its_own_code(trigger, actions):
    msg = _message(_event("created", "hooli-2", profile="platinum"))
    trigger(msg)
    [(action, _, reason, description)] = actions.calls
    assert (action, reason) == ("deadletter", "UnknownProfile")
    assert description.startswith("data.profile: unknown profile 'platinum' (known: ")


def test_a_refusal_no_retry_can_fix_is_a_permanent_failure(trigger, actions, local_stack):
    local_stack.control("auth0").fail_next("clients.create", 400, count=1)
    msg = _message(_event("created", "refused"))
    trigger(msg)
    [(action, _, reason, description)] = actions.calls
    assert (action, reason) == ("deadletter", "PermanentFailure")
    assert description.startswith("auth0.") and "400" in description


def _peek_all(connection: str, queue: str):
    from azure.servicebus import ServiceBusClient

    with ServiceBusClient.from_connection_string(connection) as client:
        with client.get_queue_receiver(queue) as receiver:
            return receiver.peek_messages(max_message_count=100)


def test_transient_failure_schedules_a_copy_with_backoff_and_completes(trigger, actions, local_stack, stack_env):
    local_stack.control("auth0").fail_next("clients.create", 503, count=1)
    event = _event("created", "retry-me")
    msg = _message(event)
    before = dt.datetime.now(dt.timezone.utc)
    trigger(msg)
    assert actions.calls == [("complete", msg.message_id)]  # the original; the copy carries on

    copies = [m for m in _peek_all(stack_env["ServiceBusConnection"], stack_env["CUSTOMER_EVENTS_QUEUE"])
              if (m.application_properties or {}).get(b"retry-original-message-id") == msg.message_id.encode()]
    assert len(copies) == 1
    copy = copies[0]
    props = {k.decode(): v for k, v in copy.application_properties.items()}
    assert props["retry-attempt"] == 1
    assert b"503" in props["retry-last-error"] or b"auth0" in props["retry-last-error"]
    assert copy.message_id == retry_copy_id(msg.message_id, 1)
    assert copy.session_id == "retry-me" and copy.correlation_id == "corr-1"
    assert json.loads(str(copy)) == event
    # First retry: exponential backoff from RETRY_BASE_SECONDS (2 s) with jitter, so 1-2 s after the failure.
    delay = (copy.scheduled_enqueue_time_utc - before).total_seconds()
    assert 0.9 <= delay <= 2.5
    # Nothing half-made is visible as provisioned; the ledger says why it waits.
    assert view_stack(local_stack).of("retry-me").auth0_applications == []
