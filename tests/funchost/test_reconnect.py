"""The host when its namespace goes away: loud, bounded reconnects, recovery on its own, a prompt Ctrl-C.

The Service Bus stand-in runs as its own process here, as it does under `make run`: stopping it closes its
sockets the way a stopped stack does (an in-process stand-in that stops its loop leaves them half-open).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusClient

from funchost.servicebus_listener import Backoff
from host_helpers import SAMPLE_APP, STANDIN_CONFIG, body, read_records, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandInProcess:
    """``python -m emulators.servicebus`` on a fixed port, restartable."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.config = tmp_path / "servicebus.json"
        self.config.write_text(json.dumps(STANDIN_CONFIG))
        self.proc: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return (f"Endpoint=sb://127.0.0.1:{self.port};SharedAccessKeyName=RootManageSharedAccessKey;"
                f"SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true")

    def start(self) -> "StandInProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulators.servicebus", "--config", str(self.config), "--port", str(self.port),
             "--log-level", "WARNING"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout.readline().startswith("Endpoint="), "the stand-in did not start"
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def send(self, queue: str, *messages: ServiceBusMessage) -> None:
        with ServiceBusClient.from_connection_string(self.connection_string) as client:
            with client.get_queue_sender(queue) as sender:
                sender.send_messages(list(messages))


@pytest.fixture
def standin_process(tmp_path):
    sb = StandInProcess(tmp_path)
    yield sb
    sb.stop()


def test_backoff_schedule_is_capped_and_visible():
    backoff = Backoff()
    assert [backoff.next_delay() for _ in range(7)] == [1, 2, 4, 8, 15, 15, 15]
    backoff.reset()
    assert backoff.next_delay() == 1


def test_host_logs_the_outage_and_recovers_when_the_stack_restarts(standin_process, make_host, record_file,
                                                                     caplog):
    sb = standin_process.start()
    # Short SDK retries, so the host's own schedule shows within the test's patience.
    retry = {"maxRetries": 1, "delay": "00:00:00.1", "maxDelay": "00:00:01"}
    with caplog.at_level(logging.INFO, logger="funchost"):
        host = make_host(["work"], {"extensions": {"serviceBus": {"maxConcurrentCalls": 2, "clientRetryOptions": retry}}},
                         connection_string=sb.connection_string, WORK_QUEUE="reconnect")
        sb.send("reconnect", ServiceBusMessage(body(id="before")))
        assert wait_for(lambda: host.invocations["work"]["succeeded"] == 1, timeout=20)

        sb.stop()
        namespace = f"127.0.0.1:{sb.port}"
        down = wait_for(lambda: [r for r in caplog.records if r.levelno == logging.ERROR
                                 and "is unreachable" in r.getMessage()], timeout=20)
        assert down, caplog.text
        first = down[0].getMessage()
        assert namespace in first and "Functions.work" in first
        # The schedule keeps being reported while it is down (not one line, then silence).
        assert wait_for(lambda: "still unreachable" in caplog.text and "next retry at " in caplog.text, timeout=15)

        sb.start()
        sb.send("reconnect", ServiceBusMessage(body(id="after")))
        assert wait_for(lambda: host.invocations["work"]["succeeded"] == 2, timeout=30), caplog.text
    back = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(back) == 1 and back[0].levelno == logging.INFO and namespace in back[0].getMessage()
    assert [r["id"] for r in read_records(record_file, "end")] == ["before", "after"]


def test_ctrl_c_stops_the_host_within_3_s_while_the_namespace_is_down(standin_process, tmp_path, record_file):
    # Nothing listens on the port: every slot sits in the SDK's own retries (default clientRetryOptions) or in
    # the host's backoff, which is where Ctrl-C used to take 11-14 s.
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {
        "ServiceBusConnection": standin_process.connection_string, "WORK_QUEUE": "reconnect",
        "RECORD_FILE": str(record_file)}}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "funchost", "--app-root", str(SAMPLE_APP), "--settings", str(settings),
         "--functions", "work"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: any("is unreachable" in line for line in lines), timeout=30), "".join(lines)
        time.sleep(1.5)  # well inside the next SDK retry sleep
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    output = "".join(lines)
    # The outage was reported while the client was still in its own retries (about 11 s with the defaults),
    # found by the host's probe of the namespace, not only once those retries ran out.
    first = next(line for line in lines if "is unreachable" in line)
    assert "the Service Bus client retries" in first and "cannot connect to" in first, output
    assert proc.returncode == 0, output
    assert "Host stopped" in output
    assert elapsed < 3.0, f"Ctrl-C took {elapsed:.1f} s\n{output}"


def test_the_reconnect_log_reads_like_the_schedule(caplog, monkeypatch):
    # Two slots fail over and over: the log tells the schedule once per step, as the README states it, not once
    # per slot and not with a count of every slot's attempts.
    from funchost import connection_health
    now = [0.0]
    monkeypatch.setattr(connection_health.time, "monotonic", lambda: now[0])
    health = connection_health.ConnectionHealth("Functions.work (q)", "127.0.0.1:1")
    slots = [connection_health.Backoff(), connection_health.Backoff()]
    with caplog.at_level(logging.DEBUG, logger="funchost.servicebus"):
        for _ in range(7):
            for backoff in slots:
                delay = backoff.next_delay()
                health.failed(ConnectionRefusedError("refused"), backoff.attempt, delay)
            now[0] += delay
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "reconnecting at 1, 2, 4, 8, then every 15 s (next at " in errors[0]
    assert [m.split("(attempt ")[1].split(" ")[0] for m in errors[1:]] == ["2", "3", "4", "5", "6", "7"]
    assert all("of the schedule 1, 2, 4, 8, then every 15 s" in m for m in errors[1:])
    assert "in 2 s" in errors[1] and "in 15 s" in errors[-1]
