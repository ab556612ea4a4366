"""Helpers shared by the funchost tests (records written by the sample app, sending, polling)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from azure.servicebus import ServiceBusClient, ServiceBusMessage

SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"
UNBOUND_APP = Path(__file__).resolve().parent / "unbound_app"
CONFORMANCE_APP = Path(__file__).resolve().parent / "conformance_app"


def _queue(name: str, **props) -> dict:
    base = {"MaxDeliveryCount": 10, "LockDuration": "PT5S", "RequiresSession": False,
            "DefaultMessageTimeToLive": "PT1H", "DeadLetteringOnMessageExpiration": False,
            "RequiresDuplicateDetection": False, "DuplicateDetectionHistoryTimeWindow": "PT20S"}
    base.update(props)
    return {"Name": name, "Properties": base}


STANDIN_CONFIG = {"UserConfig": {"Namespaces": [{
    "Name": "sbemulatorns",
    "Queues": [
        _queue("complete"),
        _queue("poison", MaxDeliveryCount=3),
        _queue("retry-then-ok", MaxDeliveryCount=5),
        _queue("renew", LockDuration="PT2S"),
        _queue("concurrency"),
        _queue("timeout", MaxDeliveryCount=2),
        _queue("logs"),
        _queue("reconnect"),
        _queue("cli"),
        _queue("sessions", RequiresSession=True),
        _queue("settle", LockDuration="PT2S", MaxDeliveryCount=3),
        _queue("conf-single"),
        _queue("conf-session", RequiresSession=True),
        _queue("conf-batch"),
        _queue("conf-settle", LockDuration="PT2S", MaxDeliveryCount=2),
    ],
    "Topics": [{"Name": "events", "Properties": {"DefaultMessageTimeToLive": "PT1H"},
                "Subscriptions": [{"Name": "funcs", "Properties": {"LockDuration": "PT5S", "MaxDeliveryCount": 3}}]}],
}], "Logging": {"Type": "Console"}}}


def read_records(path: Path, event: str | None = None) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in lines if event is None or r["event"] == event]


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll until ``predicate()`` is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def send(standin, entity: str, *messages: ServiceBusMessage, topic: bool = False) -> None:
    with ServiceBusClient.from_connection_string(standin.connection_string) as client:
        sender = client.get_topic_sender(entity) if topic else client.get_queue_sender(entity)
        with sender:
            sender.send_messages(list(messages))


def body(**fields) -> str:
    return json.dumps(fields)


def entity_view(standin, queue: str) -> dict:
    return standin.snapshot()["queues"][queue]
