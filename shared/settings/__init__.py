"""The app's settings: one typed object, one set of rules, one place that reads the environment.

- :mod:`.sources`: the environment and local.settings.json (the only module that touches ``os.environ``);
- :mod:`.connections`: how the Service Bus and ledger connection settings resolve (the Functions host's rules);
- :mod:`.rules`: what each value must look like;
- :mod:`.model`: :class:`AppSettings` and the sections the tools share.
"""
from .connections import (SERVICE_BUS_CONNECTION, ConnectionSettingError, LedgerConnection, ServiceBusConnection,
                          get_setting, namespace_fqdn, resolve_ledger_connection, resolve_service_bus_connection)
from .model import (AppSettings, LedgerSettings, ServiceBusSettings, SettingInfo, SettingsError, app_setting_names,
                    describe_settings)
from .sources import APP_ROOT, LocalSettingsError, process_environment, read_local_settings, tool_values

__all__ = ["APP_ROOT", "AppSettings", "ConnectionSettingError", "LedgerConnection", "LedgerSettings",
           "LocalSettingsError", "SERVICE_BUS_CONNECTION", "ServiceBusConnection", "ServiceBusSettings",
           "SettingInfo", "SettingsError", "app_setting_names", "describe_settings", "get_setting", "namespace_fqdn",
           "process_environment", "read_local_settings", "resolve_ledger_connection",
           "resolve_service_bus_connection", "tool_values"]
