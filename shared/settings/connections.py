"""How a connection setting resolves: the rules of the Functions host, written once.

The trigger's Service Bus connection, the retry scheduler, the ops tool, the developer tools and the local host all
resolve the Service Bus namespace through :func:`resolve_service_bus_connection`; the app and the ops tool find the
ledger through :func:`resolve_ledger_connection`. So none of them can read a different namespace or storage account
than the others.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

#: the trigger's ``connection`` property
SERVICE_BUS_CONNECTION = "ServiceBusConnection"
#: the host's default when a trigger names no connection
DEFAULT_SERVICE_BUS_CONNECTION = "AzureWebJobsServiceBus"
KEYVAULT_REFERENCE = "@Microsoft.KeyVault("


class ConnectionSettingError(ValueError):
    """A connection setting is missing or unusable; the message names the setting."""


class MissingConnectionSetting(ConnectionSettingError):
    """No setting gives the connection at all."""


def get_setting(values: Mapping[str, str], name: str) -> str | None:
    """A setting by its configuration name. ``A:B`` and ``A__B`` are the same key to .NET configuration; an empty
    value counts as absent."""
    for candidate in (name, name.replace(":", "__"), name.replace("__", ":")):
        value = values.get(candidate)
        if value and value.strip():
            return value.strip()
    return None


@dataclass(frozen=True)
class ServiceBusConnection:
    """A connection string, or a namespace reached with a token credential (identity-based connection)."""
    setting: str
    connection_string: str | None = field(default=None, repr=False)  # holds the SAS key: never printed
    fully_qualified_namespace: str | None = None
    client_id: str | None = None
    credential_kind: str | None = None  # "<name>__credential", e.g. "managedidentity"

    @property
    def is_identity_based(self) -> bool:
        return self.connection_string is None

    @property
    def namespace(self) -> str:
        """Host (and port) of the namespace: safe to print, unlike the connection string."""
        if self.fully_qualified_namespace:
            return self.fully_qualified_namespace
        for part in (self.connection_string or "").split(";"):
            key, _, value = part.partition("=")
            if key.strip().lower() == "endpoint":
                return re.sub(r"^sb://", "", value.strip()).rstrip("/")
        return ""


def namespace_fqdn(name: str) -> str:
    """``contoso`` -> ``contoso.servicebus.windows.net``; URLs and host:port forms are kept as hosts."""
    name = re.sub(r"^(sb|amqps?|https?)://", "", name.strip().rstrip("/"))
    if not name:
        raise ConnectionSettingError("the Service Bus namespace is empty")
    return name if "." in name or ":" in name else f"{name}.servicebus.windows.net"


def resolve_service_bus_connection(connection: str | None, values: Mapping[str, str]) -> ServiceBusConnection:
    """The Service Bus extension's rules: ``connection`` names a setting (default AzureWebJobsServiceBus), also
    looked up with the ``AzureWebJobs`` prefix. A value is a connection string; otherwise the section's
    ``fullyQualifiedNamespace`` (+ ``clientId``, ``credential``) makes it an identity-based connection."""
    name = connection or DEFAULT_SERVICE_BUS_CONNECTION
    candidates = [name]
    if not name.lower().startswith("azurewebjobs"):
        candidates.append(f"AzureWebJobs{name}")
    for candidate in candidates:
        value = get_setting(values, candidate)
        if value:
            if value.startswith(KEYVAULT_REFERENCE):
                raise ConnectionSettingError(f"{candidate}: the Key Vault reference did not resolve; check that the "
                                             "app's identity may read that secret")
            if "endpoint=" not in value.lower():
                # Never echo it: a malformed connection string may still hold the key.
                raise ConnectionSettingError(f"{candidate}: is not a Service Bus connection string (expected "
                                             "Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...)")
            return ServiceBusConnection(setting=candidate, connection_string=value)
        namespace = get_setting(values, f"{candidate}__fullyQualifiedNamespace")
        if namespace:
            return ServiceBusConnection(
                setting=candidate, fully_qualified_namespace=namespace_fqdn(namespace),
                client_id=get_setting(values, f"{candidate}__clientId"),
                credential_kind=get_setting(values, f"{candidate}__credential"))
    raise MissingConnectionSetting(
        f"{name}: is required: a Service Bus connection string, or {name}__fullyQualifiedNamespace "
        f"(+ {name}__clientId for a user-assigned identity) for an identity-based connection")


@dataclass(frozen=True)
class LedgerConnection:
    """The ledger's storage account: a connection string, or a table endpoint reached with the app's identity."""
    table: str
    setting: str
    connection_string: str | None = field(default=None, repr=False)  # holds the account key: never printed
    endpoint: str | None = None

    @property
    def is_identity_based(self) -> bool:
        return self.connection_string is None


#: where the ledger's account comes from, first found wins: (setting, what its value is)
LEDGER_SETTINGS = (("LEDGER_TABLE_ENDPOINT", "endpoint"), ("LEDGER_CONNECTION", "connection"),
                   ("AzureWebJobsStorage", "connection"), ("AzureWebJobsStorage__tableServiceUri", "endpoint"),
                   ("AzureWebJobsStorage__accountName", "account"))


def resolve_ledger_connection(values: Mapping[str, str], table: str) -> LedgerConnection:
    """``LEDGER_TABLE_ENDPOINT`` (identity) or ``LEDGER_CONNECTION`` (a connection string), one of the two; when
    neither is set, the Functions host's own storage, ``AzureWebJobsStorage``: its connection string, or for an
    identity-based host storage its ``__tableServiceUri`` / ``__accountName``. An explicit ledger setting always
    wins over the host's storage, for the app and the ops tool alike."""
    endpoint = get_setting(values, "LEDGER_TABLE_ENDPOINT")
    connection = get_setting(values, "LEDGER_CONNECTION")
    if endpoint and connection:
        raise ConnectionSettingError("LEDGER_CONNECTION, LEDGER_TABLE_ENDPOINT: set one of them, not both "
                                     "(a connection string, or an endpoint for identity-based access)")
    for name, kind in LEDGER_SETTINGS:
        value = get_setting(values, name)
        if not value:
            continue
        if kind == "connection":
            return LedgerConnection(table, name, connection_string=_storage_connection(name, value))
        if kind == "account":
            value = f"https://{value}.table.core.windows.net"
        return LedgerConnection(table, name, endpoint=_table_endpoint(name, value))
    raise ConnectionSettingError("LEDGER_CONNECTION: is required (a storage connection string; by default the value "
                                 "of AzureWebJobsStorage), or set LEDGER_TABLE_ENDPOINT for identity-based access")


def _table_endpoint(name: str, value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ConnectionSettingError(f"{name}: must be a URL such as https://<account>.table.core.windows.net "
                                     f"(got {value!r})")
    return value.rstrip("/")


def _storage_connection(name: str, value: str) -> str:
    if value.startswith(KEYVAULT_REFERENCE):
        raise ConnectionSettingError(f"{name}: the Key Vault reference did not resolve; check that the app's "
                                     "identity may read that secret")
    if "=" not in value:
        # Never echo it: a malformed connection string may still hold the account key.
        raise ConnectionSettingError(f"{name}: is not a storage connection string "
                                     "(expected Key=Value pairs separated by ';')")
    return value
