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
    yield local_stack.settings


def _drop_ledger_table(connection: str, table: str) -> None:
    from azure.data.tables import TableServiceClient

    with TableServiceClient.from_connection_string(connection) as svc:
        svc.delete_table(table)  # no error when it does not exist
