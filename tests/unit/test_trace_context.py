"""The CloudEvents distributed-tracing extension: W3C traceparent/tracestate read strictly, and a malformed one
ignored with the rule it broke (the event itself is applied)."""
from __future__ import annotations

import json

import pytest

from shared.domain.events import parse_event, peek_trace_context
from shared.domain.trace_context import (TraceContext, read_trace_context, traceparent_problem,
                                         tracestate_problem)

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("value", [PARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                                   # a later version: the four known fields, then whatever it adds
                                   "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"])
def test_valid_traceparents(value):
    assert traceparent_problem(value) is None


@pytest.mark.parametrize("value, rule", [
    (PARENT.upper(), "must be a W3C traceparent"),  # hex is lower case
    ("ff" + PARENT[2:], "must be a W3C traceparent"),  # version ff is invalid
    (PARENT + "-extra", "must be a W3C traceparent"),  # version 00 has exactly four fields
    (PARENT[:-1], "must be a W3C traceparent"),
    ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", "all-zero trace id"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01", "all-zero parent id"),
    (" " + PARENT, "must be a W3C traceparent"),
    (42, "must be a string, not int"),
    ("0" * 600, "is 600 characters long"),
])
def test_invalid_traceparents_name_the_rule(value, rule):
    assert rule in traceparent_problem(value)


@pytest.mark.parametrize("value", ["congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
                                   "tenant@vendor=value , other=x", "a=b,,c=d"])
def test_valid_tracestates(value):
    assert tracestate_problem(value) is None


@pytest.mark.parametrize("value, rule", [
    ("Congo=x", "must be a W3C tracestate"),  # keys are lower case
    ("congo", "must be a W3C tracestate"),
    ("congo=a,congo=b", "names the key 'congo' twice"),
    ("k=va,lue=x=y", "must be a W3C tracestate"),
    (",".join(f"k{i}=v" for i in range(33)), "has 33 list members"),
    ("k=" + "v" * 600, "characters long"),
    (["congo=x"], "must be a string"),
])
def test_invalid_tracestates_name_the_rule(value, rule):
    assert rule in tracestate_problem(value)


def test_read_trace_context_keeps_a_valid_parent_without_a_bad_state():
    assert read_trace_context({}) == (None, None)
    assert read_trace_context({"traceparent": PARENT, "tracestate": "congo=x"}) == (
        TraceContext(PARENT, "congo=x"), None)
    context, problem = read_trace_context({"traceparent": PARENT, "tracestate": "Bad"})
    assert context == TraceContext(PARENT) and problem.startswith("tracestate: ")
    context, problem = read_trace_context({"traceparent": "00-xyz", "tracestate": "congo=x"})
    assert context is None and problem.startswith("traceparent: must be a W3C traceparent")
    assert read_trace_context({"tracestate": "congo=x"}) == (None, "tracestate: is ignored without a traceparent")


def _event(**extensions) -> bytes:
    return json.dumps({"specversion": "1.0", "id": "e1", "source": "/crm", "type": "customer.removed",
                       "time": "2026-11-26T10:00:00Z", "data": {"customerId": "acme"}, **extensions}).encode()


def test_the_parser_carries_the_context_on_the_event():
    event = parse_event(_event(traceparent=PARENT, tracestate="congo=t61rcWkgMzE"))
    assert event.trace_context == TraceContext(PARENT, "congo=t61rcWkgMzE") and event.trace_context_problem is None
    assert event.trace_context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parse_event(_event()).trace_context is None


def test_a_malformed_traceparent_does_not_refuse_the_event_and_says_why():
    event = parse_event(_event(traceparent="00-not-a-trace-id-01"))
    assert event.customer_id == "acme" and event.trace_context is None
    assert event.trace_context_problem.startswith("traceparent: must be a W3C traceparent")
    assert "not-a-trace-id" not in event.trace_context_problem  # the sender's value is not echoed


def test_peek_trace_context_reads_an_invalid_event_and_never_raises():
    body = json.loads(_event(traceparent=PARENT))
    del body["data"]
    assert peek_trace_context(json.dumps(body).encode()) == TraceContext(PARENT)
    assert peek_trace_context(b"\xff not json") is None and peek_trace_context(b"[1]") is None
