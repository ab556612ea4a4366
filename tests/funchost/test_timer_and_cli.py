"""The timer trigger, and ``python -m funchost`` as a process (settings file, environment precedence, SIGINT)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from azure.servicebus import ServiceBusMessage

from host_helpers import SAMPLE_APP, body, entity_view, read_records, send, wait_for

pytestmark = pytest.mark.timeout(60)

ROOT = SAMPLE_APP.parents[2]


def test_timer_fires_on_its_ncrontab_schedule(make_host, record_file):
    host = make_host(["tick"], TICK_SCHEDULE="*/1 * * * * *")  # every second
    ticks = wait_for(lambda: len(read_records(record_file, "tick")) >= 2 and read_records(record_file, "tick"),
                     timeout=10)
    assert ticks and all(t["past_due"] is False for t in ticks)
    # use_monitor=False: no schedule monitor, so the host sends ScheduleStatus null.
    assert not ticks[0]["schedule_status"]
    assert ticks[1]["t"] - ticks[0]["t"] >= 0.5  # one invocation per occurrence, not a burst
    assert host.invocations["tick"]["succeeded"] >= 2


def test_cli_runs_until_sigint_and_environment_wins_over_local_settings(standin, tmp_path, record_file):
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "ServiceBusConnection": standin.connection_string,
        "WORK_QUEUE": "not-this-queue",  # the environment below sets it: func start keeps the environment's
        "RECORD_FILE": str(record_file)}}))
    env = {**os.environ, "WORK_QUEUE": "cli", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "funchost", "--app-root", str(SAMPLE_APP), "--settings", str(settings),
         "--functions", "work"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        send(standin, "cli", ServiceBusMessage(body(id="via-cli"), message_id="cli-1"))
        assert wait_for(lambda: read_records(record_file, "end"), timeout=30)
        time.sleep(0.3)  # let the completion reach the broker
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Skipping 'WORK_QUEUE' from local settings as it's already defined in current environment variables." \
        in output
    assert "Executing 'Functions.work' (Reason='(null)', Id=" in output
    assert "Trigger Details: MessageId: cli-1, SequenceNumber: " in output
    assert "Executed 'Functions.work' (Succeeded, Id=" in output
    assert "handling via-cli" in output  # the app's own logging reaches the console
    assert "Host stopped" in output
    view = entity_view(standin, "cli")
    assert view["active_count"] + view["locked_count"] == 0
