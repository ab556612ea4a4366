"""Fixtures for the adapter integration tests: the session's local stack (Auth0, Key Vault, API Management and
managed-identity stand-ins over TLS, and Azurite) and the app's settings pointing at it.

The adapters run their real SDK clients over loopback, authenticated by the real ``DefaultAzureCredential`` through
the managed-identity stand-in, exactly as in Azure except for the CA (``LOCAL_STACK_CA_BUNDLE``).
"""
from __future__ import annotations

import os

import pytest

from emulators.control import StandInControl
from emulators.stack import LocalStack
from shared.adapters.credentials import reset_credentials
from shared.settings import AppSettings

# Anything that would make DefaultAzureCredential pick another credential before the managed identity.
OTHER_CREDENTIAL_ENV = (
    "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
)


@pytest.fixture(scope="session")
def stack(local_stack) -> LocalStack:
    """The session's local stack (``tests/conftest.py``), shared with the end-to-end tests."""
    return local_stack


@pytest.fixture(scope="session")
def app_env(stack) -> dict[str, str]:
    return dict(stack.settings)


@pytest.fixture(scope="module", autouse=True)
def managed_identity_env(app_env):
    """The process environment DefaultAzureCredential reads: only the managed-identity stand-in."""
    saved = {k: os.environ.get(k) for k in (*OTHER_CREDENTIAL_ENV, "IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
    for key in OTHER_CREDENTIAL_ENV:
        os.environ.pop(key, None)
    os.environ["IDENTITY_ENDPOINT"] = app_env["IDENTITY_ENDPOINT"]
    os.environ["IDENTITY_HEADER"] = app_env["IDENTITY_HEADER"]
    reset_credentials()
    yield
    reset_credentials()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def settings(app_env) -> AppSettings:
    return AppSettings.load(app_env)


def control(stack, service: str) -> StandInControl:
    return StandInControl(getattr(stack, service).url, verify=str(stack.tls.ca_cert))


@pytest.fixture
def auth0_ctl(stack):
    """Faults cleared, and a rate limit high enough for tests that create hundreds of applications."""
    ctl = control(stack, "auth0")
    ctl.clear_faults()
    ctl.config(rate=1000.0, burst=1000)
    yield ctl
    ctl.clear_faults()
    ctl.config(rate=stack.options.auth0_rate, burst=stack.options.auth0_burst, token_lifetime=86400)


@pytest.fixture
def keyvault_ctl(stack):
    ctl = control(stack, "keyvault")
    ctl.clear_faults()
    yield ctl
    ctl.clear_faults()


@pytest.fixture
def apim_ctl(stack):
    ctl = control(stack, "apim")
    ctl.clear_faults()
    yield ctl
    ctl.clear_faults()
