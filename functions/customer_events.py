"""Service Bus trigger for customer lifecycle events.

The host completes the message when this function returns and abandons it when it raises (then redelivers it, and
after the queue's MaxDeliveryCount moves it to the dead-letter queue). So:

- applied, duplicate or stale → return (complete);
- transient failure (5xx, timeout, 429, a busy customer) → a copy is scheduled on the queue for later, with
  backoff, then return (complete); when the retry budget is spent, or the copy cannot be scheduled → raise;
- invalid event or any other permanent failure → recorded in the ledger with its reason, then raise: the message
  reaches the dead-letter queue after MaxDeliveryCount quick redeliveries, and `python -m opstool list` shows the
  ledger's reason beside it.
"""
from __future__ import annotations

import azure.functions as func

from shared.bootstrap import get_handler, startup_settings
from shared.service_layer.messages import InboundMessage
from shared.settings import SERVICE_BUS_CONNECTION

# Every setting and the client profiles are checked while the host indexes the functions: a mistake raises here,
# listing every problem, and the host indexes no function, so no event is consumed by a misconfigured app.
SETTINGS = startup_settings()

bp = func.Blueprint()


def inbound(msg: func.ServiceBusMessage) -> InboundMessage:
    return InboundMessage(
        body=msg.get_body(), message_id=msg.message_id, delivery_count=msg.delivery_count,
        session_id=msg.session_id, enqueued_time=msg.enqueued_time_utc,
        application_properties=dict(msg.application_properties or {}), correlation_id=msg.correlation_id,
        content_type=msg.content_type, subject=getattr(msg, "subject", None) or getattr(msg, "label", None))


# Sessions (SessionId = customer id) give per-customer ordering; the queue itself must be created with
# RequiresSession. One function, configured by a setting, so the same code serves a session-enabled queue and a
# plain one (where the ledger's stale guard keeps the outcome right).
@bp.function_name("customer_events")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=SETTINGS.customer_events_queue,
                              connection=SERVICE_BUS_CONNECTION, is_sessions_enabled=SETTINGS.customer_events_sessions)
def customer_events(msg: func.ServiceBusMessage) -> None:
    get_handler()(inbound(msg))
