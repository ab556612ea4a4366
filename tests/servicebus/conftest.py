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
from emulators.servicebus.config import queue_entry  # noqa: E402
from sb_interop import JS_QUEUES, JS_TOPIC  # noqa: E402


# Each test owns its queue so tests never see each other's messages.
TEST_CONFIG = {
    "UserConfig": {
        "Namespaces": [
            {
                "Name": "sbemulatorns",
                "Queues": [
                    queue_entry("basic"),
                    queue_entry("batch"),
                    queue_entry("recv-delete"),
                    queue_entry("abandon", MaxDeliveryCount=3),
                    queue_entry("deadletter"),
                    queue_entry("defer"),
                    queue_entry("lock-expiry", LockDuration="PT2S"),
                    queue_entry("renew", LockDuration="PT2S"),
                    queue_entry("mdc-expiry", LockDuration="PT1S", MaxDeliveryCount=2),
                    queue_entry("peek"),
                    queue_entry("schedule"),
                    queue_entry("ttl-dlq", DefaultMessageTimeToLive="PT1S", DeadLetteringOnMessageExpiration=True),
                    queue_entry("ttl-drop", DefaultMessageTimeToLive="PT1S", DeadLetteringOnMessageExpiration=False),
                    queue_entry("ttl-msg", DefaultMessageTimeToLive="PT1H", DeadLetteringOnMessageExpiration=True),
                    queue_entry("dedupe", RequiresDuplicateDetection=True, DuplicateDetectionHistoryTimeWindow="PT10M"),
                    queue_entry("prefetch"),
                    queue_entry("drop", LockDuration="PT2S"),
                    queue_entry("sessions", RequiresSession=True),
                    queue_entry("sessions-next", RequiresSession=True),
                    queue_entry("sessions-order", RequiresSession=True),
                    queue_entry("sessions-lock", RequiresSession=True, LockDuration="PT2S"),
                    queue_entry("fwd-source", ForwardDeadLetteredMessagesTo="fwd-target"),
                    queue_entry("fwd-target"),
                    queue_entry("fwd-chain", ForwardTo="fwd-chain-target"),
                    queue_entry("fwd-chain-target"),
                    queue_entry("loop-a", ForwardTo="loop-b"),
                    queue_entry("loop-b", ForwardTo="loop-a"),
                    queue_entry("misc"),
                    queue_entry("robust"),
                    queue_entry("values"),
                    queue_entry("snapshot"),
                    # The JavaScript client's interop suite (test_sb_js_interop.py, js/interop.test.mjs)
                    *JS_QUEUES.values(),
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
                    },
                    JS_TOPIC,
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
