"""OpenTelemetry traces and metrics: a span per event, a child span per external call, and the app's counters.

Spans (tracer ``customer_provisioning``):

- ``customer_events.process`` (kind CONSUMER), one per message: a child of the event's ``traceparent`` when the
  sender gave one (the CloudEvents distributed-tracing extension), so the CRM's trace continues; otherwise a child of
  whatever context the host made current for the invocation. When both exist the host's invocation is kept as a
  link. Attributes: the message id and delivery count, the CloudEvents id/type/source, the customer, the outcome and,
  for a failure, its kind and reason (reasons are built by the app from ids and status codes, never a secret).
- ``{service}.{operation}`` (kind CLIENT), one per call to Auth0, Key Vault, API Management, the ledger or Service
  Bus, opened at each adapter's one call path. Attributes: service, operation, the HTTP status of the last answer
  (seen by an azure-core pipeline policy or an httpx response hook: the SDKs' own hooks), outcome and retry-after.

The spans the Azure SDKs make themselves (azure-core tracing) stay off: they put an exception's text into the span
status or an exception event, and the app cannot vouch for an SDK exception's text being free of secrets. The
app's call span carries the reason the adapters classified and redacted instead. No request or response body,
header or query string is ever an attribute.

Everything here is the OpenTelemetry *API*: without an SDK configured (``telemetry_setup``) it records nothing and
costs next to nothing. The metric instruments are made on the API's proxy meter, which binds to the real provider
whenever one is set.
"""
from __future__ import annotations

import contextvars
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from opentelemetry import metrics, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..domain.errors import ProvisioningError, TransientError
from ..domain.trace_context import TraceContext, traceparent_problem, tracestate_problem
from ..service_layer.telemetry_ports import EventTrace, Telemetry

INSTRUMENTATION = "customer_provisioning"
EVENT_SPAN = "customer_events.process"

# Metric names (the README's telemetry section lists them)
EVENTS = "provisioning.events"
CALLS = "provisioning.calls"
CALL_DURATION = "provisioning.call.duration"
RATE_LIMITED = "provisioning.rate_limited"
RETRIES_SCHEDULED = "provisioning.retries_scheduled"
DEAD_LETTERED = "provisioning.dead_lettered"

_tracer = trace.get_tracer(INSTRUMENTATION)
_meter = metrics.get_meter(INSTRUMENTATION)
_events = _meter.create_counter(EVENTS, unit="{event}", description="Messages handled, by outcome and event type")
_calls = _meter.create_counter(CALLS, unit="{call}", description="External calls, by service, operation, outcome")
_call_duration = _meter.create_histogram(CALL_DURATION, unit="s",
                                         description="Duration of external calls, in-call retries and pacing included")
_rate_limited = _meter.create_counter(RATE_LIMITED, unit="{answer}",
                                      description="Answers of 429 (rate limited), by service and operation")
_retries = _meter.create_counter(RETRIES_SCHEDULED, unit="{message}",
                                 description="Retry copies scheduled after a transient failure")
_dead_lettered = _meter.create_counter(DEAD_LETTERED, unit="{message}",
                                       description="Messages sent on their way to the dead-letter queue, once each")
_propagator = TraceContextTextMapPropagator()


# ---- external calls --------------------------------------------------------------------------------------------
@dataclass
class CallRecord:
    """What is known about the call in progress: the adapters' hooks fill it in."""
    service: str
    operation: str
    status: int | None = None
    outcome: str | None = None  # set by the adapter for an answer that is not an error (e.g. "absent")


_current_call: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar("current_call", default=None)


def observe_status(status: int | None) -> None:
    """An HTTP answer of the call in progress (every attempt's, in-call retries included). No-op outside a call."""
    record = _current_call.get()
    if record is None or status is None:
        return
    record.status = int(status)
    if record.status == 429:
        _rate_limited.add(1, {"service": record.service, "operation": record.operation})


@contextmanager
def external_call(service: str, operation: str) -> Iterator[CallRecord]:
    """The span and metrics of one external call. Raise through it: a ProvisioningError is recorded with its kind,
    status, retry-after and (secret-free) reason; any other exception by its type alone."""
    record = CallRecord(service, operation)
    token = _current_call.set(record)
    started = time.perf_counter()
    with _tracer.start_as_current_span(f"{service}.{operation}", kind=SpanKind.CLIENT,
                                       attributes={"provisioning.call.service": service,
                                                   "provisioning.call.operation": operation},
                                       record_exception=False, set_status_on_exception=False) as span:
        try:
            yield record
            outcome = record.outcome or "ok"
        except ProvisioningError as exc:
            outcome = "transient" if exc.transient else "permanent"
            if record.status is None and exc.status is not None:
                record.status = exc.status
            if isinstance(exc, TransientError) and exc.retry_after is not None:
                span.set_attribute("provisioning.call.retry_after_s", round(float(exc.retry_after), 3))
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, exc.reason))
            raise
        except BaseException as exc:
            outcome = "error"
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            _current_call.reset(token)
            span.set_attribute("provisioning.call.outcome", outcome)
            if record.status is not None:
                span.set_attribute("http.response.status_code", record.status)
            attributes = {"service": service, "operation": operation, "outcome": outcome}
            _calls.add(1, attributes)
            _call_duration.record(time.perf_counter() - started, attributes)


class CallStatusPolicy(SansIOHTTPPolicy):
    """azure-core pipeline policy (placed after the retry policy: sees every attempt) that tells the call in
    progress what each answer's status was."""

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        observe_status(response.http_response.status_code)


# ---- events ------------------------------------------------------------------------------------------------------
class _SpanEventTrace(EventTrace):
    def __init__(self, span):
        self.span = span
        self.event_type = "invalid"
        self.outcome = "error"

    def set_event(self, event) -> None:
        self.event_type = event.type
        self.span.set_attributes({"cloudevents.event_id": event.event_id, "cloudevents.event_type": event.type,
                                  "cloudevents.event_source": event.source,
                                  "provisioning.customer_id": event.customer_id})

    def set_outcome(self, outcome: str, *, kind: str | None = None, reason: str | None = None) -> None:
        self.outcome = outcome
        self.span.set_attribute("provisioning.outcome", outcome)
        if kind:
            self.span.set_attribute("provisioning.error.kind", kind)
        if reason:
            self.span.set_attribute("provisioning.error.reason", reason[:500])
        if outcome in ("rejected", "failed", "error"):
            self.span.set_status(Status(StatusCode.ERROR, (reason or outcome)[:500]))

    def retry_scheduled(self, attempt: int, delay_seconds: float) -> None:
        self.span.set_attributes({"provisioning.retry.attempt": attempt,
                                  "provisioning.retry.delay_s": round(float(delay_seconds), 3)})
        _retries.add(1, {"event.type": self.event_type})

    def dead_letter_bound(self, kind: str) -> None:
        self.span.set_attribute("provisioning.dead_letter", kind)
        _dead_lettered.add(1, {"kind": kind, "event.type": self.event_type})

    def note(self, problem: str) -> None:
        self.span.set_attribute("provisioning.trace_context.ignored", problem[:500])


class OpenTelemetryTelemetry(Telemetry):
    """The Telemetry port over the OpenTelemetry API (whatever provider ``telemetry_setup`` installed)."""

    @contextmanager
    def event(self, message, trace_context: TraceContext | None = None) -> Iterator[EventTrace]:
        invocation = trace.get_current_span().get_span_context()
        parent, links = None, []
        if trace_context is not None:
            parent = parent_context(trace_context)
            if invocation.is_valid:
                links.append(Link(invocation, {"provisioning.link": "functions-invocation"}))
        attributes = {"messaging.system": "servicebus", "messaging.operation.type": "process"}
        if message.message_id:
            attributes["messaging.message.id"] = str(message.message_id)[:256]
        if message.delivery_count is not None:
            attributes["messaging.servicebus.message.delivery_count"] = int(message.delivery_count)
        with _tracer.start_as_current_span(EVENT_SPAN, context=parent, kind=SpanKind.CONSUMER, links=links,
                                           attributes=attributes, record_exception=False,
                                           set_status_on_exception=False) as span:
            recorder = _SpanEventTrace(span)
            try:
                yield recorder
            finally:
                span.set_attribute("provisioning.outcome", recorder.outcome)
                _events.add(1, {"outcome": recorder.outcome, "event.type": recorder.event_type})

    def current_trace_context(self) -> TraceContext | None:
        return current_trace_context()


def parent_context(trace_context: TraceContext):
    """The OpenTelemetry context whose span is the sender's (remote) span."""
    carrier = trace_context.as_attributes()
    return _propagator.extract(carrier)


def current_trace_context() -> TraceContext | None:
    """The W3C trace context of the current span, for an outgoing event's ``traceparent``/``tracestate`` (the
    CloudEvents distributed-tracing extension): the app's event span (or a call span in it) while an event is
    handled. None when there is no valid current span (telemetry off, or outside an event)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    parent = carrier.get("traceparent")
    if parent is None or traceparent_problem(parent) is not None:
        return None
    state = carrier.get("tracestate") or None
    return TraceContext(parent, state if state and tracestate_problem(state) is None else None)
