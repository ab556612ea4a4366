"""Helpers for the ops tool tests: the stand-in's queues, the tool run as a separate process, and putting events on a
queue and into its dead-letter queue with the real SDK."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue

from emulators.servicebus.config import queue_entry

ROOT = Path(__file__).resolve().parents[2]
#: queues per kind in the shared stand-in: each test takes fresh ones
POOL = 60


def _queue(name: str, **props) -> dict:
    return queue_entry(name, **{"MaxDeliveryCount": 2, "RequiresDuplicateDetection": True, **props})


KINDS = {
    # what the app's queue looks like: duplicate detection on (10 minutes), no sessions
    "dedup": dict(RequiresDuplicateDetection=True),
    "plain": dict(RequiresDuplicateDetection=False),
    "sessions": dict(RequiresDuplicateDetection=True, RequiresSession=True),
}


def standin_config(kinds=KINDS, pool: int = POOL) -> dict:
    queues = [_queue(f"{kind}-{i}", **props) for kind, props in kinds.items() for i in range(pool)]
    return {"UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": queues, "Topics": []}],
                           "Logging": {"Type": "Console"}}}


class Tool:
    """Runs ``python -m opstool`` as a separate process with only the settings a test gives it."""

    def __init__(self, servicebus, tmp_path: Path):
        self.servicebus = servicebus
        self.cwd = tmp_path  # where default export files land
        self.settings_file = tmp_path / "no-local-settings.json"  # never the repository's local.settings.json
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("ServiceBusConnection", "CUSTOMER_EVENTS_QUEUE", "LEDGER_CONNECTION",
                                 "AzureWebJobsStorage", "LEDGER_TABLE", "LEDGER_TABLE_ENDPOINT", "OPSTOOL_CRASH_AFTER_SEND")}
        self.env["ServiceBusConnection"] = servicebus.connection_string
        self.env["PYTHONPATH"] = str(ROOT)

    def use_ledger(self, ledger, azurite) -> None:
        self.env["LEDGER_CONNECTION"] = azurite.connection_string
        self.env["LEDGER_TABLE"] = ledger.table_name

    def run(self, command: str, *args: str, env: dict | None = None, stdin=subprocess.DEVNULL,
            timeout: float = 90) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "opstool", command, "--settings", str(self.settings_file), *args]
        if "LEDGER_CONNECTION" not in self.env:
            argv.append("--no-ledger")
        return subprocess.run(argv, cwd=self.cwd, env={**self.env, **(env or {})}, stdin=stdin, capture_output=True,
                              text=True, timeout=timeout)


    def cwd_path(self, path: str) -> Path:
        return self.cwd / path




def cloud_event(customer: str | None, kind: str = "created", **data) -> dict:
    body = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/crm", "type": f"customer.{kind}",
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "datacontenttype": "application/json", "data": {}}
    if customer is not None:
        body["data"]["customerId"] = customer
    if kind == "created":
        body["data"].update(displayName=f"{customer} Ltd", profile="oem")
    body["data"].update(data)
    return body


def message_for(event: dict, **overrides) -> ServiceBusMessage:
    customer = (event.get("data") or {}).get("customerId")
    kwargs = dict(message_id=event["id"], session_id=customer, content_type="application/cloudevents+json",
                  subject=event["type"])
    kwargs.update(overrides)
    return ServiceBusMessage(json.dumps(event), **kwargs)


def send(cs: str, queue: str, *messages: ServiceBusMessage) -> None:
    with ServiceBusClient.from_connection_string(cs) as client, client.get_queue_sender(queue) as sender:
        for m in messages:
            sender.send_messages(m)


def dead_letter_all(cs: str, queue: str, reason: str, description: str, *, expected: int,
                    session_id: str | None = None) -> list[str]:
    """Receive ``expected`` messages and dead-letter each with the reason; returns their message ids."""
    ids: list[str] = []
    with ServiceBusClient.from_connection_string(cs) as client:
        with client.get_queue_receiver(queue, session_id=session_id) as receiver:
            while len(ids) < expected:
                batch = receiver.receive_messages(max_message_count=expected - len(ids), max_wait_time=5)
                assert batch, f"only {len(ids)} of {expected} messages arrived on {queue}"
                for m in batch:
                    receiver.dead_letter_message(m, reason=reason, error_description=description)
                    ids.append(m.message_id)
    return ids


def abandon_until_dead_lettered(cs: str, queue: str, expected: int, max_delivery_count: int = 2) -> None:
    """What the Functions host does when the function keeps raising: abandon until MaxDeliveryCount."""
    with ServiceBusClient.from_connection_string(cs) as client, client.get_queue_receiver(queue) as receiver:
        for _ in range(max_delivery_count):
            got = 0
            while got < expected:
                batch = receiver.receive_messages(max_message_count=expected - got, max_wait_time=5)
                assert batch
                for m in batch:
                    receiver.abandon_message(m)
                got += len(batch)


def peek(cs: str, queue: str, *, dead_letter: bool = False, session_id: str | None = None) -> list:
    """Browse a queue (of a session queue: one session's messages) or its dead-letter queue."""
    sub = ServiceBusSubQueue.DEAD_LETTER if dead_letter else None
    out = []
    with ServiceBusClient.from_connection_string(cs) as client:
        with client.get_queue_receiver(queue, sub_queue=sub, session_id=session_id) as receiver:
            seq = 1
            while True:
                batch = receiver.peek_messages(max_message_count=100, sequence_number=seq)
                if not batch:
                    return out
                out.extend(batch)
                seq = batch[-1].sequence_number + 1


def dlq_seq(cs: str, queue: str, message_id: str) -> int:
    for m in peek(cs, queue, dead_letter=True):
        if m.message_id == message_id:
            return m.sequence_number
    raise AssertionError(f"{message_id} is not in the dead-letter queue of {queue}")


def props(message) -> dict:
    """Application properties with str keys and str values, as a sender wrote them."""
    out = {}
    for k, v in (message.application_properties or {}).items():
        k = k.decode() if isinstance(k, bytes) else k
        out[k] = v.decode() if isinstance(v, bytes) else v
    return out


def body(message) -> bytes:
    return b"".join(message.body)


def view(servicebus, queue: str) -> dict:
    return servicebus.snapshot()["queues"][queue]
