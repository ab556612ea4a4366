"""shared.bootstrap: the composition root. Cheap to import (cold start), validates at start-up, wires the adapters
from the settings, builds the handler once per process."""
from __future__ import annotations

import subprocess
import sys

import pytest

from shared import bootstrap
from shared.settings import APP_ROOT, AppSettings, SettingsError

ENV = {
    "AUTH0_DOMAIN": "contoso.eu.auth0.com",
    "AUTH0_CLIENT_ID": "abc123",
    "AUTH0_CLIENT_SECRET": "mgmt-secret",
    "API_AUDIENCE": "https://api.contoso.com/",
    "KEYVAULT_URL": "https://kv-contoso.vault.azure.net/",
    "KEYVAULT_PURGE_DELETED": "true",
    "APIM_SUBSCRIPTION_ID": "3f2a1c9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
    "APIM_RESOURCE_GROUP": "rg-provisioning",
    "APIM_SERVICE_NAME": "apim-contoso",
    "LEDGER_TABLE_ENDPOINT": "https://acct.table.core.windows.net",
    "ServiceBusConnection__fullyQualifiedNamespace": "sb-contoso.servicebus.windows.net",
    "CLAIM_TTL_SECONDS": "120",
    "AZURE_TIMEOUT_SECONDS": "10",
    "PACING_MAX_WAIT_SECONDS": "20",
    "RETRY_MAX_ATTEMPTS": "3",
    "EVENT_TYPE_PREFIX": "com.contoso.",
}
#: the service SDKs and their HTTP stacks: built on the first message, never while the host indexes the functions
SERVICE_SDKS = ("auth0", "httpx", "requests", "msal", "azure.identity", "azure.keyvault", "azure.mgmt",
                "azure.data", "azure.servicebus", "azure.core")


#: what the trigger's ServiceBusMessageActions annotation imports while the host indexes (the worker must see the
#: class then): the settlement package pulls in azure-servicebus and azure-core's HTTP stack. The cost is in
#: docs/DESIGN.md; the app's own clients (Auth0, Key Vault, ARM, Tables, identity) still wait for the first message.
SETTLEMENT_IMPORTS = ("azure.servicebus", "azure.core", "requests")


def _heavy_imports(module: str) -> list[str]:
    """What importing ``module`` itself imports: the warm-up thread, which imports the rest meanwhile, is off."""
    code = (f"import sys, {module}\n"
            f"heavy = sorted(m for m in sys.modules if m.startswith({SERVICE_SDKS!r}))\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=APP_ROOT, capture_output=True, text=True, check=True,
                         env={**ENV, "WARM_UP": "false", "PATH": "/usr/bin:/bin"})
    return [m for m in out.stdout.strip().split(",") if m]


def test_the_composition_root_imports_no_service_sdk():
    assert _heavy_imports("shared.bootstrap") == []


def test_indexing_the_app_imports_only_what_the_settlement_binding_needs():
    heavy = _heavy_imports("function_app")
    assert [m for m in heavy if not m.startswith(SETTLEMENT_IMPORTS)] == []
    assert "azurefunctions.extensions.bindings.servicebus" in subprocess.run(
        [sys.executable, "-c", "import sys, function_app; print(sorted(sys.modules))"], cwd=APP_ROOT,
        capture_output=True, text=True, check=True, env={**ENV, "WARM_UP": "false", "PATH": "/usr/bin:/bin"}).stdout


@pytest.fixture
def fresh_credentials():
    from shared.adapters.credentials import reset_credentials

    reset_credentials()
    yield
    reset_credentials()


def test_build_handler_wires_the_real_adapters_without_calling_anything(fresh_credentials):
    from shared.adapters.apim_gateway import ApimGateway
    from shared.adapters.auth0_identity import Auth0IdentityProvider
    from shared.adapters.keyvault_secrets import KeyVaultSecretStore
    from shared.adapters.servicebus_retry import ServiceBusRetryScheduler
    from shared.adapters.table_ledger import TableLedger

    handler = bootstrap.build_handler(AppSettings.load(ENV), worker_id="w-1")
    service = handler.service
    assert isinstance(service.identity, Auth0IdentityProvider) and service.identity.domain == "contoso.eu.auth0.com"
    assert isinstance(service.secrets, KeyVaultSecretStore)
    assert isinstance(service.gateway, ApimGateway) and service.gateway.service_name == "apim-contoso"
    assert isinstance(service.ledger, TableLedger) and service.ledger.table_name == "customerledger"
    assert set(service.profiles) == {"oem", "partner-web", "partner-spa"}
    assert service.profiles["oem"].audience == "https://api.contoso.com/"
    assert service.worker_id == "w-1"
    assert service.options.auth0_domain == "contoso.eu.auth0.com"
    assert service.options.purge_deleted_secrets is True and service.options.claim_ttl == 120.0
    assert isinstance(handler.scheduler, ServiceBusRetryScheduler) and handler.scheduler.queue == "customer-events"
    assert handler.policy.max_attempts == 3 and handler.type_prefix == "com.contoso."
    assert service.identity.token.current is None  # nothing was called while building


def test_get_handler_builds_once(monkeypatch):
    built = []
    monkeypatch.setattr(bootstrap, "build_handler", lambda settings, worker_id=None: built.append(settings) or
                        object())
    monkeypatch.setattr(bootstrap, "load_app_settings", lambda values=None: "settings")
    bootstrap.reset()
    try:
        first = bootstrap.get_handler()
        assert bootstrap.get_handler() is first
        assert built == ["settings"]
    finally:
        bootstrap.reset()


def test_start_up_reports_every_settings_and_profile_problem(tmp_path):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text("[profiles.oem]\napp_type = \"bogus\"\n")
    with pytest.raises(SettingsError) as info:
        bootstrap.load_app_settings({**ENV, "AUTH0_DOMAIN": "", "CLAIM_TTL_SECONDS": "soon"})
    names = {p.split(":")[0] for p in info.value.problems}
    assert names == {"AUTH0_DOMAIN", "CLAIM_TTL_SECONDS"}
    with pytest.raises(SettingsError) as info:
        bootstrap.load_app_settings({**ENV, "CLIENT_PROFILES_PATH": str(profiles)})
    assert [p.split(":")[0] for p in info.value.problems] == ["CLIENT_PROFILES_PATH"]
    assert "oem" in info.value.problems[0]


def test_worker_ids_differ_between_processes_and_restarts():
    settings = AppSettings.load({**ENV, "WEBSITE_INSTANCE_ID": "0123456789abcdef"})
    first, second = bootstrap.default_worker_id(settings), bootstrap.default_worker_id(settings)
    assert first != second and first.startswith("0123456789ab-")


class WarmingPart:
    def __init__(self, calls: list, name: str, error: Exception | None = None):
        self.calls, self.name, self.error = calls, name, error

    def warm_up(self) -> None:
        self.calls.append(self.name)
        if self.error is not None:
            raise self.error


def test_warm_up_warms_every_part_and_a_failed_one_is_reported_without_its_text(monkeypatch, caplog):
    from types import SimpleNamespace

    from shared.domain.errors import TransientError

    calls: list[str] = []
    secret = "s3cr3t-value"
    service = SimpleNamespace(
        identity=WarmingPart(calls, "auth0", TransientError("token request: 503 unavailable", service="auth0",
                                                            operation="token")),
        secrets=WarmingPart(calls, "keyvault"), gateway=WarmingPart(calls, "apim"),
        ledger=WarmingPart(calls, "ledger", RuntimeError(f"connection string has {secret}")),
        results=object())  # a part without warm_up (a fake, or none) is left out
    handler = SimpleNamespace(service=service, scheduler=WarmingPart(calls, "retries"))
    monkeypatch.setattr(bootstrap, "get_handler", lambda: handler)
    with caplog.at_level("INFO", logger="customer_provisioning"):
        outcome = bootstrap.warm_up()
    assert sorted(calls) == ["apim", "auth0", "keyvault", "ledger", "retries"]
    assert outcome == {"auth0": "auth0.token: token request: 503 unavailable", "keyvault": "ready", "apim": "ready",
                       "ledger": "internal error: RuntimeError", "retries": "ready"}
    [line] = [r for r in caplog.records if r.getMessage().startswith("warm-up:")]
    assert line.levelname == "WARNING"
    assert "keyvault, apim, retries ready" in line.getMessage() and "; ledger not: internal error" in line.getMessage()
    assert secret not in caplog.text


def test_warm_up_of_an_app_that_cannot_build_its_handler_leaves_it_to_the_first_event(monkeypatch, caplog):
    def broken():
        raise SettingsError(["AUTH0_DOMAIN: missing"])

    monkeypatch.setattr(bootstrap, "get_handler", broken)
    with caplog.at_level("INFO", logger="customer_provisioning"):
        assert list(bootstrap.warm_up()) == ["handler"]
    assert "the first event builds it" in caplog.text


def test_begin_warm_up_runs_in_the_background_unless_turned_off(monkeypatch):
    import threading

    ran = threading.Event()
    monkeypatch.setattr(bootstrap, "warm_up", ran.set)
    monkeypatch.setattr(bootstrap, "startup_settings", lambda: AppSettings.load({**ENV, "WARM_UP": "false"}))
    assert bootstrap.begin_warm_up() is None and not ran.is_set()
    monkeypatch.setattr(bootstrap, "startup_settings", lambda: AppSettings.load(ENV))
    thread = bootstrap.begin_warm_up()
    thread.join(5)
    assert ran.is_set() and thread.daemon
