"""Where the tool connects: the Service Bus namespace and queue, and (optionally) the app's ledger.

Settings come from the environment first, then local.settings.json's ``Values`` (the file the local stack writes),
as the Functions host reads them; the queue, the Service Bus connection and the ledger are resolved by the app's
own settings code (``shared.settings``), so the tool always looks at the queue and ledger the app uses, including
the identity-based forms (``ServiceBusConnection__fullyQualifiedNamespace``, ``LEDGER_TABLE_ENDPOINT``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from shared.settings import (ConnectionSettingError, LedgerSettings, LocalSettingsError, ServiceBusSettings,
                             SettingsError, namespace_fqdn, tool_values)

from .errors import UsageError

#: the SDK's default retries take minutes against a namespace that does not answer; an operator wants to know soon
RETRY_TOTAL = 2
LEDGER_TIMEOUT_SECONDS = 10.0


def load_values(path: str | None = None) -> dict[str, str]:
    """The settings the app would see: the environment over local.settings.json's Values."""
    try:
        return tool_values(path)
    except (OSError, LocalSettingsError) as exc:
        raise UsageError(f"cannot read the settings file {path or 'local.settings.json'}: {exc}") from None


def local_stack_hint(path: str | None) -> str:
    """On a checkout that runs the local stack, why its settings file is missing and what writes it again; ""
    elsewhere (production has no local stack: the settings come from the environment)."""
    try:
        from emulators.appsettings import missing_settings_hint
    except ImportError:
        return ""
    return missing_settings_hint(path)


@dataclass
class ServiceBusTarget:
    queue: str
    namespace: str                   # host (and port) only: safe to print, unlike the connection string
    _factory: Callable[[], Any] = field(repr=False)

    def client(self) -> Any:
        return self._factory()


def resolve_target(*, connection_string: str | None, namespace: str | None, queue: str | None,
                   values: Mapping[str, str]) -> ServiceBusTarget:
    """The app's queue and namespace; ``--connection-string``/``--namespace``/``--queue`` override the settings."""
    from shared.adapters.servicebus_client import service_bus_client

    if connection_string and namespace:
        raise UsageError("give --connection-string or --namespace, not both")
    values = dict(values)
    if connection_string or namespace:
        for key in ("ServiceBusConnection", "ServiceBusConnection__fullyQualifiedNamespace"):
            values.pop(key, None)
        if connection_string:
            values["ServiceBusConnection"] = connection_string
        else:
            try:
                values["ServiceBusConnection__fullyQualifiedNamespace"] = namespace_fqdn(namespace)
            except ConnectionSettingError as exc:
                raise UsageError(f"--namespace: {exc}") from None
    if queue:
        values["CUSTOMER_EVENTS_QUEUE"] = queue
    try:
        settings = ServiceBusSettings.load(values)
    except SettingsError as exc:
        raise UsageError("no Service Bus connection: pass --connection-string or --namespace, or fix the "
                         "settings (environment or local.settings.json):\n" + "\n".join(f"  - {p}" for p in
                                                                                       exc.problems)) from None
    connection = settings.service_bus
    client_id = values.get("AZURE_CLIENT_ID") or None
    return ServiceBusTarget(settings.customer_events_queue, connection.namespace,
                            lambda: service_bus_client(connection, default_client_id=client_id,
                                                       retry_total=RETRY_TOTAL))


def resolve_ledger(values: Mapping[str, str], *, disabled: bool) -> tuple[Any | None, str | None]:
    """(the ledger, or None; why there is none). Read only: the tool never writes to it."""
    if disabled:
        return None, "--no-ledger"
    try:
        settings = LedgerSettings.load({**values, "AZURE_TIMEOUT_SECONDS": str(LEDGER_TIMEOUT_SECONDS)})
    except SettingsError as exc:
        return None, "the ledger settings are not usable (" + "; ".join(exc.problems) + ")"
    from shared.adapters.credentials import get_credential
    from shared.adapters.table_ledger import TableLedger

    credential = None if settings.ledger.connection_string else get_credential(settings.azure_client_id)
    try:
        return TableLedger.from_settings(settings, credential), None
    except ValueError as exc:  # a malformed connection string
        return None, f"the ledger settings are not usable ({exc})"
