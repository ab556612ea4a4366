"""The exporter the settings name is the one installed: each case in its own process, since OpenTelemetry's global
providers can be set only once per process. A guard in the child refuses (and reports) any connection or name
lookup beyond loopback, so the Azure Monitor case proves the distro is configured without reaching out."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from shared.adapters import telemetry_setup
from shared.settings import AppSettings
from tests.unit.test_settings import base_env

ROOT = Path(__file__).resolve().parents[2]

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CHILD = textwrap.dedent("""
    import json, socket, sys
    attempts = []
    _connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def loopback(host):
        return str(host) in ("localhost", "::1") or str(host).startswith("127.")

    def connect(self, address):
        if isinstance(address, tuple) and not loopback(address[0]):
            attempts.append(str(address[0]))
            raise OSError("refused by the test: not loopback")
        return _connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not loopback(host):
            attempts.append(str(host))
            raise socket.gaierror("refused by the test: not loopback")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo

    from types import SimpleNamespace
    from opentelemetry import trace
    from azure.core.settings import settings as azure_settings
    from shared.adapters import telemetry as tm
    from shared.adapters.telemetry_setup import configure_telemetry, sdk_installed

    destination, connection, PARENT = sys.argv[1], sys.argv[2] or None, sys.argv[3]
    used = configure_telemetry(SimpleNamespace(telemetry_destination=destination,
                                               applicationinsights_connection_string=connection))
    with tm.external_call("keyvault", "set_secret"):
        tm.observe_status(200)
    from shared.domain.trace_context import TraceContext
    from shared.service_layer.messages import InboundMessage
    telemetry = tm.OpenTelemetryTelemetry()
    with telemetry.event(InboundMessage(body=b""), TraceContext(PARENT, "crm=x")):
        passed_on = telemetry.current_trace_context()
    if sdk_installed():
        trace.get_tracer_provider().force_flush()
    print(json.dumps({"used": used, "sdk": sdk_installed(), "again": configure_telemetry(None),
                      "azure_sdk_tracing": azure_settings.tracing_implementation() is not None,
                      "passed_on": passed_on.as_attributes(), "attempts": attempts}))
    sys.stdout.flush()
    import os
    os._exit(0)  # no exporter flush at exit: nothing listens on the loopback endpoint
""")


def _run(destination: str, connection: str = "") -> tuple[dict, str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
           "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel"}
    done = subprocess.run([sys.executable, "-c", CHILD, destination, connection, PARENT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


def test_none_installs_nothing_and_passes_the_senders_trace_context_on_unchanged():
    result, _ = _run("none")
    assert result == {"used": "none", "sdk": False, "again": "none", "azure_sdk_tracing": False, "attempts": [],
                      "passed_on": {"traceparent": PARENT, "tracestate": "crm=x"}}


def test_console_prints_the_spans():
    result, out = _run("console")
    assert result["used"] == "console" and result["sdk"] and result["again"] == "console"
    assert '"name": "keyvault.set_secret"' in out and '"provisioning.call.outcome": "ok"' in out
    # the app's own span, in the sender's trace
    passed_on = result["passed_on"]["traceparent"]
    assert passed_on[:36] == PARENT[:36] and passed_on != PARENT


def test_azure_monitor_installs_the_distro_with_the_sdks_own_spans_off():
    loopback = "https://127.0.0.1:9/"
    result, _ = _run("azure-monitor", f"InstrumentationKey=00000000-0000-4000-8000-000000000000;"
                                      f"IngestionEndpoint={loopback};LiveEndpoint={loopback}")
    result.pop("passed_on")
    assert result == {"used": "azure-monitor", "sdk": True, "again": "azure-monitor", "azure_sdk_tracing": False,
                      "attempts": []}


def test_an_installed_provider_is_kept(otel, monkeypatch):
    monkeypatch.setattr(telemetry_setup, "_installed", None)
    assert telemetry_setup.configure_telemetry(SimpleNamespace(telemetry_destination="console",
                                                               applicationinsights_connection_string=None)) == "existing"
    monkeypatch.setattr(telemetry_setup, "_installed", None)


@pytest.mark.parametrize("values, destination", [
    ({}, "none"),
    ({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}, "azure-monitor"),
    ({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x", "TELEMETRY_EXPORTER": "none"}, "none"),
    ({"TELEMETRY_EXPORTER": "console"}, "console"),
])
def test_the_setting_resolves_auto(values, destination):
    assert AppSettings.load(base_env(**values)).telemetry_destination == destination


def test_azure_monitor_without_a_connection_string_is_a_settings_error():
    from shared.settings import SettingsError

    with pytest.raises(SettingsError) as err:
        AppSettings.load(base_env(TELEMETRY_EXPORTER="azure-monitor"))
    assert any(p.startswith("TELEMETRY_EXPORTER: is azure-monitor, but APPLICATIONINSIGHTS_CONNECTION_STRING")
               for p in err.value.problems)
