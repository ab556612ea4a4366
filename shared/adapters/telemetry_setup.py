"""Installs the OpenTelemetry SDK once per process, with the exporter the settings name (``TELEMETRY_EXPORTER``).

- ``azure-monitor``: Microsoft's distro (``azure-monitor-opentelemetry``'s ``configure_azure_monitor``) exports
  traces, metrics and logs to ``APPLICATIONINSIGHTS_CONNECTION_STRING``, with Microsoft Entra ID when
  ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` says so (the exporter reads it). Its automatic instrumentations are
  all turned off: the app's own spans cover every external call (``telemetry``), the Azure SDKs' spans would carry
  exception texts, and the web-framework ones have nothing to instrument here.
- ``otlp``: the SDK with the OTLP/HTTP exporters (protobuf) to ``OTEL_EXPORTER_OTLP_ENDPOINT``: any OpenTelemetry
  collector (Microsoft's Functions documentation names it as the alternative to Azure Monitor); the local tests
  collect what the app in its worker process exports this way.
- ``console``: the SDK with console exporters (spans as they end, metrics every minute), for a developer.
- ``none``: nothing is installed; the OpenTelemetry API then records nothing.

Called from the composition root on the first message, not at indexing: the distro costs about a second of imports,
which the host's start-up should not pay. A process in which an SDK provider is already installed (the Python
worker configures the distro itself when ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` is true, or a test
installed one) keeps it: configuring twice would export everything twice.
"""
from __future__ import annotations

import threading

from opentelemetry import metrics, trace

SERVICE_NAME = "customer-provisioning"
#: every instrumentation the distro knows; all off (see the module's docstring)
DISTRO_INSTRUMENTATIONS = ("azure_sdk", "django", "fastapi", "flask", "httpx", "httpx2", "psycopg2", "requests",
                           "urllib", "urllib3")
CONSOLE_METRIC_INTERVAL_MS = 60_000

_lock = threading.Lock()
_installed: str | None = None


def sdk_installed() -> bool:
    """Whether a real (SDK) tracer provider is installed in this process, by us or by anyone else."""
    from opentelemetry.sdk.trace import TracerProvider

    return isinstance(trace.get_tracer_provider(), TracerProvider)


def configure_telemetry(settings) -> str:
    """Install the exporter ``settings.telemetry_destination`` names, once; returns what is in use: azure-monitor,
    console, none, or existing (a provider someone else installed)."""
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        destination = settings.telemetry_destination
        if destination == "none":
            _installed = "none"
        elif sdk_installed():
            _installed = "existing"
        elif destination == "azure-monitor":
            _configure_azure_monitor(settings.applicationinsights_connection_string)
            _installed = destination
        elif destination == "otlp":
            _configure_otlp(settings.otlp_endpoint)
            _installed = destination
        else:
            _configure_console()
            _installed = destination
        return _installed


def _resource():
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": SERVICE_NAME})


def _configure_azure_monitor(connection_string: str) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(connection_string=connection_string, resource=_resource(),
                            instrumentation_options={name: {"enabled": False} for name in DISTRO_INSTRUMENTATIONS})


def _configure_otlp(endpoint: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    base = endpoint.rstrip("/")
    resource = _resource()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"))
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def _configure_console() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = _resource()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=CONSOLE_METRIC_INTERVAL_MS)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def reset_for_tests() -> None:
    """Forget what was installed here (the OpenTelemetry globals themselves can be set only once per process)."""
    global _installed
    with _lock:
        _installed = None
