"""Fixtures for the ops tool tests: the Service Bus stand-in driven by the real azure-servicebus SDK, Azurite for the
ledger (through the app's own TableLedger), and the tool run as the on-call engineer runs it: a separate process.

Each test gets queues no other test touches (a pool of pre-declared names per kind), so the tests can share one
stand-in and still assert exact queue contents.
"""
from __future__ import annotations

import itertools
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dlq_helpers import KINDS, POOL, Tool, standin_config  # noqa: E402


@pytest.fixture(scope="session")
def servicebus():
    from emulators.servicebus import ServiceBusStandIn

    sb = ServiceBusStandIn(standin_config(), host="127.0.0.1", port=0)
    sb.start()
    yield sb
    sb.stop()


_counters = {kind: itertools.count() for kind in KINDS}


def _take(kind: str) -> str:
    n = next(_counters[kind])
    if n >= POOL:
        raise RuntimeError(f"more than {POOL} tests want a {kind!r} queue: raise POOL in tests/opstool/dlq_helpers.py")
    return f"{kind}-{n}"


@pytest.fixture
def queue(servicebus) -> str:
    """A fresh queue like the app's: duplicate detection on, no sessions."""
    return _take("dedup")


@pytest.fixture
def plain_queue(servicebus) -> str:
    """A fresh queue without duplicate detection."""
    return _take("plain")


@pytest.fixture
def session_queue(servicebus) -> str:
    return _take("sessions")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    from emulators.azurite import Azurite

    instance = Azurite(tmp_path_factory.mktemp("azurite")).start()
    yield instance
    instance.stop()


@pytest.fixture
def ledger(azurite):
    """The app's ledger adapter over a table of this test's own."""
    from shared.adapters.table_ledger import TableLedger

    table = "opsledger" + uuid.uuid4().hex[:12]
    led = TableLedger(table, connection_string=azurite.connection_string, timeout=10)
    yield led
    led.close()


@pytest.fixture
def tool(servicebus, tmp_path) -> Tool:
    return Tool(servicebus, tmp_path)
