"""App settings: local.settings.json, the process environment, ``%NAME%`` expressions and trigger connections.

Core Tools (``func start``) copies local.settings.json ``Values`` into the process environment, skipping any name
that is already set to a non-empty value ("Skipping 'X' from local settings as it's already defined in current
environment variables."), so the environment wins. The host then reads every setting -- ``%NAME%`` in bindings,
connections -- from that environment, and the Python worker sees the same variables. This module does the same;
the rules for local.settings.json and for connection settings are the app's own (``shared.settings``), so the
local host, the app and its tools cannot read a setting differently.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Mapping, MutableMapping

from shared.settings import ConnectionSettingError, LocalSettingsError, ServiceBusConnection, get_setting, \
    read_local_settings
from shared.settings import resolve_service_bus_connection as resolve_connection
from shared.settings.connections import DEFAULT_SERVICE_BUS_CONNECTION, MissingConnectionSetting

log = logging.getLogger("funchost.settings")


class SettingsError(ValueError):
    """A setting a function needs is missing or malformed (the host puts that function "in error")."""


def load_local_settings(path: str | Path) -> dict[str, str]:
    """``Values`` of a local.settings.json, read by the same code as the app's tools read it."""
    try:
        return read_local_settings(path)
    except LocalSettingsError as exc:
        raise SettingsError(str(exc)) from None


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


def resolve_service_bus_connection(connection: str | None, environ: Mapping[str, str]) -> ServiceBusConnection:
    """The extension's rules (shared with the app and its tools); ``connection`` may be a ``%NAME%`` expression."""
    name = resolve_expression(connection, environ) if connection else None
    try:
        return resolve_connection(name, environ)
    except MissingConnectionSetting:
        name = name or DEFAULT_SERVICE_BUS_CONNECTION
        raise SettingsError(
            f"Service Bus account connection string '{name}' does not exist. Make sure that it is a defined App "
            f"Setting (a connection string, or '{name}__fullyQualifiedNamespace' for an identity-based "
            "connection).") from None
    except ConnectionSettingError as exc:
        raise SettingsError(f"Service Bus connection '{name or DEFAULT_SERVICE_BUS_CONNECTION}': {exc}") from None


def is_function_disabled(function_name: str, environ: Mapping[str, str]) -> bool:
    """The host's ``AzureWebJobs.<name>.Disabled`` app setting (dots are legal in these names)."""
    value = get_setting(environ, f"AzureWebJobs.{function_name}.Disabled")
    return (value or "").strip().lower() in ("true", "1")
