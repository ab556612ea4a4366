"""JSON in and out for whatever the dead-letter queue holds: a body of 30,000 nested brackets, a 5,000-digit number,
``NaN``, a ``\\ud800`` escape, a year-1 timestamp. Reading never raises (it says what is wrong instead), and every
value the tool writes as JSON can be written: the dead-letter queue is where the bodies the app refused end up, so
the tool that inspects it must not fall over the same bodies.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from typing import Any

from shared.domain.events import nesting_depth

#: deeper than this is not shown as a JSON tree (the app refuses more than 32 anyway); Python's own recursion
#: limit sits far above it
MAX_DEPTH = 64
#: Python refuses to convert integers of more than 4,300 digits
MAX_NUMBER_CHARS = 4000


class _Unreadable(ValueError):
    pass


def _int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _Unreadable(f"a number of {len(literal)} digits")
    return int(literal)


def load_json(data: bytes | str | None) -> tuple[Any, str | None]:
    """(document, None), or (None, what is wrong): not UTF-8, too deeply nested, not JSON. Never raises."""
    if data is None:
        return None, "no data body"
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"not UTF-8 (byte {exc.start})"
    if not data.strip():
        return None, "empty"
    depth = nesting_depth(data)
    if depth > MAX_DEPTH:
        return None, f"not shown as JSON: arrays and objects nest {depth} deep"
    try:
        return json.loads(data, parse_int=_int), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except (ValueError, RecursionError) as exc:
        return None, f"not shown as JSON: {exc}" if isinstance(exc, _Unreadable) else f"not JSON ({type(exc).__name__})"


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    try:
        return value.astimezone(dt.timezone.utc)
    except (OverflowError, ValueError):  # 0001-01-01T00:00:00+01:00 has no UTC time in Python's calendar
        return value


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    value = _utc(value)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonable(value: Any, _depth: int = 0) -> Any:
    """A value as JSON can hold it: bytes that are not text become {"base64": ...}, times ISO text, NaN and the
    infinities their names; anything else (or nested absurdly deep) its repr. ``json.dumps`` of the result cannot
    fail."""
    if _depth > MAX_DEPTH:
        return repr(value)[:200]
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(jsonable(k, _depth + 1)) if not isinstance(k, str) else k: jsonable(v, _depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, _depth + 1) for v in value]
    return repr(value)


def dumps_line(obj: Any, *, ascii_only: bool = True) -> str:
    """One line of JSON Lines. ``ascii_only`` (for terminals and pipes): every non-ASCII character, C1 control,
    bidirectional override and lone surrogate as a ``\\u`` escape, so the line is valid JSON and safe to print.
    Without it (files), non-ASCII stays readable unless the line could not be written as UTF-8."""
    obj = jsonable(obj)
    if not ascii_only:
        line = json.dumps(obj, ensure_ascii=False)
        try:
            line.encode("utf-8")
            return line
        except UnicodeEncodeError:  # a lone surrogate: only its escape can be written
            pass
    return json.dumps(obj, ensure_ascii=True)
