"""The app's settings as one typed object, validated all at once (pydantic), in sections that the tools share.

``AppSettings.load(values)`` checks every setting and raises one :class:`SettingsError` that lists *all* the
problems, each starting with the setting's name, so a misconfigured deployment is fixed in one pass. The function
app loads it while the host indexes the functions: with a problem, no function is indexed and nothing is consumed.
The ops tool and the developer tools load the sections they need (:class:`ServiceBusSettings`,
:class:`LedgerSettings`) with the same fields and rules, so they resolve the same queue and ledger as the app.
Each field's description is the reference for that setting (``python -m shared.settings`` prints them).
"""
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterator, Mapping

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from ..domain.retry_policy import RetryPolicy
from .connections import (KEYVAULT_REFERENCE, SERVICE_BUS_CONNECTION, ConnectionSettingError, LedgerConnection,
                          ServiceBusConnection, resolve_ledger_connection, resolve_service_bus_connection)
from .rules import AppFile, Boolean, File, Guid, Host, Number, Pattern, Prefix, Schedule, Text, Url
from .sources import APP_ROOT

#: set by the platform, never by a deployment
PLATFORM = {"scope": "platform"}
#: only ever set on a developer's machine
LOCAL = {"scope": "local"}
#: one of several ways to give a connection; the template sets the identity-based one
ALTERNATIVE = {"scope": "alternative"}
SECRET = {"secret": True}
#: how far two instances' clocks may disagree: a claim is another worker's until its expiry plus this
CLOCK_SKEW_SECONDS = 2.0


QueueName = Pattern(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,259}$",
                    "a queue name: 1-260 letters, digits, '.', '_', '-' or '/'")
TableName = Pattern(r"^[A-Za-z][A-Za-z0-9]{2,62}$", "3-63 letters and digits, starting with a letter")
RateLimit = Number(0.1, 1000, "requests per second")
Burst = Number(1, 10000, "requests", whole=True)
HttpUrl = Url("https://", "http://")
ResourceGroup = Pattern(r"^[-\w._()]{1,90}$", "1-90 letters, digits, '-', '_', '.', '(' or ')'")
ApimServiceName = Pattern(r"^[a-zA-Z][a-zA-Z0-9-]{0,48}[a-zA-Z0-9]$|^[a-zA-Z]$",
                          "1-50 letters, digits and '-', starting with a letter")
Attempts = Number(0, 1000, "attempts", whole=True)
BaseUrl = Url("https://", base=True)
TelemetryExporter = Pattern(r"^(auto|azure-monitor|otlp|console|none)$", "auto, azure-monitor, otlp, console or none")


class SettingsError(ValueError):
    """Every problem found, one per line, each starting with the setting's name."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid app settings:\n" + "\n".join(f"  - {p}" for p in problems))


class SettingsModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)
    #: checks that span several settings: functions of the raw values that return (setting, problem) pairs
    cross_checks: ClassVar[tuple[Callable[[Mapping[str, str]], Iterator[tuple[str, str]]], ...]] = ()
    _values: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def load(cls, values: Mapping[str, str]) -> "SettingsModel":
        """The settings in ``values`` (the environment, or local.settings.json Values under it)."""
        problems: dict[str, str] = {}
        raw: dict[str, str] = {}
        for info in cls.model_fields.values():
            name = info.alias
            value = values.get(name)
            if value is None or not str(value).strip():
                continue  # App Service shows an unset setting as an empty one
            if str(value).startswith(KEYVAULT_REFERENCE):
                problems[name] = ("the Key Vault reference did not resolve; check that the app's identity may read "
                                  "that secret (Key Vault Secrets User) and that the SecretUri is right")
                continue
            raw[name] = str(value)
        model = None
        try:
            model = cls.model_validate(raw)
        except ValidationError as exc:
            for error in exc.errors(include_input=False, include_url=False):
                name = str(error["loc"][0]) if error["loc"] else "settings"
                problems.setdefault(name, _message(error))
        checks = {check for klass in cls.__mro__ for check in vars(klass).get("cross_checks", ())}
        for check in sorted(checks, key=lambda c: c.__name__):
            for name, problem in check(values):
                problems.setdefault(name, problem)
        if model is not None:
            for name, problem in model.after_checks():
                problems.setdefault(name, problem)
        if problems or model is None:
            raise SettingsError([f"{name}: {text}" for name, text in problems.items()])
        model._values = dict(values)
        return model

    def after_checks(self) -> Iterator[tuple[str, str]]:
        """Rules between settings that are only meaningful once each is valid on its own."""
        return iter(())

    @property
    def values(self) -> Mapping[str, str]:
        """The values the settings were read from (for ``${NAME}`` in the client profiles; holds secrets)."""
        return self._values


def _message(error: dict) -> str:
    if error["type"] == "missing":
        return "is required but not set"
    return str(error["msg"]).removeprefix("Value error, ")


def _service_bus_check(values: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    try:
        resolve_service_bus_connection(SERVICE_BUS_CONNECTION, values)
    except ConnectionSettingError as exc:
        name, _, text = str(exc).partition(": ")
        yield name, text


def _ledger_check(values: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    try:
        resolve_ledger_connection(values, "any")
    except ConnectionSettingError as exc:
        name, _, text = str(exc).partition(": ")
        yield name, text


class ServiceBusSettings(SettingsModel):
    """Where the events come from: what the trigger, the retry scheduler, the ops tool and devtools share."""
    cross_checks = (_service_bus_check,)

    service_bus_connection_string: str | None = Field(
        None, alias="ServiceBusConnection", repr=False, json_schema_extra={**ALTERNATIVE, **SECRET},
        description="The trigger's connection string (local stack, emulator). In Azure use the identity-based form.")
    service_bus_namespace: str | None = Field(
        None, alias="ServiceBusConnection__fullyQualifiedNamespace",
        description="Identity-based trigger connection: <namespace>.servicebus.windows.net.")
    service_bus_client_id: str | None = Field(
        None, alias="ServiceBusConnection__clientId",
        description="Client id of the user-assigned identity for the Service Bus connection (default: "
                    "AZURE_CLIENT_ID, else the system-assigned identity).")
    service_bus_credential: str | None = Field(
        None, alias="ServiceBusConnection__credential", json_schema_extra=ALTERNATIVE,
        description="'managedidentity' to force a managed identity credential for the connection.")
    customer_events_queue: QueueName = Field(
        "customer-events", alias="CUSTOMER_EVENTS_QUEUE", description="The queue of customer events.")
    customer_events_sessions: Boolean = Field(
        False, alias="CUSTOMER_EVENTS_SESSIONS",
        description="true: the trigger is session-enabled (the queue must have RequiresSession; per-customer order "
                    "by SessionId). Read when the functions are indexed.")
    event_type_prefix: Prefix = Field(
        "", alias="EVENT_TYPE_PREFIX", description="Prefix of the CloudEvents types, e.g. com.contoso.")
    result_events_topic: QueueName = Field(
        "customer-lifecycle", alias="RESULT_EVENTS_TOPIC",
        description="The topic the result events for the CRM are published on (customer.provisioned, "
                    "customer.updated, customer.deprovisioned, customer.provisioning-failed, "
                    "customer.drift-detected); it needs duplicate detection.")

    @property
    def service_bus(self) -> ServiceBusConnection:
        return resolve_service_bus_connection(SERVICE_BUS_CONNECTION, self.values)


class LedgerSettings(SettingsModel):
    """The ledger (Azure Table Storage) and how Azure clients reach it: the app and the ops tool share these."""
    cross_checks = (_ledger_check,)

    ledger_connection: str | None = Field(
        None, alias="LEDGER_CONNECTION", repr=False, json_schema_extra={**ALTERNATIVE, **SECRET},
        description="Storage connection string of the ledger's account (default: AzureWebJobsStorage).")
    ledger_table_endpoint: str | None = Field(
        None, alias="LEDGER_TABLE_ENDPOINT",
        description="https://<account>.table.core.windows.net for identity-based access (Storage Table Data "
                    "Contributor). Set this or LEDGER_CONNECTION, not both; either wins over AzureWebJobsStorage.")
    ledger_table: TableName = Field(
        "customerledger", alias="LEDGER_TABLE", description="The ledger table; created at first write if missing.")
    host_storage: str | None = Field(
        None, alias="AzureWebJobsStorage", repr=False, json_schema_extra={**ALTERNATIVE, **SECRET},
        description="The Functions host's storage; the ledger's too unless a LEDGER_ setting says otherwise.")
    azure_client_id: str | None = Field(
        None, alias="AZURE_CLIENT_ID",
        description="Client id of a user-assigned managed identity; unset: the system-assigned identity.")
    azure_timeout_seconds: Number(1, 300) = Field(
        30.0, alias="AZURE_TIMEOUT_SECONDS",
        description="Read timeout of each Key Vault, API Management and Table Storage call (connect: 5 s).")
    local_stack_ca_bundle: File | None = Field(
        None, alias="LOCAL_STACK_CA_BUNDLE", json_schema_extra=LOCAL,
        description="Local only: the local stack's CA certificate, trusted by every HTTPS client of the app.")

    @property
    def ledger(self) -> LedgerConnection:
        return resolve_ledger_connection(self.values, self.ledger_table)


class AppSettings(ServiceBusSettings, LedgerSettings):
    """Everything the function app reads."""

    auth0_domain: Host = Field(
        alias="AUTH0_DOMAIN", description="The Auth0 tenant's domain, e.g. contoso.eu.auth0.com (no https://).")
    auth0_client_id: Text() = Field(
        alias="AUTH0_CLIENT_ID", description="The Management API client (a Key Vault reference in Azure).")
    auth0_client_secret: Text(secret=True) = Field(
        alias="AUTH0_CLIENT_SECRET", repr=False, json_schema_extra=SECRET,
        description="Its secret: always a Key Vault reference in Azure.")
    auth0_audience: Url() = Field(
        "", alias="AUTH0_AUDIENCE", description="Management API audience (default https://{AUTH0_DOMAIN}/api/v2/).")
    auth0_timeout_seconds: Number(1, 120) = Field(
        10.0, alias="AUTH0_TIMEOUT_SECONDS", description="Timeout of each Auth0 HTTP call.")
    pacing_max_wait_seconds: Number(0, 300) = Field(
        30.0, alias="PACING_MAX_WAIT_SECONDS",
        description="Longest a call waits for its turn under a rate limit (Auth0's; ARM's split over an Azure "
                    "call's attempts); a longer wait goes back to the message pipeline as a scheduled retry. Bounds "
                    "every call, so CLAIM_TTL_SECONDS depends on it.")
    auth0_rate_limit: RateLimit = Field(
        0.0, alias="AUTH0_RATE_LIMIT",
        description="Optional cap on this instance's Auth0 Management API calls per second (0: no static cap).")
    auth0_rate_limit_burst: Burst = Field(
        0, alias="AUTH0_RATE_LIMIT_BURST", description="Bucket size of that cap (default: the rate, rounded up).")
    rate_limit_header_pacing: Boolean = Field(
        True, alias="RATE_LIMIT_HEADER_PACING",
        description="Pace Auth0 and ARM calls on the services' rate-limit headers, which every instance sees, so "
                    "that any number of instances share the tenant's and the principal's limits (true/false).")
    api_audience: HttpUrl = Field(
        alias="API_AUDIENCE", description="The API the customers' applications are granted (${API_AUDIENCE}).")
    client_profiles_path: AppFile = Field(
        APP_ROOT / "config" / "client_profiles.toml", alias="CLIENT_PROFILES_PATH",
        description="The client profiles file, relative to the app root.")
    keyvault_url: Url() = Field(
        alias="KEYVAULT_URL",
        description="The vault of the customers' client secrets, https://<vault>.vault.azure.net/.")
    keyvault_purge_deleted: Boolean = Field(
        False, alias="KEYVAULT_PURGE_DELETED",
        description="Purge (true) instead of recover (false) a soft-deleted secret name; removals purge too.")
    apim_subscription_id: Guid = Field(alias="APIM_SUBSCRIPTION_ID", description="The APIM instance's subscription.")
    apim_resource_group: ResourceGroup = Field(
        alias="APIM_RESOURCE_GROUP", description="The APIM instance's resource group.")
    apim_service_name: ApimServiceName = Field(
        alias="APIM_SERVICE_NAME", description="The APIM instance's name.")
    apim_management_endpoint: BaseUrl = Field(
        "https://management.azure.com", alias="APIM_MANAGEMENT_ENDPOINT",
        description="Azure Resource Manager endpoint (another cloud, or the local stand-in).")
    apim_client_registration_endpoint: HttpUrl = Field(
        "", alias="APIM_CLIENT_REGISTRATION_ENDPOINT",
        description="clientRegistrationEndpoint of each authorization server (default https://{AUTH0_DOMAIN}/).")
    claim_ttl_seconds: Number(10, 3600) = Field(
        300.0, alias="CLAIM_TTL_SECONDS", description="How long a worker's claim on a customer lasts.")
    retry_max_attempts: Attempts = Field(
        8, alias="RETRY_MAX_ATTEMPTS", description="Scheduled retries of a transiently failed event.")
    retry_max_total_seconds: Number(1, 7 * 86400) = Field(
        3600.0, alias="RETRY_MAX_TOTAL_SECONDS", description="From the first attempt to the last scheduled one.")
    retry_base_seconds: Number(0.01, 3600) = Field(
        2.0, alias="RETRY_BASE_SECONDS", description="First backoff delay, doubling per attempt.")
    retry_max_delay_seconds: Number(0.01, 86400) = Field(
        300.0, alias="RETRY_MAX_DELAY_SECONDS", description="Longest backoff delay.")
    telemetry_exporter: TelemetryExporter = Field(
        "auto", alias="TELEMETRY_EXPORTER",
        description="Where traces and metrics go: azure-monitor (Application Insights, needs "
                    "APPLICATIONINSIGHTS_CONNECTION_STRING), otlp (an OpenTelemetry collector over OTLP/HTTP, needs "
                    "OTEL_EXPORTER_OTLP_ENDPOINT), console (stdout), none; auto: azure-monitor when the "
                    "connection string is set, else none.")
    otlp_endpoint: Text() | None = Field(
        None, alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="With TELEMETRY_EXPORTER=otlp: the collector's base URL (OTLP/HTTP, protobuf); traces go to "
                    "/v1/traces and metrics to /v1/metrics under it. OTEL_METRIC_EXPORT_INTERVAL (ms, read by the "
                    "OpenTelemetry SDK) sets how often metrics are sent.")
    applicationinsights_connection_string: Text(secret=True) | None = Field(
        None, alias="APPLICATIONINSIGHTS_CONNECTION_STRING", repr=False, json_schema_extra=SECRET,
        description="The Application Insights resource that telemetry goes to (with "
                    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING, read by the exporter, for Microsoft Entra ID).")
    drift_schedule: Schedule = Field(
        "0 0 * * * *", alias="DRIFT_SCHEDULE",
        description="When the drift reconciliation runs (NCRONTAB, the timer trigger's; default hourly). Each run "
                    "reads every Auth0 application and grant, the vault's secret list and APIM's entries.")
    drift_repair: Boolean = Field(
        False, alias="DRIFT_REPAIR",
        description="false: the reconciliation only reports (a log line and a customer.drift-detected event per "
                    "finding); true: it also repairs, "
                    "through the same use cases as the events.")
    warm_up: Boolean = Field(
        True, alias="WARM_UP",
        description="true (default): as the app starts, build its clients and have each make its first "
                    "connection and fetch its token in the background, while the host connects its triggers, so "
                    "that the first event waits for none of it; false: the first event does it.")
    website_instance_id: str | None = Field(
        None, alias="WEBSITE_INSTANCE_ID", json_schema_extra=PLATFORM,
        description="Set by App Service: names this instance in the ledger's claims.")

    @property
    def longest_call_seconds(self) -> float:
        """The longest one external call can take: its wait for a turn under a rate limit, plus Auth0's timeout or
        an Azure call with its two quick in-call retries (azure_errors.py) and their backoff."""
        return self.pacing_max_wait_seconds + max(self.auth0_timeout_seconds, 3 * self.azure_timeout_seconds + 2)

    @property
    def fence_guard_seconds(self) -> float:
        """A worker writes outside the ledger only while its claim has this much left (else it renews first)."""
        return self.longest_call_seconds + CLOCK_SKEW_SECONDS

    @property
    def telemetry_destination(self) -> str:
        """Where telemetry goes: azure-monitor, console or none (``auto`` resolved)."""
        if self.telemetry_exporter == "auto":
            return "azure-monitor" if self.applicationinsights_connection_string else "none"
        return self.telemetry_exporter

    def after_checks(self) -> Iterator[tuple[str, str]]:
        if self.telemetry_exporter == "azure-monitor" and not self.applicationinsights_connection_string:
            yield "TELEMETRY_EXPORTER", "is azure-monitor, but APPLICATIONINSIGHTS_CONNECTION_STRING is not set"
        if self.telemetry_exporter == "otlp" and not self.otlp_endpoint:
            yield "TELEMETRY_EXPORTER", "is otlp, but OTEL_EXPORTER_OTLP_ENDPOINT is not set"
        if self.claim_ttl_seconds < 2 * self.fence_guard_seconds:
            yield "CLAIM_TTL_SECONDS", (
                f"must be at least {2 * self.fence_guard_seconds:g} s: twice the longest external call "
                f"({self.longest_call_seconds:g} s: PACING_MAX_WAIT_SECONDS + AUTH0_TIMEOUT_SECONDS, or + "
                f"3 x AZURE_TIMEOUT_SECONDS + 2) plus {CLOCK_SKEW_SECONDS:g} s for clock skew; a shorter claim "
                f"could expire while a call it guards is still on its way (got {self.claim_ttl_seconds:g})")

    @property
    def auth0_management_audience(self) -> str:
        return self.auth0_audience or f"https://{self.auth0_domain}/api/v2/"

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.retry_max_attempts, max_total_seconds=self.retry_max_total_seconds,
                           base_seconds=self.retry_base_seconds, max_delay_seconds=self.retry_max_delay_seconds)

    @property
    def claim_ttl(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.claim_ttl_seconds)


@dataclass(frozen=True)
class SettingInfo:
    name: str
    required: bool
    default: str
    scope: str  # "app" (a deployment sets it), "alternative", "platform" or "local"
    secret: bool
    description: str


def describe_settings(model: type[SettingsModel] = AppSettings) -> list[SettingInfo]:
    """Every setting of ``model``: the reference behind the README's table and the deployment template."""
    out = []
    for info in model.model_fields.values():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        default = "" if info.is_required() or info.default in (None, "") else str(info.default)
        if isinstance(info.default, Path):
            default = str(info.default.relative_to(APP_ROOT))
        out.append(SettingInfo(info.alias, info.is_required(), default, str(extra.get("scope", "app")),
                               bool(extra.get("secret")), info.description or ""))
    return out


def app_setting_names() -> frozenset[str]:
    """The settings a deployment gives the app (not the platform's own, not the local stack's)."""
    return frozenset(s.name for s in describe_settings() if s.scope in ("app",))


