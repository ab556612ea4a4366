"""Latency profiles: per service and operation, the median and 95th percentile of one remote call.

``load("realistic")`` reads ``bench/profiles/realistic.toml``. A profile turns into

- fault rules for each HTTP stand-in (``rules(service)``: one rule per operation the stand-in serves, so that no two
  rules add up; the first pattern of the file that matches an operation gives its latency);
- the ledger's delay proxy distribution (``distribution("ledger", "*")``);
- per-call medians for the critical-path floor (``median(service, op)``).
"""
from __future__ import annotations

import fnmatch
import math
import random
import tomllib
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
SERVICES = ("auth0", "apim", "keyvault", "ledger")
Z95 = 1.6448536269514722


@dataclass(frozen=True)
class Latency:
    p50: float
    p95: float | None = None  # None: always the median

    @property
    def sigma(self) -> float:
        return math.log(self.p95 / self.p50) / Z95 if self.p95 and self.p50 > 0 else 0.0

    def draw(self, rng: random.Random) -> float:
        return self.p50 * math.exp(self.sigma * rng.gauss(0.0, 1.0)) if self.sigma else self.p50

    def rule(self, op: str) -> dict:
        rule = {"op": op, "latency_ms": self.p50}
        if self.p95 is not None:
            rule["latency_p95_ms"] = self.p95
        return rule


def standin_operations(service: str) -> list[str]:
    """The operation names a stand-in serves (from its routes)."""
    from emulators.apim import ApimStandIn
    from emulators.auth0 import Auth0StandIn
    from emulators.keyvault import KeyVaultStandIn
    cls = {"auth0": Auth0StandIn, "apim": ApimStandIn, "keyvault": KeyVaultStandIn}[service]
    ops = {fn._route[2] for fn in vars(cls).values() if hasattr(fn, "_route")}
    return sorted(ops)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    table: dict[str, list[tuple[str, Latency]]]

    def latency(self, service: str, op: str) -> Latency:
        for pattern, latency in self.table.get(service, []):
            if fnmatch.fnmatchcase(op, pattern):
                return latency
        return Latency(0.0)

    def median(self, service: str, op: str) -> float:
        return self.latency(service, op).p50

    def rules(self, service: str) -> list[dict]:
        rules = []
        for op in standin_operations(service):
            latency = self.latency(service, op)
            if latency.p50 > 0:
                rules.append(latency.rule(op))
        return rules

    def distribution(self, service: str, op: str = "*") -> Latency:
        return self.latency(service, op)


def parse(name: str, text: str) -> Profile:
    data = tomllib.loads(text)
    table: dict[str, list[tuple[str, Latency]]] = {}
    for service in SERVICES:
        entries = []
        for pattern, value in (data.get(service) or {}).items():
            values = value if isinstance(value, list) else [value]
            if not 1 <= len(values) <= 2 or any(not isinstance(v, (int, float)) or v < 0 for v in values):
                raise ValueError(f"{name}: {service} {pattern!r} must be [median] or [median, p95] in ms")
            if len(values) == 2 and values[1] < values[0]:
                raise ValueError(f"{name}: {service} {pattern!r}: the p95 is below the median")
            entries.append((pattern, Latency(float(values[0]), float(values[1]) if len(values) == 2 else None)))
        table[service] = entries
    return Profile(name, str(data.get("description", name)), table)


def load(name: str) -> Profile:
    path = Path(name) if name.endswith(".toml") else FOLDER / f"{name}.toml"
    return parse(path.stem, path.read_text())
