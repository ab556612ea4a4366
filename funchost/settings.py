"""App settings: local.settings.json, the process environment, ``%NAME%`` expressions and trigger connections.

Core Tools (``func start``) copies local.settings.json ``Values`` into the process environment, skipping any name
that is already set to a non-empty value ("Skipping 'X' from local settings as it's already defined in current
environment variables."), so the environment wins. The host then reads every setting -- ``%NAME%`` in bindings,
connections -- from that environment, and the Python worker sees the same variables. This module does the same.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, MutableMapping

log = logging.getLogger("funchost.settings")

DEFAULT_SERVICE_BUS_CONNECTION = "AzureWebJobsServiceBus"


class SettingsError(ValueError):
    """A setting a function needs is missing or malformed (the host puts that function "in error")."""


def load_local_settings(path: str | Path) -> dict[str, str]:
    """``Values`` of a local.settings.json, as strings (Core Tools stringifies them the same way)."""
    data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    if data.get("IsEncrypted"):
        raise SettingsError(f"{path}: IsEncrypted is true; decrypt it with 'func settings decrypt' first")
    values = data.get("Values") or {}
    return {str(k): _as_setting(v) for k, v in values.items()}


def _as_setting(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def export_settings(values: Mapping[str, str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy settings into the environment the way Core Tools does; returns the names actually set."""
    environ = os.environ if environ is None else environ
    exported = []
    for name, value in values.items():
        if not name:
            continue
        if environ.get(name):
            log.info("Skipping '%s' from local settings as it's already defined in current environment variables.",
                     name)
            continue
        environ[name] = value
        exported.append(name)
    return exported


_EXPRESSION = re.compile(r"%([^%]+)%")


def resolve_expression(text: str | None, environ: Mapping[str, str]) -> str | None:
    """Replace each ``%NAME%`` with the setting's value (the host's name resolver does this in any binding
    property); a missing setting is an error, as in the host."""
    if text is None:
        return None

    def substitute(match: re.Match[str]) -> str:
        value = get_setting(environ, match.group(1))
        if value is None:
            raise SettingsError(f"'{match.group(0)}' does not resolve to a value.")
        return value

    return _EXPRESSION.sub(substitute, text)


def get_setting(environ: Mapping[str, str], name: str) -> str | None:
    """A setting by its configuration name. ``A:B`` and ``A__B`` are the same key to .NET configuration;
    an empty value counts as absent."""
    for candidate in (name, name.replace(":", "__"), name.replace("__", ":")):
        value = environ.get(candidate)
        if value:
            return value
    return None


@dataclass(frozen=True)
class ServiceBusConnection:
    """Either a connection string or a namespace + token credential (identity-based connection)."""
    setting: str
    connection_string: str | None = None
    fully_qualified_namespace: str | None = None
    client_id: str | None = None
    credential_kind: str | None = None  # the "<name>__credential" setting, e.g. "managedidentity"

    @property
    def is_identity_based(self) -> bool:
        return self.connection_string is None


def resolve_service_bus_connection(connection: str | None, environ: Mapping[str, str]) -> ServiceBusConnection:
    """The extension's rules: the ``connection`` property names a setting (default AzureWebJobsServiceBus), also
    looked up with the ``AzureWebJobs`` prefix. A value is a connection string; otherwise the section's
    ``fullyQualifiedNamespace`` (+ ``clientId``, ``credential``) makes it an identity-based connection."""
    name = resolve_expression(connection, environ) if connection else DEFAULT_SERVICE_BUS_CONNECTION
    candidates = [name]
    if not name.lower().startswith("azurewebjobs"):
        candidates.append(f"AzureWebJobs{name}")
    for candidate in candidates:
        value = get_setting(environ, candidate)
        if value:
            return ServiceBusConnection(setting=candidate, connection_string=value)
        namespace = get_setting(environ, f"{candidate}__fullyQualifiedNamespace")
        if namespace:
            return ServiceBusConnection(
                setting=candidate, fully_qualified_namespace=namespace,
                client_id=get_setting(environ, f"{candidate}__clientId"),
                credential_kind=get_setting(environ, f"{candidate}__credential"))
    raise SettingsError(
        f"Service Bus account connection string '{name}' does not exist. Make sure that it is a defined App "
        f"Setting (a connection string, or '{name}__fullyQualifiedNamespace' for an identity-based connection).")


def is_function_disabled(function_name: str, environ: Mapping[str, str]) -> bool:
    """The host's ``AzureWebJobs.<name>.Disabled`` app setting (dots are legal in these names)."""
    value = get_setting(environ, f"AzureWebJobs.{function_name}.Disabled")
    return (value or "").strip().lower() in ("true", "1")
