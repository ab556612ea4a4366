"""Telemetry over the fakes, with the OpenTelemetry SDK's in-memory exporter: the event's span continues the
sender's trace, says how the event ended, and the external-call spans and metrics record what the adapters saw."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from shared.adapters import telemetry as tm
from shared.domain.errors import InvalidEvent, PermanentError, TransientError
from shared.domain.trace_context import TraceContext
from shared.service_layer.concurrency import run_all
from shared.service_layer.messages import InboundMessage, handle_message
from tests.unit.test_messages import RecordingScheduler
from tests.unit.world import T0, World, created

NOW = T0 + dt.timedelta(minutes=1)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
PARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def body(customer="acme", event_id="e1", extensions=None, **data) -> bytes:
    d = {"customerId": customer, "displayName": "Acme", "profile": "oem", **data}
    return json.dumps({"specversion": "1.0", "id": event_id, "source": "/crm", "type": "customer.created",
                       "time": T0.isoformat(), "data": d, **(extensions or {})}).encode()


def handle(world, raw, **kw):
    msg = InboundMessage(body=raw, message_id=kw.pop("message_id", "m1"), enqueued_time=T0,
                         delivery_count=kw.pop("delivery_count", 1))
    return handle_message(world.service(), msg, now=NOW, telemetry=tm.OpenTelemetryTelemetry(), **kw)


def event_spans(otel):
    return [s for s in otel.spans() if s.name == tm.EVENT_SPAN]


def count(otel, name, **attrs) -> float:
    return sum(v for a, v in otel.metric_points(name) if all(a.get(k) == x for k, x in attrs.items()))


def test_the_event_span_is_a_child_of_the_senders_traceparent(otel):
    before = count(otel, tm.EVENTS, outcome="applied")
    handle(World(), body(extensions={"traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE"}))
    [span] = event_spans(otel)
    assert span.kind == SpanKind.CONSUMER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and span.parent.is_remote and format(span.parent.span_id, "016x") == PARENT_ID
    assert span.context.trace_state.get("congo") == "t61rcWkgMzE"
    attrs = dict(span.attributes)
    assert attrs["cloudevents.event_id"] == "e1" and attrs["provisioning.customer_id"] == "acme"
    assert attrs["provisioning.outcome"] == "applied" and attrs["messaging.message.id"] == "m1"
    assert count(otel, tm.EVENTS, outcome="applied") == before + 1


def test_without_a_traceparent_each_event_starts_its_own_trace(otel):
    world = World()
    handle(world, body(event_id="e1"))
    handle(world, body(customer="beta", event_id="e2"))
    spans = event_spans(otel)
    assert len(spans) == 2 and spans[0].context.trace_id != spans[1].context.trace_id
    assert all(s.parent is None for s in spans)


def test_a_malformed_traceparent_starts_a_new_trace_and_the_span_says_why(otel, caplog):
    handle(World(), body(extensions={"traceparent": PARENT.upper()}))
    [span] = event_spans(otel)
    assert span.parent is None and format(span.context.trace_id, "032x") != TRACE_ID
    assert span.attributes["provisioning.trace_context.ignored"].startswith("traceparent: must be a W3C")
    assert span.attributes["provisioning.outcome"] == "applied"
    assert "outcome=trace-context-ignored" in caplog.text


def test_a_transient_failure_records_the_retry_in_the_span_and_the_metric(otel):
    world, sched = World(), RecordingScheduler()
    world.identity.fail("create_application", "transient", retry_after=17.0)
    before = count(otel, tm.RETRIES_SCHEDULED, **{"event.type": "customer.created"})
    result = handle(world, body(extensions={"traceparent": PARENT}), scheduler=sched)
    [span] = event_spans(otel)
    attrs = dict(span.attributes)
    assert attrs["provisioning.outcome"] == "retry-scheduled" and attrs["provisioning.error.kind"] == "transient"
    assert attrs["provisioning.retry.attempt"] == 1
    assert attrs["provisioning.retry.delay_s"] == round(result.delay_seconds, 3) >= 17.0
    assert "503" in attrs["provisioning.error.reason"]
    assert count(otel, tm.RETRIES_SCHEDULED, **{"event.type": "customer.created"}) == before + 1


def test_a_rejected_event_is_traced_in_the_senders_trace_and_counted_once_for_the_dead_letter_queue(otel):
    world = World()
    before = count(otel, tm.DEAD_LETTERED, kind="rejected")
    for delivery in (1, 2, 3):  # the host redelivers it until MaxDeliveryCount
        with pytest.raises(InvalidEvent):
            handle(world, body(profile=None, extensions={"traceparent": PARENT}), delivery_count=delivery)
    spans = event_spans(otel)
    assert len(spans) == 3 and {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    assert all(s.status.status_code == StatusCode.ERROR for s in spans)
    assert spans[0].attributes["provisioning.outcome"] == "rejected"
    assert spans[0].attributes["provisioning.error.reason"].startswith("data.profile")
    assert count(otel, tm.DEAD_LETTERED, kind="rejected") == before + 1


def test_a_permanent_failure_goes_on_its_way_to_the_dead_letter_queue(otel):
    world = World()
    world.identity.fail("create_application", "permanent")
    before = count(otel, tm.DEAD_LETTERED, kind="permanent")
    with pytest.raises(PermanentError):
        handle(world, body(), scheduler=RecordingScheduler())
    [span] = event_spans(otel)
    assert span.attributes["provisioning.outcome"] == "failed" and span.status.status_code == StatusCode.ERROR
    assert count(otel, tm.DEAD_LETTERED, kind="permanent") == before + 1


def test_the_outgoing_trace_context_is_the_apps_span_in_the_senders_trace(otel):
    seen = []
    telemetry = tm.OpenTelemetryTelemetry()
    assert telemetry.current_trace_context() is None  # outside an event there is nothing to pass on
    with telemetry.event(InboundMessage(body=b""), TraceContext(PARENT, "congo=x")):
        seen.append(telemetry.current_trace_context())
    [span] = event_spans(otel)
    [context] = seen
    assert context == TraceContext(f"00-{TRACE_ID}-{format(span.context.span_id, '016x')}-01", "congo=x")
    assert context.as_attributes() == {"traceparent": context.traceparent, "tracestate": "congo=x"}


def test_call_spans_record_service_operation_status_outcome_and_retry_after(otel):
    before_429 = count(otel, tm.RATE_LIMITED, service="auth0")
    with tm.external_call("keyvault", "set_secret"):
        tm.observe_status(200)
    with tm.external_call("apim", "has_authorization_server") as call:
        tm.observe_status(404)
        call.outcome = "absent"
    with pytest.raises(TransientError):
        with tm.external_call("auth0", "create_application"):
            tm.observe_status(429)
            raise TransientError("429 too_many_requests: slow down", service="auth0",
                                 operation="create_application", status=429, retry_after=3.5)
    ok, absent, limited = otel.spans()
    assert ok.name == "keyvault.set_secret" and ok.kind == SpanKind.CLIENT
    assert dict(ok.attributes) == {"provisioning.call.service": "keyvault", "provisioning.call.operation": "set_secret",
                                   "provisioning.call.outcome": "ok", "http.response.status_code": 200}
    assert absent.attributes["provisioning.call.outcome"] == "absent"
    assert absent.attributes["http.response.status_code"] == 404
    assert limited.attributes["provisioning.call.outcome"] == "transient"
    assert limited.attributes["provisioning.call.retry_after_s"] == 3.5
    assert limited.status.status_code == StatusCode.ERROR and "429" in limited.status.description
    assert not limited.events  # no exception event: an exception's text is not vetted
    assert count(otel, tm.RATE_LIMITED, service="auth0") == before_429 + 1
    assert count(otel, tm.CALL_DURATION, service="keyvault", operation="set_secret") >= 1


def test_an_unexpected_exception_is_recorded_by_its_type_alone(otel):
    with pytest.raises(ValueError):
        with tm.external_call("keyvault", "set_secret"):
            raise ValueError("text that might hold anything, even s3cr3t")
    [span] = otel.spans()
    assert span.attributes["error.type"] == "ValueError" and span.status.description == "ValueError"
    assert "s3cr3t" not in span.to_json()


def test_steps_run_concurrently_stay_in_the_event_trace(otel):
    telemetry = tm.OpenTelemetryTelemetry()

    def step(name):
        def run():
            with tm.external_call("fake", name):
                return name
        return run

    with telemetry.event(InboundMessage(body=b""), TraceContext(PARENT)):
        assert run_all([step("a"), step("b"), step("c")], max_workers=3) == ["a", "b", "c"]
    [event] = event_spans(otel)
    calls = [s for s in otel.spans() if s.name.startswith("fake.")]
    assert len(calls) == 3 and {s.parent.span_id for s in calls} == {event.context.span_id}
    assert {s.context.trace_id for s in calls} == {event.context.trace_id}


def test_the_result_event_carries_the_apps_trace_context_on_in_the_crms_trace(otel):
    w = World(results=True)
    service = w.service()
    service.core.trace_context = tm.current_trace_context  # what the composition root passes
    msg = InboundMessage(body=body(extensions={"traceparent": PARENT}), message_id="m1", enqueued_time=T0,
                         delivery_count=1)
    handle_message(service, msg, now=NOW, telemetry=tm.OpenTelemetryTelemetry())
    [provisioned] = w.results.delivered
    trace_id = provisioned["traceparent"].split("-")[1]
    assert trace_id == TRACE_ID  # the CRM's trace goes on
    span_ids = {format(s.context.span_id, "016x") for s in otel.spans()}
    assert provisioned["traceparent"].split("-")[2] in span_ids  # under one of the app's own spans
    assert "tracestate" not in provisioned  # the CRM sent none


def test_without_telemetry_a_result_event_has_no_trace_context():
    w = World(results=True)
    w.service().handle(created("acme"))
    [provisioned] = w.results.delivered
    assert "traceparent" not in provisioned
