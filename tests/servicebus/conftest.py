"""Fixtures for the Service Bus stand-in tests: one stand-in per test session, real SDK clients."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for _path in (ROOT, HERE):  # the repo (for ``emulators``) and this folder (for ``sb_helpers``)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from azure.servicebus import ServiceBusClient  # noqa: E402

from emulators.servicebus import ServiceBusStandIn  # noqa: E402


def _queue(name, **props):
    base = {
        "DeadLetteringOnMessageExpiration": False,
        "DefaultMessageTimeToLive": "PT1H",
        "DuplicateDetectionHistoryTimeWindow": "PT10M",
        "ForwardDeadLetteredMessagesTo": "",
        "ForwardTo": "",
        "LockDuration": "PT5S",
        "MaxDeliveryCount": 10,
        "RequiresDuplicateDetection": False,
        "RequiresSession": False,
    }
    base.update(props)
    return {"Name": name, "Properties": base}


# Each test owns its queue so tests never see each other's messages.
TEST_CONFIG = {
    "UserConfig": {
        "Namespaces": [
            {
                "Name": "sbemulatorns",
                "Queues": [
                    _queue("basic"),
                    _queue("batch"),
                    _queue("recv-delete"),
                    _queue("abandon", MaxDeliveryCount=3),
                    _queue("deadletter"),
                    _queue("defer"),
                    _queue("lock-expiry", LockDuration="PT2S"),
                    _queue("renew", LockDuration="PT2S"),
                    _queue("mdc-expiry", LockDuration="PT1S", MaxDeliveryCount=2),
                    _queue("peek"),
                    _queue("schedule"),
                    _queue("ttl-dlq", DefaultMessageTimeToLive="PT1S", DeadLetteringOnMessageExpiration=True),
                    _queue("ttl-drop", DefaultMessageTimeToLive="PT1S", DeadLetteringOnMessageExpiration=False),
                    _queue("ttl-msg", DefaultMessageTimeToLive="PT1H", DeadLetteringOnMessageExpiration=True),
                    _queue("dedupe", RequiresDuplicateDetection=True, DuplicateDetectionHistoryTimeWindow="PT10M"),
                    _queue("prefetch"),
                    _queue("drop", LockDuration="PT2S"),
                    _queue("sessions", RequiresSession=True),
                    _queue("sessions-next", RequiresSession=True),
                    _queue("sessions-order", RequiresSession=True),
                    _queue("sessions-lock", RequiresSession=True, LockDuration="PT2S"),
                    _queue("fwd-source", ForwardDeadLetteredMessagesTo="fwd-target"),
                    _queue("fwd-target"),
                    _queue("fwd-chain", ForwardTo="fwd-chain-target"),
                    _queue("fwd-chain-target"),
                    _queue("loop-a", ForwardTo="loop-b"),
                    _queue("loop-b", ForwardTo="loop-a"),
                    _queue("misc"),
                    _queue("robust"),
                    _queue("values"),
                    _queue("snapshot"),
                ],
                "Topics": [
                    {
                        "Name": "events",
                        "Properties": {
                            "DefaultMessageTimeToLive": "PT1H",
                            "DuplicateDetectionHistoryTimeWindow": "PT10M",
                            "RequiresDuplicateDetection": False,
                        },
                        "Subscriptions": [
                            {"Name": "all", "Properties": {"LockDuration": "PT5S", "MaxDeliveryCount": 3}},
                            {
                                "Name": "gold-created",
                                "Properties": {"LockDuration": "PT5S", "MaxDeliveryCount": 3},
                                "Rules": [
                                    {
                                        "Name": "gold",
                                        "Properties": {
                                            "FilterType": "Correlation",
                                            "CorrelationFilter": {"Label": "created", "Properties": {"tier": "gold"}},
                                        },
                                    }
                                ],
                            },
                        ],
                    }
                ],
            }
        ],
        "Logging": {"Type": "Console"},
    }
}


@pytest.fixture(scope="session")
def standin():
    sb = ServiceBusStandIn(TEST_CONFIG).start()
    yield sb
    sb.stop()


@pytest.fixture(scope="session")
def client(standin):
    with ServiceBusClient.from_connection_string(standin.connection_string) as c:
        yield c


class _SenderPool:
    """Senders kept open for the whole test session.

    Opening and closing an SDK sender costs about a second of client-side sleeping
    (``_pyamqp/client.py`` open loop and keep-alive join), so tests reuse one per entity.
    """

    def __init__(self, client):
        self._client = client
        self._senders = {}

    def queue(self, name):
        return self._get(("queue", name), lambda: self._client.get_queue_sender(name))

    def topic(self, name):
        return self._get(("topic", name), lambda: self._client.get_topic_sender(name))

    def _get(self, key, factory):
        sender = self._senders.get(key)
        if sender is None:
            sender = factory()
            sender.__enter__()
            self._senders[key] = sender
        return sender

    def close(self):
        import threading

        threads = [threading.Thread(target=s.close) for s in self._senders.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)


@pytest.fixture(scope="session")
def senders(client):
    pool = _SenderPool(client)
    yield pool
    pool.close()


class _BackgroundCloser:
    """Context managers for receivers whose close the test does not depend on.

    Closing a receiver blocks for up to ~1.5 s in the SDK (drain on close plus joining the
    keep-alive thread, ``_pyamqp/client.py``); such closes run in the background and are joined
    at the end of the session. Tests that assert what a close does use ``with`` directly.
    """

    def __init__(self):
        self._threads = []

    @contextlib.contextmanager
    def receiver(self, factory):
        import threading

        handler = factory()
        handler.__enter__()
        try:
            yield handler
        finally:
            t = threading.Thread(target=handler.close, daemon=True)
            t.start()
            self._threads.append(t)

    def join(self):
        for t in self._threads:
            t.join(15)


@pytest.fixture(scope="session")
def bg(client):
    closer = _BackgroundCloser()
    yield closer
    closer.join()
