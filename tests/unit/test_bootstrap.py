"""shared.bootstrap: cheap to import (cold start), wires the adapters from the settings, builds once per process."""
from __future__ import annotations

import subprocess
import sys

import pytest

from shared import bootstrap
from shared.adapters.settings import APP_ROOT, Settings

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
    "CLAIM_TTL_SECONDS": "120",
}


def test_importing_bootstrap_imports_no_sdk():
    code = ("import sys, shared.bootstrap\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('azure', 'auth0', 'httpx', 'pydantic', 'requests', 'msal'))\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=APP_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.fixture
def fresh_credentials():
    from shared.adapters.credentials import reset_credentials

    reset_credentials()
    yield
    reset_credentials()


def test_build_service_wires_the_real_adapters_without_calling_anything(fresh_credentials):
    from shared.adapters.apim_gateway import ApimGateway
    from shared.adapters.auth0_identity import Auth0IdentityProvider
    from shared.adapters.keyvault_secrets import KeyVaultSecretStore
    from shared.adapters.table_ledger import TableLedger

    service = bootstrap.build_service(Settings.from_env(ENV), worker_id="w-1")
    assert isinstance(service.identity, Auth0IdentityProvider) and service.identity.domain == "contoso.eu.auth0.com"
    assert isinstance(service.secrets, KeyVaultSecretStore)
    assert isinstance(service.gateway, ApimGateway) and service.gateway.service_name == "apim-contoso"
    assert isinstance(service.ledger, TableLedger) and service.ledger.table_name == "customerledger"
    assert set(service.profiles) == {"oem", "partner-web", "partner-spa"}
    assert service.profiles["oem"].audience == "https://api.contoso.com/"
    assert service.worker_id == "w-1"
    assert service.options.auth0_domain == "contoso.eu.auth0.com"
    assert service.options.purge_deleted_secrets is True and service.options.claim_ttl == 120.0
    assert sum(service.identity.calls.values()) == 0  # nothing was called while building


def test_get_service_builds_once(monkeypatch):
    built = []
    monkeypatch.setattr(bootstrap, "build_service", lambda settings, worker_id=None: built.append(settings) or
                        object())
    monkeypatch.setattr(bootstrap.Settings, "from_env", classmethod(lambda cls, env=None: "settings"))
    bootstrap.reset_service()
    try:
        first = bootstrap.get_service()
        assert bootstrap.get_service() is first
        assert built == ["settings"]
    finally:
        bootstrap.reset_service()


def test_get_service_reports_every_settings_problem(monkeypatch):
    for key in list(ENV) + ["AzureWebJobsStorage", "LEDGER_CONNECTION"]:
        monkeypatch.delenv(key, raising=False)
    bootstrap.reset_service()
    with pytest.raises(ValueError) as info:
        bootstrap.get_service()
    assert "AUTH0_DOMAIN" in str(info.value) and "KEYVAULT_URL" in str(info.value)


def test_worker_ids_differ_between_processes_and_restarts():
    assert bootstrap.default_worker_id() != bootstrap.default_worker_id()
