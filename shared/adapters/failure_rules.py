"""The three rules every adapter applies to a failed call, written once.

- :func:`is_transient_status`: which HTTP answers are worth trying again later (408, 429, 5xx);
- :func:`retry_after_seconds`: how long a service asked us to wait (Retry-After in seconds or as a date,
  ``retry-after-ms``/``x-ms-retry-after-ms``, and for a 429 from Auth0 its bucket's ``x-ratelimit-reset``);
- :func:`redact`: no secret value in any text that leaves an adapter.
"""
from __future__ import annotations

import email.utils
import time
from typing import Any, Iterable, Mapping

#: shortest secret worth replacing: shorter strings would mangle ordinary words
MIN_SECRET_LENGTH = 4
MAX_MESSAGE = 300


def is_transient_status(status: int | None) -> bool:
    """No answer, a timeout, throttling or a server error: the same request may succeed later."""
    return status is None or status in (408, 429) or status >= 500


def _lower(headers: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}


def retry_after_seconds(headers: Mapping[str, Any] | None, *, status: int | None = None,
                        now: float | None = None) -> float | None:
    """Seconds an answer asks us to wait, or None. Auth0 sends ``x-ratelimit-reset`` (a UNIX time) on every answer;
    it says when its bucket refills, which matters for a 429 only: on a 5xx it says nothing about when an outage
    ends, and following it would spend the whole retry budget in seconds."""
    lower = _lower(headers)
    if not lower:
        return None
    now = time.time() if now is None else now
    if status == 429 and lower.get("x-ratelimit-reset"):
        try:
            return max(0.0, float(lower["x-ratelimit-reset"]) - now)
        except ValueError:
            pass
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        if lower.get(name):
            try:
                return max(0.0, float(lower[name]) / 1000.0)
            except ValueError:
                pass
    value = lower.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - now)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret replaced by ``***`` and squeezed onto one bounded line."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return " ".join(text.split())[:MAX_MESSAGE]
