"""A second client: Microsoft's JavaScript SDK (@azure/service-bus, rhea-based) against the stand-in.

The suite itself is ``js/interop.test.mjs`` (node's built-in test runner); this test starts nothing
of its own beyond the session's stand-in, hands node the connection string and queue names through
environment variables, and passes when ``node --test`` exits 0.

The npm package is a dev dependency (package.json), installed by ``make test``'s ``npm ci``. Without
it the test skips on a developer's machine, but fails under CI (``CI`` set), where a skip would hide
a broken install.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusMessage

from sb_interop import JS_QUEUES, JS_TOPIC

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = Path(__file__).resolve().parent / "js"
NODE_TIMEOUT = 240  # seconds for the whole node run; it takes about 10 s on two cores

pytestmark = pytest.mark.timeout(NODE_TIMEOUT + 30)


def _missing_prerequisite():
    if shutil.which("node") is None:
        return "node is not installed"
    if not (ROOT / "node_modules" / "@azure" / "service-bus" / "package.json").is_file():
        return "node_modules/@azure/service-bus is missing (run npm ci)"
    return None


def _send_for_javascript(senders):
    senders.queue(JS_QUEUES["from_python"]["Name"]).send_messages(
        ServiceBusMessage(
            json.dumps({"type": "customer.created", "id": "evt-1"}),
            message_id="py-to-js-1",
            content_type="application/cloudevents+json",
            subject="customer.created",
            correlation_id="corr-py",
            application_properties={
                "source": "crm",
                "attempt": 3,
                "ratio": 0.25,
                "urgent": True,
                "when": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
            },
        )
    )


def _receive_from_javascript(client):
    with client.get_queue_receiver(JS_QUEUES["to_python"]["Name"], max_wait_time=5) as receiver:
        messages = receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert len(messages) == 1, "the JavaScript suite left no message for the Python SDK"
        m = messages[0]
        assert m.message_id == "js-to-py-1"
        assert json.loads(b"".join(m.body)) == {"type": "customer.removed", "id": "evt-2"}
        assert (m.content_type, m.subject, m.correlation_id) == ("application/cloudevents+json", "customer.removed", "corr-js")
        assert m.delivery_count == 0
        props = m.application_properties
        assert props[b"source"] == b"crm-js" and props[b"attempt"] == 2 and props[b"ratio"] == 0.5 and props[b"urgent"] is False
        receiver.complete_message(m)


def test_javascript_sdk_interop_suite(standin, client, senders):
    missing = _missing_prerequisite()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the JavaScript interop suite cannot run under CI: {missing}")
        pytest.skip(missing)

    env = dict(os.environ)
    env["SERVICEBUS_CONNECTION_STRING"] = standin.connection_string
    for key, entry in JS_QUEUES.items():  # SB_QUEUE_BASIC, ..., SB_QUEUE_FROM_PYTHON, SB_QUEUE_TO_PYTHON
        env[f"SB_QUEUE_{key.upper()}"] = entry["Name"]
    env["SB_TOPIC_EVENTS"] = JS_TOPIC["Name"]
    _send_for_javascript(senders)
    files = sorted(str(p) for p in JS_DIR.glob("*.test.mjs"))
    assert files, f"no *.test.mjs under {JS_DIR}"

    started = time.monotonic()
    try:
        proc = subprocess.run(
            ["node", "--test", "--test-reporter=spec", *files],
            cwd=ROOT,  # node resolves @azure/service-bus from the repository's node_modules
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"node --test did not finish within {NODE_TIMEOUT}s\n--- stdout\n{out}\n--- stderr\n{err}")
    elapsed = time.monotonic() - started
    print(proc.stdout)  # shown with -s or -rP
    print(f"node --test took {elapsed:.1f}s")
    if proc.returncode != 0:
        pytest.fail(
            f"node --test exited {proc.returncode} after {elapsed:.1f}s\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    # node's closing summary ("ℹ pass N", "ℹ fail 0"): a run that executed no test is no pass.
    assert "fail 0" in proc.stdout and "pass 0" not in proc.stdout, proc.stdout
    _receive_from_javascript(client)
