"""Service Bus trigger for customer lifecycle events.

The host completes the message when this function returns and abandons it when it raises (then redelivers it,
and after the queue's MaxDeliveryCount moves it to the dead-letter queue). So:

- applied, duplicate or stale → return (complete);
- invalid event or any other permanent failure → recorded in the ledger with its reason, then raise: the
  message reaches the dead-letter queue after MaxDeliveryCount quick redeliveries, and the ops tool shows the
  ledger's reason beside it;
- transient failure → recorded in the ledger, then raise: the message is redelivered.
"""
from __future__ import annotations

import logging
import os

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger("customer_provisioning.trigger")


@bp.function_name("customer_events")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name="%CUSTOMER_EVENTS_QUEUE%",
                              connection="ServiceBusConnection")
def customer_events(msg: func.ServiceBusMessage) -> None:
    from shared.bootstrap import get_service
    from shared.service_layer.messages import InboundMessage, handle_message

    inbound = InboundMessage(
        body=msg.get_body(),
        message_id=msg.message_id,
        delivery_count=msg.delivery_count,
        session_id=msg.session_id,
        enqueued_time=msg.enqueued_time_utc,
        application_properties=dict(msg.application_properties or {}),
    )
    handle_message(get_service(), inbound, type_prefix=os.environ.get("EVENT_TYPE_PREFIX", ""))
