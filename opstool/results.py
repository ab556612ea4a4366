"""What happened to each selected message, and the counts a run ends with."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

REPLAYED, PURGED, SKIPPED, FAILED = "replayed", "purged", "skipped", "failed"
WOULD_REPLAY, WOULD_PURGE = "would-replay", "would-purge"


@dataclass
class Result:
    sequence_number: int
    message_id: str | None
    result: str                      # replayed | purged | skipped | failed | would-replay | would-purge
    detail: str | None = None
    new_message_id: str | None = None
    replay_count: int | None = None
    customer_id: str | None = None
    event_type: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Summary:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.results: list[Result] = []

    def add(self, result: Result) -> None:
        self.counts[result.result] += 1
        self.results.append(result)

    @property
    def failed(self) -> int:
        return self.counts[FAILED]


def describe_error(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
