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

import os
import threading

import azure.functions as func

from shared.adapters.settings import APP_ROOT
from shared.domain.profiles import load_profiles

bp = func.Blueprint()

# Validated at start-up (indexing), so a broken profiles file fails the deployment loudly instead of the first
# customer. Cheap: a small TOML file, no SDK.
load_profiles(APP_ROOT / os.environ.get("CLIENT_PROFILES_PATH", "config/client_profiles.toml"))

# Sessions (SessionId = customer id) give per-customer ordering; the queue itself must be created with
# RequiresSession. Read at indexing time, like every binding: one function, configured by a setting, so the same
# code serves a session-enabled queue and a plain one (where the ledger's stale guard keeps the outcome right).
SESSIONS = os.environ.get("CUSTOMER_EVENTS_SESSIONS", "false").strip().lower() in ("1", "true", "yes")

_scheduler_lock = threading.Lock()
_scheduler = None


def _get_scheduler():
    global _scheduler
    with _scheduler_lock:
        if _scheduler is None:
            from shared.adapters.servicebus_retry import ServiceBusRetryScheduler
            _scheduler = ServiceBusRetryScheduler.from_environment(os.environ)
        return _scheduler


@bp.function_name("customer_events")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name="%CUSTOMER_EVENTS_QUEUE%",
                              connection="ServiceBusConnection", is_sessions_enabled=SESSIONS)
def customer_events(msg: func.ServiceBusMessage) -> None:
    from shared.bootstrap import get_service
    from shared.domain.retry_policy import RetryPolicy
    from shared.service_layer.messages import InboundMessage, handle_message

    inbound = InboundMessage(
        body=msg.get_body(),
        message_id=msg.message_id,
        delivery_count=msg.delivery_count,
        session_id=msg.session_id,
        enqueued_time=msg.enqueued_time_utc,
        application_properties=dict(msg.application_properties or {}),
        correlation_id=msg.correlation_id,
        content_type=msg.content_type,
        subject=getattr(msg, "subject", None) or getattr(msg, "label", None),
    )
    handle_message(get_service(), inbound, type_prefix=os.environ.get("EVENT_TYPE_PREFIX", ""),
                   scheduler=_get_scheduler(), policy=RetryPolicy.from_settings(os.environ))
