"""Fixtures shared by the integration and end-to-end tests: the whole local stack, started once per session.

Unit tests need none of this; the stand-in tests start their own servers.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    """Identity, Auth0, Key Vault, APIM, Service Bus and Azurite on free loopback ports."""
    from emulators.stack import LocalStack, StackOptions

    stack = LocalStack(tmp_path_factory.mktemp("localstack"), StackOptions()).start()
    yield stack
    stack.stop()


@pytest.fixture
def stack_env(local_stack, monkeypatch):
    """The process environment the app sees under the Functions host, pointing at the local stack.

    Every stand-in is reset first, so each test starts from empty services.
    """
    for name in ("auth0", "keyvault", "apim"):
        local_stack.control(name).reset()
    for key in [k for k in os.environ if k.startswith(("AZURE_", "MSI_", "IDENTITY_"))]:
        monkeypatch.delenv(key, raising=False)
    for key, value in local_stack.settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(ROOT)
    _drop_ledger_table(local_stack.settings["LEDGER_CONNECTION"], local_stack.settings["LEDGER_TABLE"])
    _empty_queues(local_stack)
    yield local_stack.settings


def _empty_queues(stack) -> None:
    """Messages another test left (a scheduled retry copy, a dead letter) must not reach this test's host. A
    scheduled copy may fall due between the look and the cancel: then look again."""
    from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusClient, ServiceBusReceiveMode, ServiceBusSubQueue
    from azure.servicebus.exceptions import MessageNotFoundError, OperationTimeoutError

    with ServiceBusClient.from_connection_string(stack.servicebus.connection_string) as client:
        for _ in range(5):
            fell_due = False
            for name, q in stack.servicebus.snapshot()["queues"].items():
                scheduled = [m["sequence_number"] for m in q["messages"] if m["state"] == "scheduled"]
                for number in scheduled:
                    try:
                        with client.get_queue_sender(name) as sender:
                            sender.cancel_scheduled_messages(number)
                    except MessageNotFoundError:  # fell due meanwhile: drained on the next look
                        fell_due = True
                session = NEXT_AVAILABLE_SESSION if q["sessions"] else None  # listed only on session-enabled queues
                for sub, count in ((None, len(q["messages"]) - len(scheduled)),
                                   (ServiceBusSubQueue.DEAD_LETTER, q["dead_letter_count"])):
                    while count > 0:
                        kw = {"session_id": session} if sub is None and session else {}
                        try:
                            with client.get_queue_receiver(name, sub_queue=sub, max_wait_time=1,
                                                           receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE,
                                                           **kw) as receiver:
                                got = receiver.receive_messages(max_message_count=100, max_wait_time=1)
                        except OperationTimeoutError:  # no session free to take: what is left is locked elsewhere
                            break
                        if not got:
                            break
                        count -= len(got)
            if not fell_due:
                return


def _drop_ledger_table(connection: str, table: str) -> None:
    from azure.data.tables import TableServiceClient

    with TableServiceClient.from_connection_string(connection) as svc:
        svc.delete_table(table)  # no error when it does not exist


@pytest.fixture
def app_host(stack_env):
    """The unchanged function app under the local Functions host, on the local stack, with short retry delays.
    The host runs in this process; the app runs in its worker process, indexed and invoked by Microsoft's worker
    library, so nothing of the app is imported here. The warm-up is off: what a test counts is what its events did."""
    from funchost import LocalFunctionsHost

    host = LocalFunctionsHost(str(ROOT), {**stack_env, "RETRY_BASE_SECONDS": "0.2", "RETRY_MAX_DELAY_SECONDS": "1",
                                          "WARM_UP": "false"}, functions=["customer_events"])
    host.start()
    assert host.functions == ["customer_events"], host.index_error or host.function_errors
    yield host
    host.stop(10)


@pytest.fixture
def ledger(stack_env):
    """The app's own ledger adapter, reading what the app wrote."""
    from shared.settings import LedgerSettings
    from shared.adapters.table_ledger import TableLedger

    return TableLedger.from_settings(LedgerSettings.load(stack_env))


def customer_status(ledger, customer_id: str) -> str | None:
    record = ledger.get_customer(customer_id)[0]
    return record.status if record else None
class Telemetry:
    """What the app exported through OpenTelemetry: finished spans and the metrics collected so far."""

    def __init__(self, exporter, reader):
        self.exporter, self.reader = exporter, reader

    def spans(self) -> list:
        return list(self.exporter.get_finished_spans())

    def metric_points(self, name: str) -> list[tuple[dict, float]]:
        """(attributes, value) of every data point of metric ``name`` (a sum's value, a histogram's count)."""
        data = self.reader.get_metrics_data()
        out = []
        for rm in (data.resource_metrics if data else []):
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            out.append((dict(point.attributes), getattr(point, "value", getattr(point, "count", 0))))
        return out

    def metrics_json(self) -> str:
        data = self.reader.get_metrics_data()
        return data.to_json() if data else ""


@pytest.fixture(scope="session")
def _otel_sdk():
    """The OpenTelemetry SDK with in-memory exporters, installed once for the whole run (the API's global providers
    can be set only once per process); the app's own set-up then finds a provider and keeps it. Spans are kept only
    while a test that asks for them runs, so the tests after it do not fill memory with theirs."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    class WhileAsked(SimpleSpanProcessor):
        active = False

        def on_end(self, span) -> None:
            if self.active:
                super().on_end(span)

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    processor = WhileAsked(exporter)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    if trace.get_tracer_provider() is not provider:
        pytest.skip("another OpenTelemetry tracer provider was installed first in this process")
    return Telemetry(exporter, reader), processor


@pytest.fixture
def otel(_otel_sdk):
    """The spans exported during this test, and the metrics (cumulative over the run: compare before and after)."""
    telemetry, processor = _otel_sdk
    telemetry.exporter.clear()
    processor.active = True
    yield telemetry
    processor.active = False
    telemetry.exporter.clear()
