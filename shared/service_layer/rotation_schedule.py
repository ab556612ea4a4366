"""The periodic side of secret rotation: ask for a rotation of every secret older than its profile's
``max_secret_age_days``, by putting a ``customer.credentials-rotation-requested`` event on the app's own queue.

The event is applied like one from the CRM (under the customer's claim, once per request, with its result event),
so the reconciliation timer needs no rotation logic of its own. The request id names the secret's generation
(``rotation_request_id``): a timer that runs again before the rotation was applied sends the same id, which the
queue's duplicate detection (or, past its window, the ledger) drops.
"""
from __future__ import annotations

import datetime as dt
import json

from ..domain.events import ROTATION_REQUESTED
from ..domain.rotation_policy import DueRotation, rotation_request_id, secrets_due_for_rotation
from .messages import InboundMessage
from .ports import RetryScheduler

SOURCE = "/customer-provisioning/rotation-policy"


def request_due_rotations(service, scheduler: RetryScheduler, *, type_prefix: str = "",
                          now: dt.datetime | None = None) -> list[DueRotation]:
    """Send one rotation request per customer due; returns those it asked for. Raises TransientError when the
    queue cannot take a request (the next run asks again, under the same ids)."""
    now = now or service.core.now()
    due = secrets_due_for_rotation(service.ledger.list_customers(), service.profiles, now)
    for d in due:
        event_id = rotation_request_id(d.customer_id, d.issued_at)
        age = "of unknown age" if d.age_days is None else f"{d.age_days:g} days old"
        body = {"specversion": "1.0", "id": event_id, "source": SOURCE, "type": type_prefix + ROTATION_REQUESTED,
                "time": now.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
                "datacontenttype": "application/json",
                "data": {"customerId": d.customer_id,
                         "reason": f"secret {age}; profile {d.profile} rotates at {d.max_age_days} days"}}
        message = InboundMessage(body=json.dumps(body).encode(), message_id=event_id, session_id=d.customer_id,
                                 content_type="application/cloudevents+json", subject=ROTATION_REQUESTED)
        scheduler.schedule_retry(message, delay_seconds=0, properties={}, message_id=event_id)
    return due
