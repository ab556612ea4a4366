"""Sending new events to the app's queue as the README asks of senders: MessageId = event id (duplicate detection
drops a resend within its window), SessionId = customer id, content type application/cloudevents+json. Every event
is checked by the app's own parser first, so the tool never sends what the app would refuse."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable, Mapping

from shared.domain.events import CustomerEvent, parse_event

CONTENT_TYPE = "application/cloudevents+json"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def type_prefix(values: Mapping[str, str]) -> str:
    return (values.get("EVENT_TYPE_PREFIX") or "").strip()


def cloud_event(event_id: str, event_type: str, source: str, data: dict, *, prefix: str = "",
                time: str | None = None) -> dict:
    return {"specversion": "1.0", "id": event_id, "source": source, "type": f"{prefix}{event_type}",
            "time": time or now_iso(), "datacontenttype": "application/json", "data": data}


def checked(event: dict, *, prefix: str = "", known_profiles: frozenset[str] | None = None) -> CustomerEvent:
    """The event as the app will parse it; raises InvalidEvent naming the field and the rule."""
    return parse_event(json.dumps(event), type_prefix=prefix, known_profiles=known_profiles)


def message_of(event: dict) -> Any:
    from azure.servicebus import ServiceBusMessage

    return ServiceBusMessage(json.dumps(event), message_id=event["id"], session_id=event["data"]["customerId"],
                             content_type=CONTENT_TYPE, subject=event["type"])


class QueueSender:
    """One sender on the app's queue for the whole command (a connection per event would cost more than the
    event)."""

    def __init__(self, target):
        self._client = target.client()
        self._queue = target.queue
        self._sender = None

    def __enter__(self) -> "QueueSender":
        self._client.__enter__()
        self._sender = self._client.get_queue_sender(self._queue)
        self._sender.__enter__()
        return self

    def send(self, events: Iterable[dict]) -> None:
        self._sender.send_messages([message_of(e) for e in events])

    def __exit__(self, *exc) -> None:
        try:
            if self._sender is not None:
                self._sender.__exit__(*exc)
        finally:
            self._client.__exit__(*exc)
