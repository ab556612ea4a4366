"""Service Bus trigger for customer lifecycle events.

The function settles its message itself (``autoCompleteMessages`` off, ``message_actions``), so that a poison
event is dead-lettered on its first delivery with its reason (see ``functions.settlement`` and docs/DESIGN.md):

- applied, duplicate or stale → complete;
- transient failure (5xx, timeout, 429, a busy customer) → a copy is scheduled on the queue for later, with
  backoff, then complete;
- invalid event, unknown profile, a refusal no retry can fix, a spent retry budget → recorded in the ledger with
  its reason, then dead-lettered at once with a reason code and the rule;
- a retry that could not be scheduled, or an unexpected exception → raised: the host abandons the message and the
  queue's MaxDeliveryCount moves it to the dead-letter queue after the redeliveries (the backstop).
"""
from __future__ import annotations

import datetime as dt
import logging

import azure.functions as func
from azurefunctions.extensions.bindings.servicebus import ServiceBusMessageActions

from functions.settlement import dead_letter_for
from shared.bootstrap import get_handler, startup_settings
from shared.service_layer.messages import InboundMessage
from shared.settings import SERVICE_BUS_CONNECTION

# Every setting and the client profiles are checked while the host indexes the functions: a mistake raises here,
# listing every problem, and the host indexes no function, so no event is consumed by a misconfigured app.
SETTINGS = startup_settings()

log = logging.getLogger(__name__)

bp = func.Blueprint()


def inbound(msg: func.ServiceBusMessage) -> InboundMessage:
    return InboundMessage(
        body=msg.get_body(), message_id=msg.message_id, delivery_count=msg.delivery_count,
        session_id=msg.session_id, enqueued_time=_utc(msg.enqueued_time_utc),
        application_properties=dict(msg.application_properties or {}), correlation_id=msg.correlation_id,
        content_type=msg.content_type, subject=getattr(msg, "subject", None) or getattr(msg, "label", None))


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """The host sends EnqueuedTimeUtc without a zone, and azure-functions reads that as a naive datetime: it is
    UTC, and the retry budget compares it with aware times."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def settle(msg, message_actions, handle) -> None:
    """Run ``handle`` on the message and settle it by the outcome (the trigger's body, apart for tests)."""
    try:
        handle(inbound(msg))
    except Exception as exc:
        dead = dead_letter_for(exc)
        if dead is None:
            raise  # the host abandons it; MaxDeliveryCount is the backstop
        # The service layer logged the rejection or failure (one line, no traceback); this says where it went.
        log.debug("dead-lettering message %r: %s", msg.message_id, dead.reason)
        message_actions.deadletter(msg, deadletter_reason=dead.reason, deadletter_error_description=dead.description)
        return
    message_actions.complete(msg)


# Sessions (SessionId = customer id) give per-customer ordering; the queue itself must be created with
# RequiresSession. One function, configured by a setting, so the same code serves a session-enabled queue and a
# plain one (where the ledger's stale guard keeps the outcome right).
@bp.function_name("customer_events")
# data_type BINARY: the host hands the body over as its bytes. With the default (a string) the host decodes it
# with U+FFFD for invalid UTF-8 and copies a JSON body's top-level properties over the message's metadata, so a
# body could name the lock token or the delivery count the function is told (docs/DESIGN.md, "Running on
# Microsoft's worker").
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=SETTINGS.customer_events_queue,
                              connection=SERVICE_BUS_CONNECTION, is_sessions_enabled=SETTINGS.customer_events_sessions,
                              auto_complete_messages=False, data_type=func.DataType.BINARY)
def customer_events(msg: func.ServiceBusMessage, message_actions: ServiceBusMessageActions) -> None:
    settle(msg, message_actions, get_handler())
