"""Timer schedules: NCRONTAB expressions (what the Functions timer trigger uses) and TimeSpan intervals.

NCRONTAB has six fields, ``{second} {minute} {hour} {day} {month} {day-of-week}``; the host also accepts the
five-field form (no seconds, fires at second 0). Each field takes ``*``, numbers, ``a-b`` ranges, ``/step`` on
either, comma lists, and month/day names (``JAN``, ``MON``). Day-of-week is 0-6 from Sunday (7 is read as Sunday).
As in NCrontab, day-of-month and day-of-week must *both* match (classic cron ORs them when both are restricted).
A ``hh:mm:ss`` TimeSpan schedule means "every interval" (App Service plans allow it).
Times are local wall-clock time, as ``func start`` uses the machine's time zone.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}

# (low, high, names) per field, in NCRONTAB order.
_FIELDS = [(0, 59, {}), (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 7, _DAYS)]
_LOOKAHEAD = dt.timedelta(days=366 * 5)  # "30 FEB" never matches: give up after five years


class ScheduleError(ValueError):
    pass


def _parse_value(text: str, names: dict[str, int], low: int, high: int) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise ScheduleError(f"bad value {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise ScheduleError(f"{value} is outside {low}-{high}")
    return value


def _parse_field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"empty list item in {text!r}")
        range_text, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step_text and (not step_text.isdigit() or step < 1):
            raise ScheduleError(f"bad step in {part!r}")
        if range_text == "*":
            start, end = low, high
        elif "-" in range_text:
            a, b = range_text.split("-", 1)
            start, end = _parse_value(a, names, low, high), _parse_value(b, names, low, high)
            if start > end:
                raise ScheduleError(f"descending range {range_text!r}")
        else:
            start = _parse_value(range_text, names, low, high)
            # "5/15" means 5, 20, 35, 50 (from 5 to the end of the range, every 15)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> "CronSchedule":
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ScheduleError(f"{expression!r}: NCRONTAB needs 6 fields (second minute hour day month weekday)")
        try:
            sets = [_parse_field(p, lo, hi, names) for p, (lo, hi, names) in zip(parts, _FIELDS)]
        except (ScheduleError, ValueError) as e:
            raise ScheduleError(f"{expression!r}: {e}") from None
        weekdays = frozenset(d % 7 for d in sets[5])
        return cls(expression, *sets[:5], weekdays)

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first matching second strictly after ``after`` (naive local time)."""
        t = after.replace(microsecond=0) + dt.timedelta(seconds=1)
        limit = t + _LOOKAHEAD
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + dt.timedelta(days=32)).replace(day=1)
            elif t.day not in self.days or (t.isoweekday() % 7) not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += dt.timedelta(seconds=1)
            else:
                return t
        raise ScheduleError(f"{self.expression!r} has no occurrence in the next five years")


@dataclass(frozen=True)
class IntervalSchedule:
    expression: str
    interval: dt.timedelta

    def next_after(self, after: dt.datetime) -> dt.datetime:
        return after + self.interval


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})$")


def parse_schedule(expression: str) -> CronSchedule | IntervalSchedule:
    text = expression.strip()
    m = _TIMESPAN.match(text)
    if m:
        days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
        interval = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if interval <= dt.timedelta(0):
            raise ScheduleError(f"{expression!r}: interval must be positive")
        return IntervalSchedule(text, interval)
    return CronSchedule.parse(text)
