"""The app's settings, read once from the environment (App Service application settings, or local.settings.json).

``Settings.from_env()`` checks every setting and raises one :class:`SettingsError` that lists *all* the problems,
each naming the setting and saying what is expected, so a misconfigured deployment is fixed in one pass.

Settings (name, default, meaning):

``AUTH0_DOMAIN`` (required)
    The Auth0 tenant's domain, e.g. ``contoso.eu.auth0.com`` (no ``https://``). Locally ``127.0.0.1:<port>``.
``AUTH0_CLIENT_ID``, ``AUTH0_CLIENT_SECRET`` (required)
    The machine-to-machine application this app uses to call the Auth0 Management API (scopes: read/create/delete
    clients, read:client_keys, read/create/delete client_grants). In Azure both are Key Vault references,
    ``@Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/<name>/)``, which App Service resolves
    before the app starts; a value still starting with ``@Microsoft.KeyVault(`` means the reference did not resolve
    (the app's identity cannot read the vault) and is reported as such.
``AUTH0_AUDIENCE`` (default ``https://{AUTH0_DOMAIN}/api/v2/``)
    Audience of the Management API token. Set it only for a custom domain setup.
``AUTH0_TIMEOUT_SECONDS`` (default 10)
    Timeout of each Auth0 HTTP call.
``AUTH0_RATE_LIMIT``, ``AUTH0_RATE_LIMIT_BURST`` (default: not set, no pacing; burst default: the rate, rounded up)
    Requests per second and bucket size this process allows itself on the Auth0 Management API. Set them to the
    tenant's published Management API limit (e.g. 16 and 50 for an enterprise production tenant), divided by the
    number of instances that run the app: calls then wait for their turn instead of meeting 429s, each of which
    costs the event a scheduled retry. Nothing else should use most of the tenant's limit at the same time.
``API_AUDIENCE`` (required)
    Identifier of the API the customers' applications are granted (used by the client profiles as ``${API_AUDIENCE}``).
``CLIENT_PROFILES_PATH`` (default ``config/client_profiles.toml``)
    The client profiles file; a relative path is relative to the app root (the folder of ``function_app.py``).
``EVENT_TYPE_PREFIX`` (default empty)
    Prefix of the CloudEvents types, e.g. ``com.contoso.`` for ``com.contoso.customer.created``.
``KEYVAULT_URL`` (required)
    The vault that stores the customers' client secrets, ``https://<vault>.vault.azure.net/``.
``KEYVAULT_PURGE_DELETED`` (default false)
    When a secret name is deleted-but-recoverable: purge it (true) or recover it (false) before setting it again;
    removals also purge after deleting when true. Needs the purge permission and a vault without purge protection.
``APIM_SUBSCRIPTION_ID``, ``APIM_RESOURCE_GROUP``, ``APIM_SERVICE_NAME`` (required)
    The API Management instance: Azure subscription id (a GUID), resource group and service name.
``APIM_MANAGEMENT_ENDPOINT`` (default ``https://management.azure.com``)
    The Azure Resource Manager endpoint (another cloud, or the local stand-in).
``APIM_CLIENT_REGISTRATION_ENDPOINT`` (default empty: the service layer's default)
    The ``clientRegistrationEndpoint`` written into each APIM authorization server (a page for developers).
``LEDGER_CONNECTION`` (default: the value of ``AzureWebJobsStorage``)
    Storage connection string of the ledger's account. Or, for identity-based access instead:
``LEDGER_TABLE_ENDPOINT``
    ``https://<account>.table.core.windows.net``; the app's identity needs Storage Table Data Contributor.
    Set one of the two, not both.
``LEDGER_TABLE`` (default ``customerledger``)
    The ledger table; created at first use if missing.
``AZURE_CLIENT_ID`` (optional)
    Client id of a user-assigned managed identity; unset: the system-assigned identity.
``AZURE_TIMEOUT_SECONDS`` (default 30)
    Read timeout of each Key Vault, API Management and Table Storage call (connections time out after 5 s).
``LOCAL_STACK_CA_BUNDLE`` (optional; never set in Azure)
    Path to the local stack's CA certificate. When set, every HTTPS client of the app trusts it (Key Vault and API
    Management through ``connection_verify``, Auth0 through httpx ``verify``) and Key Vault's challenge may come
    from a host that is not ``*.vault.azure.net``.
``CLAIM_TTL_SECONDS`` (default 300)
    How long a worker's claim on a customer lasts before another worker may take over.
"""
from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

#: the folder that holds function_app.py: relative paths in the settings are relative to it
APP_ROOT = Path(__file__).resolve().parents[2]

_KEYVAULT_REFERENCE = "@Microsoft.KeyVault("
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:\d{1,5})?$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{1,90}$")
_APIM_SERVICE = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,48}[a-zA-Z0-9]$|^[a-zA-Z]$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """Every problem found, one per line, each starting with the setting's name."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid app settings:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Settings:
    auth0_domain: str
    auth0_client_id: str
    auth0_client_secret: str = field(repr=False)
    auth0_audience: str
    api_audience: str
    keyvault_url: str
    apim_subscription_id: str
    apim_resource_group: str
    apim_service_name: str
    # A connection string holds the account key: never printed.
    ledger_connection: str | None = field(default=None, repr=False)
    ledger_table_endpoint: str | None = None
    ledger_table: str = "customerledger"
    auth0_timeout_seconds: float = 10.0
    auth0_rate_limit: float = 0.0  # requests per second; 0: not paced
    auth0_rate_limit_burst: int = 0  # 0: the rate, rounded up
    client_profiles_path: Path = APP_ROOT / "config" / "client_profiles.toml"
    event_type_prefix: str = ""
    keyvault_purge_deleted: bool = False
    apim_management_endpoint: str = "https://management.azure.com"
    apim_client_registration_endpoint: str = ""
    azure_client_id: str | None = None
    azure_timeout_seconds: float = 30.0
    local_stack_ca_bundle: str | None = None
    claim_ttl_seconds: float = 300.0
    #: the environment the settings were read from, for ${NAME} in the client profiles (holds secrets: not printed)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        reader = _Reader(env)
        domain = reader.host("AUTH0_DOMAIN")
        values = dict(
            auth0_domain=domain,
            auth0_client_id=reader.required("AUTH0_CLIENT_ID"),
            auth0_client_secret=reader.required("AUTH0_CLIENT_SECRET", secret=True),
            auth0_audience=reader.url("AUTH0_AUDIENCE", default=f"https://{domain}/api/v2/" if domain else ""),
            auth0_timeout_seconds=reader.number("AUTH0_TIMEOUT_SECONDS", 10.0, minimum=1, maximum=120),
            auth0_rate_limit=reader.number("AUTH0_RATE_LIMIT", 0.0, minimum=0.1, maximum=1000,
                                           unit="requests per second"),
            auth0_rate_limit_burst=int(reader.number("AUTH0_RATE_LIMIT_BURST", 0, minimum=1, maximum=10000,
                                                     unit="requests", whole=True)),
            api_audience=reader.url("API_AUDIENCE", required=True, schemes=("https://", "http://")),
            client_profiles_path=reader.path("CLIENT_PROFILES_PATH", "config/client_profiles.toml"),
            event_type_prefix=reader.optional("EVENT_TYPE_PREFIX") or "",
            keyvault_url=reader.url("KEYVAULT_URL", required=True),
            keyvault_purge_deleted=reader.boolean("KEYVAULT_PURGE_DELETED", False),
            apim_subscription_id=reader.guid("APIM_SUBSCRIPTION_ID"),
            apim_resource_group=reader.pattern("APIM_RESOURCE_GROUP", _RESOURCE_GROUP,
                                               "1-90 letters, digits, '-', '_', '.', '(' or ')'"),
            apim_service_name=reader.pattern("APIM_SERVICE_NAME", _APIM_SERVICE,
                                             "1-50 letters, digits and '-', starting with a letter"),
            apim_management_endpoint=reader.url("APIM_MANAGEMENT_ENDPOINT",
                                                default="https://management.azure.com").rstrip("/"),
            apim_client_registration_endpoint=reader.url("APIM_CLIENT_REGISTRATION_ENDPOINT", default="",
                                                         schemes=("https://", "http://")),
            ledger_table=reader.pattern("LEDGER_TABLE", _TABLE_NAME,
                                        "3-63 letters and digits, starting with a letter", default="customerledger"),
            azure_client_id=reader.optional("AZURE_CLIENT_ID"),
            azure_timeout_seconds=reader.number("AZURE_TIMEOUT_SECONDS", 30.0, minimum=1, maximum=300),
            local_stack_ca_bundle=reader.file("LOCAL_STACK_CA_BUNDLE"),
            claim_ttl_seconds=reader.number("CLAIM_TTL_SECONDS", 300.0, minimum=10, maximum=3600),
        )
        values["ledger_connection"], values["ledger_table_endpoint"] = reader.ledger()
        if env.get("EVENT_TYPE_PREFIX", "").strip() != env.get("EVENT_TYPE_PREFIX", ""):
            reader.problems.append("EVENT_TYPE_PREFIX: must not start or end with white space")
        if reader.problems:
            raise SettingsError(reader.problems)
        return cls(**values, environ=env)


class _Reader:
    def __init__(self, env: dict[str, str]):
        self.env = env
        self.problems: list[str] = []

    def optional(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def required(self, name: str, secret: bool = False) -> str:
        value = self.optional(name)
        if value is None:
            self.problems.append(f"{name}: is required but not set")
            return ""
        if value.startswith(_KEYVAULT_REFERENCE):
            self.problems.append(f"{name}: the Key Vault reference did not resolve; check that the app's identity "
                                 "may read that secret (Key Vault Secrets User) and that the SecretUri is right")
            return ""
        if not secret and any(c.isspace() for c in value):
            self.problems.append(f"{name}: must not contain white space")
        return value

    def host(self, name: str) -> str:
        value = self.required(name)
        if not value:
            return ""
        if "://" in value or "/" in value:
            self.problems.append(f"{name}: must be a host name such as contoso.eu.auth0.com, without https:// or "
                                 f"a path (got {value!r})")
            return ""
        if not _HOST.match(value):
            self.problems.append(f"{name}: {value!r} is not a host name (optionally with :port)")
            return ""
        return value

    def url(self, name: str, *, required: bool = False, default: str | None = None,
            schemes: tuple[str, ...] = ("https://",)) -> str:
        value = self.required(name) if required else self.optional(name)
        if value is None:
            return default or ""
        if not value:
            return ""
        if not value.startswith(schemes) or len(value) <= len(value.split("://")[0]) + 3:
            self.problems.append(f"{name}: must be a URL starting with {' or '.join(schemes)} (got {value!r})")
        return value

    def pattern(self, name: str, rx: re.Pattern, rule: str, default: str | None = None) -> str:
        value = self.optional(name) if default is not None else self.required(name)
        if value is None:
            return default or ""
        if value and not rx.match(value):
            self.problems.append(f"{name}: must be {rule} (got {value!r})")
        return value

    def guid(self, name: str) -> str:
        value = self.required(name)
        if value:
            try:
                uuid.UUID(value)
            except ValueError:
                self.problems.append(f"{name}: must be an Azure subscription id, a GUID such as "
                                     f"00000000-0000-0000-0000-000000000000 (got {value!r})")
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float, unit: str = "seconds",
               whole: bool = False) -> float:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.problems.append(f"{name}: must be a number of {unit} (got {value!r})")
            return default
        if whole and not number.is_integer():
            self.problems.append(f"{name}: must be a whole number of {unit} (got {value})")
            return default
        if not minimum <= number <= maximum:
            self.problems.append(f"{name}: must be between {minimum:g} and {maximum:g} {unit} (got {value})")
            return default if whole else number
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.env.get(name)
        if value is None:
            return default
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False if text else default
        self.problems.append(f"{name}: must be true or false (got {value!r})")
        return default

    def path(self, name: str, default: str) -> Path:
        value = self.optional(name) or default
        path = Path(value)
        if not path.is_absolute():
            path = APP_ROOT / path
        if not path.is_file():
            self.problems.append(f"{name}: no file at {path}")
        return path

    def file(self, name: str) -> str | None:
        value = self.optional(name)
        if value is not None and not Path(value).is_file():
            self.problems.append(f"{name}: no file at {value}")
        return value

    def ledger(self) -> tuple[str | None, str | None]:
        connection = self.optional("LEDGER_CONNECTION")
        endpoint = self.optional("LEDGER_TABLE_ENDPOINT")
        if connection and endpoint:
            self.problems.append("LEDGER_CONNECTION, LEDGER_TABLE_ENDPOINT: set one of them, not both "
                                 "(a connection string, or an endpoint for identity-based access)")
            return None, None
        if endpoint:
            if not endpoint.startswith(("https://", "http://")):
                self.problems.append(f"LEDGER_TABLE_ENDPOINT: must be a URL such as "
                                     f"https://<account>.table.core.windows.net (got {endpoint!r})")
            return None, endpoint.rstrip("/")
        if connection is None:
            connection = self.optional("AzureWebJobsStorage")
        if connection is None:
            self.problems.append("LEDGER_CONNECTION: is required (a storage connection string; by default the "
                                 "value of AzureWebJobsStorage), or set LEDGER_TABLE_ENDPOINT for identity-based "
                                 "access")
            return None, None
        if connection.startswith(_KEYVAULT_REFERENCE):
            self.problems.append("LEDGER_CONNECTION: the Key Vault reference did not resolve; check that the app's "
                                 "identity may read that secret")
            return None, None
        if "=" not in connection:
            # Never echo it: a malformed connection string may still hold the account key.
            self.problems.append("LEDGER_CONNECTION: is not a storage connection string "
                                 "(expected Key=Value pairs separated by ';')")
        return connection, None
