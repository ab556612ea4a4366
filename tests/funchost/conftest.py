"""Fixtures for the funchost tests: one Service Bus stand-in per session, a host factory, the sample app's records.

The sample app (``sample_app/function_app.py``) appends what each invocation saw to a JSON-lines file; tests read
it back. Every test uses its own queue, so tests never see each other's messages.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from emulators.servicebus import ServiceBusStandIn  # noqa: E402
from funchost import LocalFunctionsHost  # noqa: E402
from host_helpers import SAMPLE_APP, STANDIN_CONFIG  # noqa: E402


# Short receive waits keep host.stop() quick; everything else stays at the Functions defaults unless a test says.
POLL = 0.5


@pytest.fixture(scope="session")
def standin():
    sb = ServiceBusStandIn(STANDIN_CONFIG).start()
    yield sb
    sb.stop()


@pytest.fixture
def record_file(tmp_path) -> Path:
    path = tmp_path / "records.jsonl"
    path.touch()
    return path


@pytest.fixture
def make_host(standin, record_file, tmp_path):
    """``make_host(functions, host_json=None, **settings)``: a started LocalFunctionsHost, stopped at teardown."""
    hosts: list[LocalFunctionsHost] = []

    def make(functions, host_json=None, connection_string=None, app_root=SAMPLE_APP, **settings):
        values = {"ServiceBusConnection": connection_string or standin.connection_string,
                  "RECORD_FILE": str(record_file), **settings}
        host = LocalFunctionsHost(app_root, values, host_json=host_json or {"version": "2.0"},
                                  functions=functions, poll_interval=POLL, state_dir=tmp_path / "host-state")
        hosts.append(host)
        return host.start()

    yield make
    for host in hosts:
        host.stop(10)
