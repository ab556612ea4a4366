"""Schedules retry copies of a message on its own queue with azure-servicebus.

The Functions Service Bus binding cannot delay a message, and `@app.retry` is not supported for Service Bus
triggers, so (as in Microsoft's own sample) the trigger completes the message after this adapter has scheduled a
copy. The copy keeps body, session id, correlation id, content type and subject, so ordering per session and
tracing survive the retry.
"""
from __future__ import annotations

import datetime as dt

from ..service_layer.ports import RetryScheduler
from ..settings import ServiceBusConnection
from .servicebus_client import SharedSender


class ServiceBusRetryScheduler(RetryScheduler):
    def __init__(self, queue: str, connection: ServiceBusConnection, *, default_client_id: str | None = None):
        self.queue = queue
        self._sender = SharedSender(connection, lambda client: client.get_queue_sender(queue),
                                    default_client_id=default_client_id)

    @classmethod
    def from_settings(cls, settings) -> "ServiceBusRetryScheduler":
        """The trigger's own queue and connection, as the Functions host resolves them."""
        return cls(settings.customer_events_queue, settings.service_bus, default_client_id=settings.azure_client_id)

    def schedule_retry(self, message, *, delay_seconds: float, properties: dict, message_id: str) -> None:
        from azure.servicebus import ServiceBusMessage

        app_props = {k: v for k, v in (message.application_properties or {}).items()
                     if isinstance(k, str)}
        app_props.update(properties)
        copy = ServiceBusMessage(
            message.body, message_id=message_id, session_id=message.session_id,
            correlation_id=message.correlation_id, content_type=message.content_type, subject=message.subject,
            application_properties=app_props)
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=delay_seconds)
        self._sender.use(lambda sender: sender.schedule_messages(copy, when), operation="schedule_messages",
                         failure="could not schedule the retry")

    def warm_up(self) -> None:
        self._sender.open(operation="open_retry_sender", failure="could not open the retry copies' sender")

    def close(self) -> None:
        self._sender.close()
