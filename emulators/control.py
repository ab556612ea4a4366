"""A small client for the stand-ins' control API, used by tests, the chaos suite and benchmarks.

    ctl = StandInControl("https://127.0.0.1:8443", verify="/path/ca.pem")
    ctl.set_faults([{"op": "clients.create", "latency_ms": 40}])
    ctl.fail_next("secrets.set", 503, count=2)
    ctl.calls()  # {"calls": {"secrets.set": 3}, "injected": {"secrets.set:503": 2}}
"""
from __future__ import annotations

import json
import ssl
import urllib.request


class StandInControl:
    def __init__(self, base_url: str, verify: str | None = None, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._ctx = ssl.create_default_context(cafile=verify) if base_url.startswith("https") else None

    def _call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base_url}/_control/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout, context=self._ctx) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def health(self) -> dict:
        return self._call("GET", "health")

    def calls(self) -> dict:
        return self._call("GET", "calls")

    def clear_calls(self) -> None:
        self._call("DELETE", "calls")

    def set_faults(self, rules: list[dict], timeout_seconds: float | None = None) -> dict:
        body = {"rules": rules}
        if timeout_seconds is not None:
            body["timeout_seconds"] = timeout_seconds
        return self._call("PUT", "faults", body)

    def fail_next(self, op: str, fail_with, count: int = 1) -> dict:
        return self._call("POST", "faults/script", {"op": op, "fail_with": fail_with, "count": count})

    def faults(self) -> dict:
        """The rules, scripts and counters in force."""
        return self._call("GET", "faults")

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def state(self) -> dict:
        return self._call("GET", "state")

    def reset(self) -> None:
        self._call("POST", "reset")

    def config(self, **values) -> dict:
        return self._call("PATCH", "config", values) if values else self._call("GET", "config")
