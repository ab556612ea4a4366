"""AppSettings.load: defaults, validation that lists every problem at once, and no secret in any output."""
from __future__ import annotations

import pytest

from shared.settings import APP_ROOT, AppSettings, SettingsError

CONNECTION = ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWFjY291bnQta2V5;"
              "EndpointSuffix=core.windows.net")
SECRET = "mgmt-client-secret-value"


def base_env(**overrides) -> dict[str, str]:
    env = {
        "AUTH0_DOMAIN": "contoso.eu.auth0.com",
        "AUTH0_CLIENT_ID": "abc123",
        "AUTH0_CLIENT_SECRET": SECRET,
        "API_AUDIENCE": "https://api.contoso.com/",
        "KEYVAULT_URL": "https://kv-contoso.vault.azure.net/",
        "APIM_SUBSCRIPTION_ID": "3f2a1c9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
        "APIM_RESOURCE_GROUP": "rg-provisioning",
        "APIM_SERVICE_NAME": "apim-contoso",
        "AzureWebJobsStorage": CONNECTION,
        "ServiceBusConnection__fullyQualifiedNamespace": "sb-contoso.servicebus.windows.net",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def problems(env) -> list[str]:
    with pytest.raises(SettingsError) as info:
        AppSettings.load(env)
    return info.value.problems


def test_defaults():
    s = AppSettings.load(base_env())
    assert s.auth0_management_audience == "https://contoso.eu.auth0.com/api/v2/"
    assert s.auth0_timeout_seconds == 10.0
    assert s.client_profiles_path == APP_ROOT / "config" / "client_profiles.toml"
    assert s.event_type_prefix == ""
    assert s.keyvault_purge_deleted is False
    assert s.apim_management_endpoint == "https://management.azure.com"
    assert s.ledger.connection_string == CONNECTION and s.ledger.endpoint is None
    assert s.ledger_table == "customerledger"
    assert s.azure_client_id is None and s.local_stack_ca_bundle is None
    assert s.claim_ttl_seconds == 300.0 and s.azure_timeout_seconds == 30.0


def test_explicit_values(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    s = AppSettings.load(base_env(
        AUTH0_DOMAIN="127.0.0.1:8443", AUTH0_AUDIENCE="https://custom/api/v2/", AUTH0_TIMEOUT_SECONDS="3.5",
        EVENT_TYPE_PREFIX="com.contoso.", KEYVAULT_PURGE_DELETED="TRUE", APIM_MANAGEMENT_ENDPOINT="https://arm.local/",
        LEDGER_CONNECTION="UseDevelopmentStorage=true", LEDGER_TABLE="ledger2", AZURE_CLIENT_ID="uai-client",
        LOCAL_STACK_CA_BUNDLE=str(ca), CLAIM_TTL_SECONDS="60",
        AZURE_TIMEOUT_SECONDS="5", PACING_MAX_WAIT_SECONDS="10"))
    assert s.auth0_domain == "127.0.0.1:8443" and s.auth0_management_audience == "https://custom/api/v2/"
    assert s.auth0_timeout_seconds == 3.5 and s.event_type_prefix == "com.contoso."
    assert s.keyvault_purge_deleted is True and s.apim_management_endpoint == "https://arm.local"
    # LEDGER_CONNECTION wins over AzureWebJobsStorage
    assert s.ledger.connection_string == "UseDevelopmentStorage=true"
    assert s.ledger.table == "ledger2" and s.azure_client_id == "uai-client"
    assert s.local_stack_ca_bundle == str(ca) and s.claim_ttl_seconds == 60.0


def test_profiles_path_is_relative_to_the_app_root_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert AppSettings.load(base_env(CLIENT_PROFILES_PATH="config/client_profiles.toml")).client_profiles_path \
        == APP_ROOT / "config" / "client_profiles.toml"
    assert any(p.startswith("CLIENT_PROFILES_PATH") for p in problems(base_env(CLIENT_PROFILES_PATH="nope.toml")))


def test_every_missing_setting_is_listed_at_once():
    found = problems({})
    names = {p.split(":")[0] for p in found}
    assert names == {"AUTH0_DOMAIN", "AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET", "API_AUDIENCE", "KEYVAULT_URL",
                     "APIM_SUBSCRIPTION_ID", "APIM_RESOURCE_GROUP", "APIM_SERVICE_NAME", "LEDGER_CONNECTION",
                     "ServiceBusConnection"}
    assert all("required" in p for p in found)
    assert "ServiceBusConnection__fullyQualifiedNamespace" in next(p for p in found
                                                                   if p.startswith("ServiceBusConnection"))
    assert "LEDGER_TABLE_ENDPOINT" in next(p for p in found if p.startswith("LEDGER_CONNECTION"))


def test_invalid_values_are_explained(tmp_path):
    found = problems(base_env(
        AUTH0_DOMAIN="https://contoso.eu.auth0.com", KEYVAULT_URL="http://kv.vault.azure.net",
        APIM_SUBSCRIPTION_ID="my-subscription", APIM_SERVICE_NAME="apim_contoso", CLAIM_TTL_SECONDS="soon",
        AUTH0_TIMEOUT_SECONDS="0", KEYVAULT_PURGE_DELETED="maybe", LEDGER_TABLE="1ledger",
        LOCAL_STACK_CA_BUNDLE=str(tmp_path / "missing.pem"), API_AUDIENCE="api.contoso.com",
        DRIFT_SCHEDULE="every hour"))
    by_name = {p.split(":")[0]: p for p in found}
    assert set(by_name) == {"AUTH0_DOMAIN", "KEYVAULT_URL", "APIM_SUBSCRIPTION_ID", "APIM_SERVICE_NAME",
                            "CLAIM_TTL_SECONDS", "AUTH0_TIMEOUT_SECONDS", "KEYVAULT_PURGE_DELETED", "LEDGER_TABLE",
                            "LOCAL_STACK_CA_BUNDLE", "API_AUDIENCE", "DRIFT_SCHEDULE"}
    assert "without https://" in by_name["AUTH0_DOMAIN"]
    assert "GUID" in by_name["APIM_SUBSCRIPTION_ID"]
    assert "true or false" in by_name["KEYVAULT_PURGE_DELETED"]
    assert "between 1 and 120" in by_name["AUTH0_TIMEOUT_SECONDS"]
    assert "NCRONTAB" in by_name["DRIFT_SCHEDULE"]
    assert AppSettings.load(base_env(DRIFT_SCHEDULE="0 */15 * * * *")).drift_schedule == "0 */15 * * * *"


def test_an_unresolved_key_vault_reference_is_named():
    ref = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/auth0-mgmt/)"
    found = problems(base_env(AUTH0_CLIENT_SECRET=ref))
    assert len(found) == 1 and found[0].startswith("AUTH0_CLIENT_SECRET")
    assert "Key Vault reference did not resolve" in found[0]


def test_the_ledger_takes_a_connection_or_an_endpoint_not_both():
    s = AppSettings.load(base_env(AzureWebJobsStorage=None,
                                   LEDGER_TABLE_ENDPOINT="https://acct.table.core.windows.net/"))
    assert s.ledger.connection_string is None and s.ledger.endpoint == "https://acct.table.core.windows.net"
    # The explicit endpoint wins over a connection string in AzureWebJobsStorage (always set in Azure).
    assert AppSettings.load(base_env(LEDGER_TABLE_ENDPOINT="https://acct.table.core.windows.net")
                            ).ledger.connection_string is None
    found = problems(base_env(LEDGER_CONNECTION=CONNECTION, LEDGER_TABLE_ENDPOINT="https://acct.table.core.windows.net"))
    assert found[0].startswith("LEDGER_CONNECTION, LEDGER_TABLE_ENDPOINT")


def test_no_secret_in_the_repr_or_the_errors():
    s = AppSettings.load(base_env())
    text = repr(s) + str(s)
    assert SECRET not in text and "c2VjcmV0LWFjY291bnQta2V5" not in text
    assert "abc123" in text  # the rest is printed, for diagnosis
    bad = "AccountKey=c2VjcmV0LWFjY291bnQta2V5 without separators"
    message = str(SettingsError(problems(base_env(LEDGER_CONNECTION=bad.replace("=", ":"), API_AUDIENCE=None))))
    assert "c2VjcmV0LWFjY291bnQta2V5" not in message
    assert "LEDGER_CONNECTION" in message and "API_AUDIENCE" in message


def test_the_environment_is_kept_for_the_profiles():
    s = AppSettings.load(base_env(EXTRA="value"))
    assert s.values["EXTRA"] == "value" and s.values["API_AUDIENCE"] == "https://api.contoso.com/"


def test_the_app_and_the_ops_tool_resolve_the_same_ledger_and_queue(tmp_path):
    """In Azure AzureWebJobsStorage is always set: an identity-based ledger must still be the one both read."""
    from opstool.connection import resolve_target
    from shared.settings import LedgerSettings, ServiceBusSettings

    identity = base_env(LEDGER_TABLE_ENDPOINT="https://ledgeracct.table.core.windows.net",
                        CUSTOMER_EVENTS_QUEUE="events-prod", ServiceBusConnection__clientId="uai-sb")
    app = AppSettings.load(identity)
    tool_ledger = LedgerSettings.load(identity).ledger
    assert app.ledger == tool_ledger and tool_ledger.endpoint == "https://ledgeracct.table.core.windows.net"
    assert tool_ledger.connection_string is None  # not the host's storage account
    assert app.service_bus == ServiceBusSettings.load(identity).service_bus
    assert app.service_bus.fully_qualified_namespace == "sb-contoso.servicebus.windows.net"
    assert app.service_bus.client_id == "uai-sb"
    target = resolve_target(connection_string=None, namespace=None, queue=None, values=identity)
    assert (target.queue, target.namespace) == (app.customer_events_queue, app.service_bus.namespace)

    strings = base_env(LEDGER_CONNECTION="UseDevelopmentStorage=true",
                       ServiceBusConnection="Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=s")
    assert AppSettings.load(strings).ledger == LedgerSettings.load(strings).ledger
    assert AppSettings.load(strings).ledger.connection_string == "UseDevelopmentStorage=true"
    assert resolve_target(connection_string=None, namespace=None, queue=None, values=strings).namespace \
        == AppSettings.load(strings).service_bus.namespace == "127.0.0.1:5672"


def test_an_identity_based_host_storage_gives_the_ledger_its_table_endpoint():
    env = base_env(AzureWebJobsStorage=None, AzureWebJobsStorage__accountName="hostacct")
    assert AppSettings.load(env).ledger.endpoint == "https://hostacct.table.core.windows.net"


def test_booleans_parse_the_same_everywhere():
    for text, value in (("on", True), ("yes", True), ("1", True), ("TRUE", True), ("off", False), ("0", False)):
        assert AppSettings.load(base_env(CUSTOMER_EVENTS_SESSIONS=text)).customer_events_sessions is value
    with pytest.raises(SettingsError, match="CUSTOMER_EVENTS_SESSIONS: must be true or false"):
        AppSettings.load(base_env(CUSTOMER_EVENTS_SESSIONS="maybe"))


def test_every_setting_is_described_and_the_sample_file_lists_them():
    import json

    from shared.settings import app_setting_names, describe_settings

    described = describe_settings()
    assert all(s.description for s in described)
    sample = json.loads((APP_ROOT / "local.settings.sample.json").read_text())["Values"]
    missing = {s.name for s in described if s.scope in ("app", "local")} - set(sample)
    assert missing == set(), f"local.settings.sample.json lacks {sorted(missing)}"
    assert {"CUSTOMER_EVENTS_QUEUE", "RETRY_MAX_ATTEMPTS", "AUTH0_DOMAIN"} <= app_setting_names()
    assert "WEBSITE_INSTANCE_ID" not in app_setting_names()  # the platform's, not a deployment's
