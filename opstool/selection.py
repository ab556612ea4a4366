"""Which dead-lettered messages a command acts on: sequence numbers, filters, or all of them."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from .dead_letters import DeadLetter

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``30m``, ``2h``, ``1d``, ``1w``, ``90s`` or a combination such as ``1h30m``."""
    cleaned = text.strip()
    parts = _DURATION_PART.findall(cleaned)
    if not cleaned or not parts or _DURATION_PART.sub("", cleaned).strip():
        raise ValueError(f"{text!r} is not a duration: use a number and a unit s, m, h, d or w (30m, 2h, 1d, 1h30m)")
    return dt.timedelta(seconds=sum(int(n) * _UNITS[u.lower()] for n, u in parts))


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time with its zone: ``2026-12-02T03:12:00Z``, ``2026-12-02T04:12+01:00``."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use ISO 8601 with a zone, e.g. 2026-12-02T03:12:00Z") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z for UTC or an offset such as +01:00")
    return value


def type_matches(event_type: str | None, wanted: str) -> bool:
    """Exact, or the same type under a prefix (``customer.created`` matches ``com.contoso.customer.created``)."""
    if not event_type:
        return False
    return event_type == wanted or event_type.endswith("." + wanted)


@dataclass
class Selection:
    sequence_numbers: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    older_than: dt.timedelta | None = None
    newer_than: dt.timedelta | None = None
    enqueued_before: dt.datetime | None = None
    enqueued_after: dt.datetime | None = None
    limit: int | None = None
    everything: bool = False

    @property
    def has_filters(self) -> bool:
        return bool(self.reasons or self.customers or self.types or self._time_bounded)

    @property
    def _time_bounded(self) -> bool:
        return any(x is not None for x in (self.older_than, self.newer_than, self.enqueued_before,
                                           self.enqueued_after))

    @property
    def is_empty(self) -> bool:
        """Nothing said which messages: the destructive commands refuse that (``--all`` must be explicit)."""
        return not (self.sequence_numbers or self.has_filters or self.everything)

    @property
    def needs_ledger_error(self) -> bool:
        return bool(self.reasons)

    def matches(self, dl: DeadLetter, ledger_error: str | None, now: dt.datetime) -> bool:
        if self.sequence_numbers and dl.sequence_number not in self.sequence_numbers:
            return False
        if self.customers and dl.event.customer_id not in self.customers:
            return False
        if self.types and not any(type_matches(dl.event.event_type, t) for t in self.types):
            return False
        if self.reasons:
            haystack = " | ".join(x for x in (dl.dead_letter_reason, dl.dead_letter_description, ledger_error) if x)
            if not any(r.lower() in haystack.lower() for r in self.reasons):
                return False
        if self._time_bounded:
            if dl.enqueued_time is None:
                return False
            age = now - dl.enqueued_time
            if self.older_than is not None and age < self.older_than:
                return False
            if self.newer_than is not None and age > self.newer_than:
                return False
            if self.enqueued_before is not None and dl.enqueued_time >= self.enqueued_before:
                return False
            if self.enqueued_after is not None and dl.enqueued_time <= self.enqueued_after:
                return False
        return True

    def apply(self, messages: Iterable[DeadLetter], ledger_error: Callable[[DeadLetter], str | None],
              now: dt.datetime | None = None) -> Iterator[DeadLetter]:
        """The matching messages in sequence-number order, at most ``limit`` of them. ``ledger_error`` is only
        called when a filter needs it."""
        now = now or dt.datetime.now(dt.timezone.utc)
        count = 0
        wanted = set(self.sequence_numbers)
        for dl in messages:
            if self.limit is not None and count >= self.limit:
                return
            if wanted and dl.sequence_number not in wanted:
                if dl.sequence_number > max(wanted):
                    return  # browsing runs in sequence-number order: the rest cannot be asked for
                continue
            wanted.discard(dl.sequence_number)
            error = ledger_error(dl) if self.needs_ledger_error else None
            if self.matches(dl, error, now):
                count += 1
                yield dl
            if self.sequence_numbers and not wanted:
                return  # every asked-for number seen: no need to browse the rest
