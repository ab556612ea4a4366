"""Console logging in the Functions host's shape, and the invocation id on every log record.

The Functions host prints ``[<utc time>Z] <message>`` lines and tags each record with the invocation it belongs to.
Here the id travels in a contextvar set by the invocation thread (``funchost.invocation``); ``InvocationIdFilter``
copies it onto each record it sees as ``record.invocation_id`` (and ``record.function_name``), so app log lines
can be correlated with the host's ``Executing``/``Executed`` lines. A filter on the *handler* (not a logger)
is what sees records from every logger, the app's included.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import logging
import sys
import threading
import time

# (function name, invocation id) of the invocation running in this context; None outside invocations.
current_invocation: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "funchost_current_invocation", default=None)

# The Python worker's Context.thread_local_storage: an app that starts its own threads sets
# ``context.thread_local_storage.invocation_id`` in them so their logs are still attributed (worker docs).
invocation_thread_local = threading.local()

HOST_LOGGER = "funchost"


class InvocationIdFilter(logging.Filter):
    """Adds ``invocation_id`` and ``function_name`` ("" when none) to every record; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = current_invocation.get()
        if current is not None:
            function_name, invocation_id = current
        else:
            function_name = ""
            invocation_id = getattr(invocation_thread_local, "invocation_id", None) or ""
        # Host records pass these explicitly (``extra=``); do not overwrite them.
        if not getattr(record, "invocation_id", None):
            record.invocation_id = invocation_id
        if not getattr(record, "function_name", None):
            record.function_name = function_name
        return True


class HostConsoleFormatter(logging.Formatter):
    """``[2024-01-31T10:00:00.123Z] message`` like Core Tools; UTC timestamps, tracebacks appended."""

    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


DEFAULT_FORMAT = "[%(asctime)s] %(message)s"


def configure_console_logging(level: str | int = "INFO", stream=None, fmt: str = DEFAULT_FORMAT) -> logging.Handler:
    """Send every record (host and app) at ``level`` or above to the console. Used by the CLI."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.addFilter(InvocationIdFilter())
    handler.setFormatter(HostConsoleFormatter(fmt))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # The SDKs log every AMQP state change at INFO, httpx every request ("HTTP Request: POST ..."); the Functions
    # host does not show such lines by default either.
    if root.level > logging.DEBUG:
        for noisy in ("azure", "uamqp", "msal", "httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # The AMQP layer also warns "Connection closed with error" for each connection the namespace drops; the
        # listener says that once, naming the namespace and its reconnect schedule (servicebus_listener.py).
        logging.getLogger("azure.servicebus._pyamqp").setLevel(logging.ERROR)
    return handler


def dotnet_utc(value: dt.datetime | None) -> str:
    """A time as .NET's round-trip ``O`` format prints a DateTimeOffset: ``2024-01-31T10:00:00.1230000+00:00``."""
    if value is None:
        return "(null)"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0+00:00"


def dotnet_timespan(seconds: float | None) -> str:
    """Seconds as a .NET TimeSpan prints (``00:05:00``, ``1.02:03:04``); "Infinite" for None."""
    if seconds is None:
        return "Infinite"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    fraction = seconds - whole
    if fraction:
        text += f".{int(round(fraction * 10_000_000)):07d}"
    return f"{days}.{text}" if days else text
