"""Fault injection shared by every HTTP stand-in.

Rules match a stand-in's operation names (``clients.create``, ``secrets.set``...) with shell-style
wildcards, so a test can slow down one call or break a whole service. Two kinds of rule:

- a *rate* rule: every matching call gets ``latency_ms`` added and fails with probability ``error_rate``,
  the failure drawn from ``errors``; with ``latency_p95_ms`` as well, the latency is drawn from a lognormal
  distribution with median ``latency_ms`` and that 95th percentile (a latency profile, ``bench/profiles/``);
- a *script*: "the next N matching calls fail with Y", consumed in order before any rate rule applies.

Failure kinds: an HTTP status (500, 503, 429...), ``timeout`` (the stand-in holds the request longer than
the client waits, then drops it), ``drop`` (the connection is closed without a response, the call not applied)
and ``drop_after`` (the call is applied, then the connection is closed before the response).
"""
from __future__ import annotations

import fnmatch
import math
import random
import threading
from dataclasses import dataclass, field

FAILURE_KINDS = ("timeout", "drop", "drop_after")


def _check_kind(kind) -> str | int:
    if isinstance(kind, int) and 400 <= kind <= 599:
        return kind
    if isinstance(kind, str) and kind.isdigit() and 400 <= int(kind) <= 599:
        return int(kind)
    if kind in FAILURE_KINDS:
        return kind
    raise ValueError(f"unknown failure kind {kind!r}: use an HTTP status 400-599, 'timeout' or 'drop'")


@dataclass
class RateRule:
    op: str = "*"
    latency_ms: float = 0.0
    error_rate: float = 0.0
    errors: list = field(default_factory=lambda: [500])
    latency_p95_ms: float | None = None

    def __post_init__(self):
        if self.latency_p95_ms is not None and float(self.latency_p95_ms) < float(self.latency_ms):
            raise ValueError("latency_p95_ms must not be below latency_ms (the median)")
        if not 0.0 <= float(self.error_rate) <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if float(self.latency_ms) < 0:
            raise ValueError("latency_ms must not be negative")
        self.errors = [_check_kind(k) for k in (self.errors or [500])]


@dataclass
class ScriptedFailure:
    op: str
    fail_with: str | int
    remaining: int = 1

    def __post_init__(self):
        self.fail_with = _check_kind(self.fail_with)
        if int(self.remaining) < 1:
            raise ValueError("count must be at least 1")


class FaultPlan:
    """Thread-safe set of rules and the counters of what was called and injected."""

    def __init__(self, seed: int | None = None):
        self._lock = threading.Lock()
        self._rules: list[RateRule] = []
        self._scripts: list[ScriptedFailure] = []
        self._random = random.Random(seed)
        self.calls: dict[str, int] = {}
        self.injected: dict[str, int] = {}

    # -- configuration ---------------------------------------------------------------------------
    def set_rules(self, rules: list[dict]) -> None:
        parsed = [RateRule(**r) for r in rules]
        with self._lock:
            self._rules = parsed

    def add_script(self, op: str, fail_with, count: int = 1) -> None:
        s = ScriptedFailure(op=op, fail_with=fail_with, remaining=int(count))
        with self._lock:
            self._scripts.append(s)

    def clear(self) -> None:
        with self._lock:
            self._rules, self._scripts = [], []

    def reset_counters(self) -> None:
        with self._lock:
            self.calls, self.injected = {}, {}

    def describe(self) -> dict:
        with self._lock:
            return {
                "rules": [r.__dict__ for r in self._rules],
                "scripts": [s.__dict__ for s in self._scripts],
                "calls": dict(self.calls),
                "injected": dict(self.injected),
            }

    # -- per request -----------------------------------------------------------------------------
    def latency_ms(self, op: str) -> float:
        """Count a call to ``op`` and return the latency to add to it."""
        with self._lock:
            self.calls[op] = self.calls.get(op, 0) + 1
            return sum(self._draw(r) for r in self._rules if fnmatch.fnmatchcase(op, r.op))

    def _draw(self, rule: RateRule) -> float:
        median = float(rule.latency_ms)
        if rule.latency_p95_ms is None or median <= 0:
            return median
        sigma = lognormal_sigma(median, float(rule.latency_p95_ms))
        return median * math.exp(sigma * self._random.gauss(0.0, 1.0))

    def failure(self, op: str) -> str | int | None:
        """The failure to inject into this call of ``op``, if any: a script first, else the rate rules."""
        with self._lock:
            fail = None
            for s in self._scripts:
                if fnmatch.fnmatchcase(op, s.op):
                    fail = s.fail_with
                    s.remaining -= 1
                    if s.remaining <= 0:
                        self._scripts.remove(s)
                    break
            if fail is None:
                for rule in self._rules:
                    if (fnmatch.fnmatchcase(op, rule.op) and rule.error_rate
                            and self._random.random() < rule.error_rate):
                        fail = self._random.choice(rule.errors)
                        break
            if fail is not None:
                key = f"{op}:{fail}"
                self.injected[key] = self.injected.get(key, 0) + 1
            return fail


#: the 95th percentile of the standard normal distribution
Z95 = 1.6448536269514722


def lognormal_sigma(median: float, p95: float) -> float:
    """sigma of the lognormal distribution with this median and 95th percentile (mu = ln median)."""
    return max(0.0, math.log(p95 / median) / Z95) if median > 0 and p95 > 0 else 0.0
