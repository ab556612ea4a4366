"""Publishes result events (from the ledger's outbox) on the CRM's Service Bus topic with azure-servicebus.

Each message is the CloudEvent in structured mode (content type ``application/cloudevents+json``), its message id
the one derived from the source event and the outcome, so the topic's duplicate detection drops a second send of
the same event (the outbox resends what it cannot be sure was sent). ``subject`` is the event type and the
application properties carry the type and the customer id, so a subscription can filter without reading bodies.
"""
from __future__ import annotations

from ..domain.records import OutboxEntry
from ..domain.results import CONTENT_TYPE
from ..service_layer.ports import ResultPublisher
from ..settings import ServiceBusConnection
from .servicebus_client import SharedSender


class ServiceBusResultPublisher(ResultPublisher):
    def __init__(self, topic: str, connection: ServiceBusConnection, *, default_client_id: str | None = None,
                 type_prefix: str = ""):
        self.topic = topic
        self.type_prefix = type_prefix
        self._sender = SharedSender(connection, lambda client: client.get_topic_sender(topic),
                                    default_client_id=default_client_id)

    @classmethod
    def from_settings(cls, settings) -> "ServiceBusResultPublisher":
        return cls(settings.result_events_topic, settings.service_bus, default_client_id=settings.azure_client_id,
                   type_prefix=settings.event_type_prefix)

    def publish(self, entries: list[OutboxEntry]) -> None:
        from azure.servicebus import ServiceBusMessage

        messages = [ServiceBusMessage(
            entry.body, message_id=entry.message_id, content_type=CONTENT_TYPE,
            subject=self.type_prefix + entry.event_type,
            application_properties={"type": self.type_prefix + entry.event_type, "customerId": entry.customer_id})
            for entry in entries]
        self._sender.use(lambda sender: sender.send_messages(messages), operation="publish_results",
                         failure="could not publish the result events")

    def warm_up(self) -> None:
        self._sender.open(operation="open_results_sender", failure="could not open the result events' sender")

    def close(self) -> None:
        self._sender.close()
