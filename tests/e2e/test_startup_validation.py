"""A misconfigured app refuses to start: the local host indexes no function, lists every problem, consumes nothing."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest

from devtools.send import build_event, send_events
from funchost import LocalFunctionsHost

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def _forget_app():
    from shared.bootstrap import reset

    for name in [m for m in sys.modules if m == "function_app" or m.startswith("functions")]:
        del sys.modules[name]
    reset()


def test_missing_and_invalid_settings_index_no_function_and_leave_the_queue_alone(stack_env, local_stack, caplog,
                                                                                 monkeypatch):
    settings = {k: v for k, v in stack_env.items() if k != "AUTH0_DOMAIN"}
    settings.update(CLAIM_TTL_SECONDS="soon", KEYVAULT_URL="http://not-https.example")
    monkeypatch.delenv("AUTH0_DOMAIN", raising=False)
    for key in ("CLAIM_TTL_SECONDS", "KEYVAULT_URL"):
        monkeypatch.setenv(key, settings[key])  # the environment wins over the host's settings, as in Core Tools
    send_events([build_event("created", "misconfigured", profile="oem")], stack_env)
    _forget_app()
    host = LocalFunctionsHost(str(ROOT), settings, functions=["customer_events"])
    try:
        with caplog.at_level(logging.INFO):
            host.start()
        assert host.functions == [] and host.index_error
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "Worker failed to index functions" in text
        for problem in ("AUTH0_DOMAIN: is required", "CLAIM_TTL_SECONDS: must be a number",
                        "KEYVAULT_URL: must be a URL starting with https://"):
            assert problem in text, problem
        time.sleep(2)  # a listener, had one started, would have taken the message by now
        queue = local_stack.servicebus.snapshot()["queues"][stack_env["CUSTOMER_EVENTS_QUEUE"]]
        waiting = [m for m in queue["messages"] if m["state"] != "scheduled"]
        assert len(waiting) == 1 and waiting[0]["delivery_count"] == 0
        assert queue["dead_letter_count"] == 0
    finally:
        host.stop(5)
        _forget_app()
