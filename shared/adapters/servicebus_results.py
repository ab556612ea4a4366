"""Publishes result events (from the ledger's outbox) on the CRM's Service Bus topic with azure-servicebus.

Each message is the CloudEvent in structured mode (content type ``application/cloudevents+json``), its message id
the one derived from the source event and the outcome, so the topic's duplicate detection drops a second send of
the same event (the outbox resends what it cannot be sure was sent). ``subject`` is the event type and the
application properties carry the type and the customer id, so a subscription can filter without reading bodies.
"""
from __future__ import annotations

import threading

from ..domain.errors import TransientError
from ..domain.records import OutboxEntry
from ..domain.results import CONTENT_TYPE
from ..service_layer.ports import ResultPublisher
from ..settings import ServiceBusConnection
from .servicebus_client import service_bus_client


class ServiceBusResultPublisher(ResultPublisher):
    def __init__(self, topic: str, connection: ServiceBusConnection, *, default_client_id: str | None = None,
                 type_prefix: str = ""):
        self.topic = topic
        self.type_prefix = type_prefix
        self._connection = connection
        self._default_client_id = default_client_id
        self._lock = threading.Lock()  # a ServiceBusSender is not thread-safe
        self._client = None
        self._sender = None

    @classmethod
    def from_settings(cls, settings) -> "ServiceBusResultPublisher":
        return cls(settings.result_events_topic, settings.service_bus, default_client_id=settings.azure_client_id,
                   type_prefix=settings.event_type_prefix)

    def _get_sender(self):
        if self._sender is None:
            self._client = service_bus_client(self._connection, default_client_id=self._default_client_id)
            self._sender = self._client.get_topic_sender(self.topic)
        return self._sender

    def _reset(self) -> None:
        for part in (self._sender, self._client):
            try:
                if part is not None:
                    part.close()
            except Exception:  # a broken link is why we are resetting; nothing more to do with it
                pass
        self._sender = self._client = None

    def publish(self, entries: list[OutboxEntry]) -> None:
        from azure.servicebus import ServiceBusMessage
        from azure.servicebus.exceptions import ServiceBusError

        messages = [ServiceBusMessage(
            entry.body, message_id=entry.message_id, content_type=CONTENT_TYPE,
            subject=self.type_prefix + entry.event_type,
            application_properties={"type": self.type_prefix + entry.event_type, "customerId": entry.customer_id})
            for entry in entries]
        with self._lock:
            try:
                self._get_sender().send_messages(messages)
            except ServiceBusError as exc:
                self._reset()
                raise TransientError(f"could not publish the result events: {type(exc).__name__}",
                                     service="servicebus", operation="publish_results") from None

    def close(self) -> None:
        with self._lock:
            self._reset()
