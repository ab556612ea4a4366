"""The function as the Functions host sees it: found through ``app.get_functions()``, invoked with a real
``azure.functions`` Service Bus message carrying metadata, against the whole local stack."""
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
from shared.domain.errors import InvalidEvent, PermanentError
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


@pytest.fixture
def trigger(stack_env):
    """The user function behind the registered Service Bus trigger, from a freshly imported app."""
    def forget_app():
        # get_functions() may be called once per app: leave no indexed app behind for the next importer.
        for name in [m for m in sys.modules if m == "function_app" or m.startswith(("functions", "shared.bootstrap"))]:
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
    yield fn.get_user_function()
    reset_service()
    forget_app()


def test_created_then_removed_through_the_registered_trigger(trigger, local_stack):
    trigger(_message(_event("created", "acme")))

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


def test_invalid_event_raises_a_permanent_error_that_names_the_field(trigger):
    bad = _event("created", "hooli")
    del bad["data"]["profile"]
    with pytest.raises(InvalidEvent) as err:
        trigger(_message(bad))
    assert err.value.field == "data.profile"
    assert isinstance(err.value, PermanentError)


def _peek_all(connection: str, queue: str):
    from azure.servicebus import ServiceBusClient

    with ServiceBusClient.from_connection_string(connection) as client:
        with client.get_queue_receiver(queue) as receiver:
            return receiver.peek_messages(max_message_count=100)


def test_transient_failure_schedules_a_copy_with_backoff_and_completes(trigger, local_stack, stack_env):
    local_stack.control("auth0").fail_next("clients.create", 503, count=1)
    event = _event("created", "retry-me")
    msg = _message(event)
    before = dt.datetime.now(dt.timezone.utc)
    trigger(msg)  # returns: the host completes the original

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
