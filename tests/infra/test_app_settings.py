"""App settings from one source: the template sets exactly the settings the app reads (plus the host's own), every
name in local.settings.sample.json is accounted for, and secrets are only Key Vault references."""
from __future__ import annotations

import iac_checks
from iac_checks import AHEAD_OF_APP, NOT_IN_AZURE, PLATFORM_SETTINGS


def _findings(templates, main=None):
    main = main or iac_checks.named(templates, "main.bicep")
    return iac_checks.settings_findings(main, templates, iac_checks.app_setting_names(),
                                        iac_checks.sample_setting_names())


def test_template_sets_exactly_the_app_settings(templates):
    assert not _findings(templates)


def test_the_two_sets_compared(main_template):
    template_names = {e["name"] for e in iac_checks.template_app_settings(main_template)}
    app_names = iac_checks.app_setting_names()
    assert template_names - PLATFORM_SETTINGS.keys() - AHEAD_OF_APP.keys() == app_names - NOT_IN_AZURE.keys()
    assert iac_checks.sample_setting_names() <= template_names | NOT_IN_AZURE.keys()


def test_the_exceptions_name_real_settings():
    """An exception for a setting nobody reads any more is a stale one."""
    known = iac_checks.app_setting_names() | iac_checks.sample_setting_names()
    assert NOT_IN_AZURE.keys() <= known
    assert not PLATFORM_SETTINGS.keys() & iac_checks.app_setting_names() - {"ServiceBusConnection__credential"}


def test_app_setting_names_reads_the_settings_module_and_the_sample():
    names = iac_checks.app_setting_names()
    assert {"AUTH0_DOMAIN", "CLAIM_TTL_SECONDS", "LEDGER_TABLE_ENDPOINT", "APIM_CLIENT_REGISTRATION_ENDPOINT",
            "AZURE_TIMEOUT_SECONDS", "CUSTOMER_EVENTS_QUEUE", "CUSTOMER_EVENTS_SESSIONS", "RETRY_MAX_ATTEMPTS",
            "ServiceBusConnection__fullyQualifiedNamespace", "ServiceBusConnection__clientId"} <= names


def test_secrets_are_key_vault_references(main_template, templates):
    values = {e["name"]: e["value"] for e in iac_checks.template_app_settings(main_template)}
    keyvault = iac_checks.named(templates, "keyvault-app.bicep")  # the app's own vault, where it only reads
    for name in iac_checks.SECRET_SETTINGS:
        path = iac_checks.accessor_path(values[name])
        assert path[:2] == ["appKeyVault", "outputs"], name
        assert keyvault.tree["outputs"][path[2]]["value"].startswith("@Microsoft.KeyVault(SecretUri=")


def test_auth0_rate_limit_default_is_within_the_app_bounds(main_template):
    """share / instances, as main.bicep computes it, is at least the app's minimum of 0.1 request/s."""
    share = main_template.resolve("auth0RateLimitShare")
    instances = main_template.resolve("maximumInstanceCount")
    milli = share * 1000 // instances
    assert share == 0 or 0.1 <= milli / 1000 <= share


# -- mutated copies -------------------------------------------------------------------------------------------------

def test_a_setting_dropped_from_the_template_is_reported(mutated):
    templates, _ = mutated("main.bicep", "  {\n    name: 'AUTH0_DOMAIN'\n    value: auth0Domain\n  }\n", "")
    assert "AUTH0_DOMAIN: the app reads it but the template does not set it" in _findings(templates)


def test_a_setting_the_app_does_not_read_is_reported(mutated):
    templates, _ = mutated("main.bicep", "    name: 'CLAIM_TTL_SECONDS'\n", "    name: 'CLAIM_TTL_SECOND'\n")
    findings = _findings(templates)
    assert "CLAIM_TTL_SECOND: the template sets it but the app does not read it" in findings
    assert "CLAIM_TTL_SECONDS: the app reads it but the template does not set it" in findings


def test_a_setting_set_twice_is_reported(mutated):
    templates, _ = mutated("main.bicep", "    name: 'LEDGER_TABLE'\n", "    name: 'LEDGER_TABLE_ENDPOINT'\n")
    assert "LEDGER_TABLE_ENDPOINT: set twice" in _findings(templates)


def test_a_plain_secret_is_reported(mutated):
    templates, _ = mutated("main.bicep", "    value: appKeyVault.outputs.auth0ClientSecretReference\n",
                           "    value: auth0ManagementClientSecret\n")
    assert "AUTH0_CLIENT_SECRET: a secret, but its value is not a Key Vault reference" in _findings(templates)


def test_a_storage_key_is_reported(mutated):
    templates, _ = mutated("modules/storage.bicep", "output name string = account.name\n",
                           "output name string = account.name\noutput key string = account.listKeys().keys[0].value\n")
    assert "storage.bicep: reads keys or connection strings (list*()); use identity-based access" in \
        _findings(templates)


def test_the_worker_thread_pool_matches_host_json_concurrency(main_template):
    """maxConcurrentCalls messages are handed over at once; the worker runs sync functions on a pool of
    PYTHON_THREADPOOL_THREAD_COUNT threads (default cores + 4): the template, the local stack and the sample set it
    to host.json's figure, so that the concurrency host.json promises is the one the app gets."""
    import json

    from emulators.stack import max_concurrent_calls
    values = {e["name"]: main_template.resolve(e["value"]) for e in iac_checks.template_app_settings(main_template)}
    host = json.loads((iac_checks.INFRA.parent / "host.json").read_text())
    wanted = host["extensions"]["serviceBus"]["maxConcurrentCalls"]
    sample = json.loads((iac_checks.INFRA.parent / "local.settings.sample.json").read_text())["Values"]
    assert int(values["PYTHON_THREADPOOL_THREAD_COUNT"]) == wanted
    assert int(sample["PYTHON_THREADPOOL_THREAD_COUNT"]) == wanted
    assert max_concurrent_calls() == wanted
