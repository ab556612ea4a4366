"""The CloudEvents distributed-tracing extension: ``traceparent`` and ``tracestate`` on an incoming event.

Both attributes are optional and carry W3C Trace Context values (https://www.w3.org/TR/trace-context/, sections
3.2 and 3.3; CloudEvents' extensions/distributed-tracing.md). A sender that sets them lets the app's trace continue
the sender's: the app's span for the event becomes a child of ``traceparent``.

A malformed value does not refuse the event. Trace Context's own processing rule is that a receiver that cannot
parse ``traceparent`` starts a new trace (and then ignores ``tracestate``), and a customer must not go unprovisioned
because of a tracing header. The value is ignored and the rule it broke is returned, so the caller can say so (one
warning log line and an attribute on the event's span), which keeps a broken sender visible without losing events.
Pure: no I/O, and no OpenTelemetry import (the adapters turn a valid value into a span context).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

#: version 00 (the only one defined): version-traceid-parentid-flags, lower-case hex
_TRACEPARENT_00 = re.compile(r"^00-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})-[0-9a-f]{2}$")
#: a later version: the same four fields first, then possibly more after a '-' (section 3.2.4)
_TRACEPARENT_LATER = re.compile(r"^(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})"
                                r"-[0-9a-f]{2}(-.*)?$", re.DOTALL)
_KEY = re.compile(r"^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$")
_VALUE = re.compile(r"^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$")
MAX_TRACEPARENT_CHARS = 512
#: Trace Context asks receivers to pass on at least 512 characters of tracestate; more is refused rather than cut
MAX_TRACESTATE_CHARS = 512
MAX_TRACESTATE_MEMBERS = 32


@dataclass(frozen=True)
class TraceContext:
    """A valid W3C trace context: ``traceparent`` and, when the sender gave a valid one, ``tracestate``."""
    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]

    def as_attributes(self) -> dict[str, str]:
        """The CloudEvents extension attributes for an outgoing event."""
        out = {"traceparent": self.traceparent}
        if self.tracestate:
            out["tracestate"] = self.tracestate
        return out


def traceparent_problem(value: object) -> str | None:
    """Why ``value`` is not a valid ``traceparent``, or None when it is."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > MAX_TRACEPARENT_CHARS:
        return f"is {len(value)} characters long; a traceparent is 55"
    match = _TRACEPARENT_00.match(value)
    if match is None:
        later = _TRACEPARENT_LATER.match(value)
        if later is None or later.group("version") in ("00", "ff"):
            return ("must be a W3C traceparent: 00-<32 lower-case hex trace id>-<16 hex parent id>-<2 hex flags>, "
                    "e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        match = later
    if set(match.group("trace")) == {"0"}:
        return "has an all-zero trace id, which W3C Trace Context forbids"
    if set(match.group("parent")) == {"0"}:
        return "has an all-zero parent id, which W3C Trace Context forbids"
    return None


def tracestate_problem(value: object) -> str | None:
    """Why ``value`` is not a valid ``tracestate``, or None when it is."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > MAX_TRACESTATE_CHARS:
        return f"is {len(value)} characters long; the limit is {MAX_TRACESTATE_CHARS}"
    members = [m.strip(" \t") for m in value.split(",")]
    members = [m for m in members if m]  # empty list-members are allowed and mean nothing
    if len(members) > MAX_TRACESTATE_MEMBERS:
        return f"has {len(members)} list members; the limit is {MAX_TRACESTATE_MEMBERS}"
    seen: set[str] = set()
    for member in members:
        key, sep, val = member.partition("=")
        if not sep or not _KEY.match(key) or not _VALUE.match(val):
            return "must be a W3C tracestate: comma-separated key=value members, e.g. congo=t61rcWkgMzE"
        if key in seen:
            return f"names the key {key!r} twice"
        seen.add(key)
    return None


def read_trace_context(doc: dict) -> tuple[TraceContext | None, str | None]:
    """The trace context of a CloudEvent document: (context, None) when ``traceparent`` is valid, (None, None)
    when there is none, and (None, "<attribute>: <rule>") when there is one that is not valid. An invalid
    ``tracestate`` beside a valid ``traceparent`` keeps the parent and drops the state (also reported)."""
    if "traceparent" not in doc:
        return None, ("tracestate: is ignored without a traceparent" if "tracestate" in doc else None)
    problem = traceparent_problem(doc["traceparent"])
    if problem is not None:
        return None, f"traceparent: {problem}"
    state = doc.get("tracestate")
    if state is None or state == "":
        return TraceContext(doc["traceparent"]), None
    problem = tracestate_problem(state)
    if problem is not None:
        return TraceContext(doc["traceparent"]), f"tracestate: {problem}"
    return TraceContext(doc["traceparent"], state), None
