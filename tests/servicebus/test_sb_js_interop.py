"""A second client: Microsoft's JavaScript SDK (@azure/service-bus, rhea-based) against the stand-in.

The suite itself is ``js/interop.test.mjs`` (node's built-in test runner); this test starts nothing
of its own beyond the session's stand-in, hands node the connection string and queue names through
environment variables, and passes when ``node --test`` exits 0.

The npm package is a dev dependency (package.json), installed by ``make test``'s ``npm ci``. Without
it the test skips on a developer's machine, but fails under CI (``CI`` set), where a skip would hide
a broken install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import JS_QUEUES, JS_TOPIC, ROOT

JS_DIR = Path(__file__).resolve().parent / "js"
NODE_TIMEOUT = 240  # seconds for the whole node run; it takes about 10 s on two cores

pytestmark = pytest.mark.timeout(NODE_TIMEOUT + 30)


def _missing_prerequisite():
    if shutil.which("node") is None:
        return "node is not installed"
    if not (ROOT / "node_modules" / "@azure" / "service-bus" / "package.json").is_file():
        return "node_modules/@azure/service-bus is missing (run npm ci)"
    return None


def test_javascript_sdk_interop_suite(standin):
    missing = _missing_prerequisite()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the JavaScript interop suite cannot run under CI: {missing}")
        pytest.skip(missing)

    env = dict(os.environ)
    env["SERVICEBUS_CONNECTION_STRING"] = standin.connection_string
    for key, entry in JS_QUEUES.items():
        env[f"SB_QUEUE_{key.upper()}"] = entry["Name"]
    env["SB_TOPIC_EVENTS"] = JS_TOPIC["Name"]
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
