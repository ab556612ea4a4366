"""host.json: the parts the Service Bus and timer triggers obey, with the Functions host's defaults.

Defaults (Service Bus extension 5.x, the one extension bundle ``[4.*, 5.0.0)`` loads; Functions host v4):

- ``functionTimeout``: 30 minutes when absent (the default of every plan but Consumption, and what ``func start``
  uses); ``-1`` means unlimited.
- ``extensions.serviceBus``: ``maxConcurrentCalls`` 16 x processor count, ``maxConcurrentSessions`` 8,
  ``autoCompleteMessages`` true, ``maxAutoLockRenewalDuration`` 00:05:00, ``prefetchCount`` 0,
  ``maxMessageBatchSize`` 1000 (cardinality many), ``sessionIdleTimeout`` unset -> the client's try timeout
  (``clientRetryOptions.tryTimeout``, 00:01:00), ``clientRetryOptions`` exponential, 3 retries, delay 00:00:00.8,
  max delay 00:01:00.

.NET reads configuration keys case-insensitively, so ``MaxConcurrentCalls`` works as well as ``maxConcurrentCalls``.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger("funchost.config")

DEFAULT_FUNCTION_TIMEOUT = 30 * 60.0

# [-][d.]hh:mm[:ss[.fffffff]] as .NET's TimeSpan.Parse accepts it (the forms host.json files use).
_TIMESPAN = re.compile(r"^(?P<neg>-)?(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})(?::(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?)?$")


def parse_timespan(value: Any) -> float:
    """Seconds in a .NET TimeSpan string (``00:05:00``, ``1.00:00:00``, ``00:00:00.8``) or a plain number of days
    (TimeSpan.Parse reads a bare integer as days)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) * 86400
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text) * 86400.0
    m = _TIMESPAN.match(text)
    if not m:
        raise ValueError(f"not a TimeSpan: {value!r}")
    seconds = (int(m["d"] or 0) * 86400 + int(m["h"]) * 3600 + int(m["m"]) * 60 + int(m["s"] or 0)
               + (int(m["f"].ljust(7, "0")) / 10_000_000 if m["f"] else 0.0))
    return -seconds if m["neg"] else seconds


def _ci(mapping: Mapping[str, Any] | None, key: str, default: Any = None) -> Any:
    """Case-insensitive lookup, as .NET configuration binding does."""
    if not mapping:
        return default
    lowered = key.lower()
    for k, v in mapping.items():
        if k.lower() == lowered:
            return v
    return default


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


@dataclass(frozen=True)
class ClientRetryOptions:
    mode: str = "exponential"
    try_timeout: float = 60.0
    delay: float = 0.8
    max_delay: float = 60.0
    max_retries: int = 3

    def sdk_kwargs(self) -> dict[str, Any]:
        """The azure-servicebus client's equivalents (its retry knobs have other names)."""
        return {"retry_total": self.max_retries, "retry_backoff_factor": self.delay,
                "retry_backoff_max": self.max_delay,
                "retry_mode": "fixed" if self.mode.lower() == "fixed" else "exponential"}

    def describe(self) -> str:
        """For log lines: how the client retries before the host sees a failure."""
        step = "" if self.mode.lower() == "fixed" else " and doubling"
        return (f"clientRetryOptions: {self.max_retries} retries, {self.delay:g} s apart{step}, "
                f"at most {self.max_delay:g} s")


@dataclass(frozen=True)
class ServiceBusOptions:
    max_concurrent_calls: int = field(default_factory=lambda: 16 * (os.cpu_count() or 1))
    max_concurrent_sessions: int = 8
    auto_complete_messages: bool = True
    max_auto_lock_renewal_duration: float = 300.0
    prefetch_count: int = 0
    session_idle_timeout: float | None = None
    max_message_batch_size: int = 1000
    client_retry: ClientRetryOptions = field(default_factory=ClientRetryOptions)

    @property
    def effective_session_idle_timeout(self) -> float:
        # The session processor waits TryTimeout for the next message of a session when none is configured.
        return self.session_idle_timeout if self.session_idle_timeout is not None else self.client_retry.try_timeout

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None) -> "ServiceBusOptions":
        section = section or {}
        if _ci(section, "messageHandlerOptions") is not None or _ci(section, "sessionHandlerOptions") is not None:
            log.warning("host.json extensions.serviceBus.messageHandlerOptions/sessionHandlerOptions are the "
                        "extension 4.x shape; extension 5.x (bundle 4.x) ignores them: use the flat settings")
        defaults = cls()
        retry_section = _ci(section, "clientRetryOptions") or {}
        retry_defaults = ClientRetryOptions()
        retry = ClientRetryOptions(
            mode=str(_ci(retry_section, "mode", retry_defaults.mode)),
            try_timeout=parse_timespan(_ci(retry_section, "tryTimeout", "00:01:00")),
            delay=parse_timespan(_ci(retry_section, "delay", "00:00:00.8")),
            max_delay=parse_timespan(_ci(retry_section, "maxDelay", "00:01:00")),
            max_retries=int(_ci(retry_section, "maxRetries", retry_defaults.max_retries)),
        )
        idle = _ci(section, "sessionIdleTimeout")
        options = cls(
            max_concurrent_calls=int(_ci(section, "maxConcurrentCalls", defaults.max_concurrent_calls)),
            max_concurrent_sessions=int(_ci(section, "maxConcurrentSessions", defaults.max_concurrent_sessions)),
            auto_complete_messages=_bool(_ci(section, "autoCompleteMessages", True)),
            max_auto_lock_renewal_duration=parse_timespan(_ci(section, "maxAutoLockRenewalDuration", "00:05:00")),
            prefetch_count=int(_ci(section, "prefetchCount", 0)),
            session_idle_timeout=parse_timespan(idle) if idle not in (None, "") else None,
            max_message_batch_size=int(_ci(section, "maxMessageBatchSize", defaults.max_message_batch_size)),
            client_retry=retry,
        )
        if options.max_concurrent_calls < 1 or options.max_concurrent_sessions < 1:
            raise ValueError("host.json: maxConcurrentCalls and maxConcurrentSessions must be at least 1")
        return options


@dataclass(frozen=True)
class HostConfig:
    function_timeout: float | None = DEFAULT_FUNCTION_TIMEOUT  # seconds; None = unlimited
    service_bus: ServiceBusOptions = field(default_factory=ServiceBusOptions)
    functions: tuple[str, ...] | None = None  # host.json "functions": only these are loaded

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "HostConfig":
        data = data or {}
        raw_timeout = _ci(data, "functionTimeout")
        if raw_timeout in (None, ""):
            timeout: float | None = DEFAULT_FUNCTION_TIMEOUT
        else:
            seconds = parse_timespan(raw_timeout)
            timeout = None if seconds < 0 else seconds  # "-1": unlimited
        extensions = _ci(data, "extensions") or {}
        only = _ci(data, "functions")
        return cls(function_timeout=timeout,
                   service_bus=ServiceBusOptions.from_section(_ci(extensions, "serviceBus")),
                   functions=tuple(only) if only is not None else None)


def load_host_json(app_root: str | Path) -> dict[str, Any]:
    path = Path(app_root) / "host.json"
    if not path.exists():
        log.warning("no host.json in %s: using the host defaults", app_root)
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
