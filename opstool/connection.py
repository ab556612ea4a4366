"""Where the tool connects: the Service Bus namespace and queue, and (optionally) the app's ledger.

Settings are looked up in the environment first, then in local.settings.json's ``Values`` (the file the local
stack writes), as the Functions host does.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from devtools.settings_file import load_settings

from .errors import UsageError

DEFAULT_QUEUE = "customer-events"
DEFAULT_LEDGER_TABLE = "customerledger"
#: the SDK's default retries take minutes against a namespace that does not answer; an operator wants to know soon
RETRY_TOTAL = 2
LEDGER_TIMEOUT_SECONDS = 10.0


class Settings:
    """Environment first, then the settings file's Values."""

    def __init__(self, path: str | None = None, environ=None):
        self._environ = os.environ if environ is None else environ
        try:
            self._file = load_settings(path)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the settings file {path or 'local.settings.json'}: {exc}") from None

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._environ.get(name)
        if value:
            return value
        value = self._file.get(name)
        return value if value else default


def namespace_fqdn(name: str) -> str:
    name = name.strip().rstrip("/")
    name = re.sub(r"^(sb|amqps?|https?)://", "", name)
    if not name:
        raise UsageError("--namespace is empty")
    return name if "." in name or ":" in name else f"{name}.servicebus.windows.net"


def _endpoint_of(connection_string: str) -> str:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "endpoint":
            return re.sub(r"^sb://", "", value.strip()).rstrip("/")
    raise UsageError("the Service Bus connection string has no Endpoint=sb://...")


@dataclass
class ServiceBusTarget:
    queue: str
    namespace: str                   # host (and port) only: safe to print, unlike the connection string
    _factory: Callable[[], Any] = field(repr=False)

    def client(self) -> Any:
        return self._factory()


def resolve_target(*, connection_string: str | None, namespace: str | None, queue: str | None,
                   settings: Settings) -> ServiceBusTarget:
    from azure.servicebus import ServiceBusClient

    queue = queue or settings.get("CUSTOMER_EVENTS_QUEUE") or DEFAULT_QUEUE
    if connection_string and namespace:
        raise UsageError("give --connection-string or --namespace, not both")
    if not connection_string and not namespace:
        connection_string = settings.get("ServiceBusConnection")
        if not connection_string:
            namespace = settings.get("ServiceBusConnection__fullyQualifiedNamespace")
    if connection_string:
        host = _endpoint_of(connection_string)
        return ServiceBusTarget(queue, host, lambda: ServiceBusClient.from_connection_string(
            connection_string, retry_total=RETRY_TOTAL))
    if namespace:
        fqdn = namespace_fqdn(namespace)

        def with_identity() -> Any:
            from shared.adapters.credentials import get_credential
            return ServiceBusClient(fqdn, get_credential(settings.get("AZURE_CLIENT_ID")), retry_total=RETRY_TOTAL)

        return ServiceBusTarget(queue, fqdn, with_identity)
    raise UsageError("no Service Bus connection: pass --connection-string or --namespace, or set "
                     "ServiceBusConnection (environment or local.settings.json)")


def resolve_ledger(settings: Settings, *, disabled: bool) -> tuple[Any | None, str | None]:
    """(the ledger, or None; why there is none). Read only: the tool never writes to it."""
    if disabled:
        return None, "--no-ledger"
    table = settings.get("LEDGER_TABLE", DEFAULT_LEDGER_TABLE)
    connection = settings.get("LEDGER_CONNECTION") or settings.get("AzureWebJobsStorage")
    endpoint = settings.get("LEDGER_TABLE_ENDPOINT")
    if not connection and not endpoint:
        return None, "no ledger configured (LEDGER_CONNECTION, AzureWebJobsStorage or LEDGER_TABLE_ENDPOINT)"
    from shared.adapters.table_ledger import TableLedger

    common = dict(ca_bundle=settings.get("LOCAL_STACK_CA_BUNDLE"), timeout=LEDGER_TIMEOUT_SECONDS)
    try:
        if connection:
            return TableLedger(table, connection_string=connection, **common), None
        from shared.adapters.credentials import get_credential
        return TableLedger(table, endpoint=endpoint, credential=get_credential(settings.get("AZURE_CLIENT_ID")),
                           **common), None
    except ValueError as exc:  # a malformed connection string
        return None, f"the ledger settings are not usable ({exc})"
