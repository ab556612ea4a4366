"""Telemetry end to end: events with a CRM's traceparent, sent through Service Bus to the local Functions host
running the unchanged app in its worker process, whose real SDK clients call the stand-ins; the app exports over
OTLP/HTTP (``TELEMETRY_EXPORTER=otlp``) to a receiver in this test. Each event is one trace, continuing the CRM's,
with a span per external call, and no secret is in any exported span or metric."""
from __future__ import annotations

import json

import pytest

from chaos import leak_scan
from devtools.send import build_event, send_events
from devtools.waiting import wait_until
from otlp_receiver import OtlpReceiver
from shared.adapters import telemetry as tm

pytestmark = pytest.mark.timeout(180)

CREATED_TRACE, CREATED_PARENT = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
REMOVED_TRACE, REMOVED_PARENT = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"


def _applied(otel, trace_id: str):
    return [s for s in otel.spans if s.name == tm.EVENT_SPAN and s.trace_id == trace_id
            and s.attributes.get("provisioning.outcome") == "applied"]


def _reaches_an_event_span(span, by_id) -> bool:
    """Follows the parents within the trace up to an event span."""
    while span.parent_span_id is not None and span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        if span.name == tm.EVENT_SPAN:
            return True
    return False


@pytest.fixture
def otel(stack_env):
    """The local host with the app exporting to an OTLP receiver: spans within 0.2 s, metrics every 0.5 s."""
    from funchost import LocalFunctionsHost

    receiver = OtlpReceiver()
    host = LocalFunctionsHost(".", {**stack_env, "RETRY_BASE_SECONDS": "0.2", "RETRY_MAX_DELAY_SECONDS": "1",
                                    "WARM_UP": "false", "TELEMETRY_EXPORTER": "otlp",
                                    "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                    "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_METRIC_EXPORT_INTERVAL": "500"},
                              functions=["customer_events"]).start()
    assert host.functions == ["customer_events"], host.index_error
    yield receiver
    host.stop(10)
    receiver.stop()


@pytest.fixture
def collector(local_stack):
    c = leak_scan.SecretCollector(local_stack).install()
    yield c
    c.uninstall()


def test_each_event_is_one_trace_under_the_crms_with_a_span_per_call_and_no_secret(collector, otel, stack_env,
                                                                                   local_stack):
    auth0, vault = local_stack.control("auth0"), local_stack.control("keyvault")
    auth0.fail_next("clients.create", 429)  # held until the reset and tried again within the call
    vault.fail_next("secrets.set", 500, count=3)  # past the in-call retries: the event is retried later

    created = build_event("created", "otel-acme", profile="oem")
    created.update(traceparent=f"00-{CREATED_TRACE}-{CREATED_PARENT}-01", tracestate="crm=contoso")
    send_events([created], stack_env)
    wait_until(lambda: _applied(otel, CREATED_TRACE), timeout=60, what="the creation applied")
    removed = build_event("removed", "otel-acme")
    removed.update(traceparent=f"00-{REMOVED_TRACE}-{REMOVED_PARENT}-01")
    send_events([removed], stack_env)
    wait_until(lambda: _applied(otel, REMOVED_TRACE), timeout=60, what="the removal applied")

    spans = list(otel.spans)
    by_id = {s.span_id: s for s in spans}
    calls = [s for s in spans if "provisioning.call.service" in s.attributes]
    for trace_id, parent_id in ((CREATED_TRACE, CREATED_PARENT), (REMOVED_TRACE, REMOVED_PARENT)):
        events = [s for s in spans if s.name == tm.EVENT_SPAN and s.trace_id == trace_id]
        # Every attempt at the event (the retried one included) is a child of the CRM's span, in the CRM's trace,
        # and that span is not one of the app's: it came with the event.
        assert events and {s.parent_span_id for s in events} == {parent_id}
        assert parent_id not in by_id
        in_trace = [s for s in calls if s.trace_id == trace_id]
        assert in_trace and all(_reaches_an_event_span(s, by_id) for s in in_trace)

    # The creation: tried once (Key Vault failed, a retry scheduled), then applied.
    attempts = sorted((s for s in spans if s.name == tm.EVENT_SPAN and s.trace_id == CREATED_TRACE),
                      key=lambda s: s.start_time)
    first, last = attempts[0], attempts[-1]
    assert last.attributes["provisioning.outcome"] == "applied"
    assert first.attributes["provisioning.outcome"] == "retry-scheduled"
    assert first.attributes["provisioning.retry.attempt"] == 1
    assert last.attributes["cloudevents.event_id"] == created["id"]
    assert last.attributes["provisioning.customer_id"] == "otel-acme"
    created_calls = {s.name for s in calls if s.trace_id == CREATED_TRACE}
    assert {"auth0.create_application", "keyvault.set_secret", "apim.set_authorization_server",
            "apim.set_subscription", "ledger.get_customer", "servicebus.schedule_messages"} <= created_calls
    # The token: the warm-up is off here, so the first event fetched it, in its own trace.
    assert "auth0.token" in created_calls
    removed_calls = {s.name for s in calls if s.trace_id == REMOVED_TRACE}
    assert {"auth0.delete_application", "keyvault.delete_secret", "apim.delete_authorization_server",
            "apim.delete_subscription"} <= removed_calls

    # Service, operation and the status of the answer on every call span; failures with their retry-after.
    for span in calls:
        assert span.attributes["provisioning.call.outcome"] in ("ok", "absent", "transient", "permanent")
        if span.attributes["provisioning.call.service"] in ("auth0", "keyvault", "apim", "ledger"):
            assert "http.response.status_code" in span.attributes, span.name
    failed = [s for s in calls if s.name == "keyvault.set_secret" and
              s.attributes["provisioning.call.outcome"] == "transient"]
    assert failed and failed[0].attributes["http.response.status_code"] == 500
    assert failed[0].status_message.startswith("keyvault.set_secret: 500")
    [create] = [s for s in calls if s.name == "auth0.create_application"]
    assert create.attributes["http.response.status_code"] == 201  # the 429 was held and tried again in-call
    # Metrics are sent every 0.5 s, cumulative: the process counted one 429 from Auth0.
    wait_until(lambda: any(a["outcome"] == "applied" for a, _ in otel.metric_points(tm.EVENTS)), timeout=10,
               what="the metrics exported")
    limited = sum(v for a, v in otel.metric_points(tm.RATE_LIMITED) if a["service"] == "auth0")
    assert limited == 1
    assert any(a["service"] == "apim" for a, _ in otel.metric_points(tm.CALL_DURATION))

    # The leak scan: every secret the stand-ins generated, searched for in every exported span and metric.
    secrets = collector.collect()
    kinds = {kind for kinds in secrets.values() for kind in kinds.split(" = ")}
    assert {"auth0 client secret", "auth0 management client secret", "key vault secret value",
            "apim subscription key", "managed identity header"} <= kinds
    haystacks = [leak_scan.Haystack(f"span {s.name}", s.json) for s in spans]
    haystacks.append(leak_scan.Haystack("metrics", otel.metrics_json()))
    assert json.loads(haystacks[0].text)  # the spans as exported, attributes and status included
    assert [leak.line() for leak in leak_scan.scan(secrets, haystacks)] == []
