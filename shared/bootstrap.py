"""The composition root: settings -> adapters -> service -> the message handler, once per process.

Start-up (the host indexing the functions) calls :func:`startup_settings`: it validates every setting and the client
profiles, and raises one :class:`SettingsError` listing every problem, so a misconfigured app indexes no function
and consumes nothing. It imports pydantic and no service SDK. The SDKs, the credential and the clients are built by
the first :func:`get_handler` call, then reused by every invocation the process serves: by the warm-up thread that
``function_app`` starts once the functions are indexed (:func:`begin_warm_up`), or else by the first message.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING

from .domain.profiles import ProfileConfigError, load_profiles
from .settings import AppSettings, SettingsError, process_environment
from .settings.model import CLOCK_SKEW_SECONDS

if TYPE_CHECKING:  # for readers and type checkers only: not imported at run time
    from .service_layer.drift import ReconcileResult
    from .service_layer.messages import MessageHandler
    from .service_layer.ports import DriftReport
    from .service_layer.provisioning import ProvisioningService

_lock = threading.Lock()
_settings: AppSettings | None = None
_handler: "MessageHandler | None" = None


def load_app_settings(values=None) -> AppSettings:
    """The app's settings from ``values`` (default: the process environment), the client profiles checked too:
    one SettingsError lists every problem."""
    values = process_environment() if values is None else values
    problems: list[str] = []
    settings = None
    try:
        settings = AppSettings.load(values)
    except SettingsError as exc:
        problems.extend(exc.problems)
    if settings is not None:
        try:
            load_profiles(settings.client_profiles_path, env=settings.values)
        except ProfileConfigError as exc:
            problems.extend(f"CLIENT_PROFILES_PATH: {problem}" for problem in exc.problems)
    if problems:
        raise SettingsError(problems)
    return settings


def startup_settings() -> AppSettings:
    """The process's settings, validated once (at indexing); raises SettingsError with every problem."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = load_app_settings()
        return _settings


def default_worker_id(settings: AppSettings) -> str:
    """Names this process as the owner of its claims: instance (App Service sets WEBSITE_INSTANCE_ID), pid, and a
    random tail so that a restarted process never mistakes an older claim for its own."""
    instance = (settings.website_instance_id or "")[:12] or socket.gethostname()
    return f"{instance}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def build_service(settings: AppSettings, worker_id: str | None = None) -> "ProvisioningService":
    """A ProvisioningService over the real adapters, configured by ``settings``."""
    from .adapters.apim_gateway import ApimGateway
    from .adapters.auth0_identity import Auth0IdentityProvider
    from .adapters.credentials import get_credential
    from .adapters.keyvault_secrets import KeyVaultSecretStore
    from .adapters.servicebus_results import ServiceBusResultPublisher
    from .adapters.table_ledger import TableLedger
    from .adapters.telemetry import current_trace_context
    from .service_layer.provisioning import ProvisioningOptions, ProvisioningService

    profiles = load_profiles(settings.client_profiles_path, env=settings.values)
    credential = get_credential(settings.azure_client_id)
    options = ProvisioningOptions(
        auth0_domain=settings.auth0_domain,
        purge_deleted_secrets=settings.keyvault_purge_deleted,
        claim_ttl=settings.claim_ttl_seconds,
        apim_client_registration_endpoint=settings.apim_client_registration_endpoint,
        fence_guard=settings.fence_guard_seconds,
        clock_skew=CLOCK_SKEW_SECONDS,
        keyvault_url=settings.keyvault_url,
        result_type_prefix=settings.event_type_prefix,
    )
    return ProvisioningService(identity=Auth0IdentityProvider.from_settings(settings),
                               secrets=KeyVaultSecretStore.from_settings(settings, credential),
                               gateway=ApimGateway.from_settings(settings, credential),
                               ledger=TableLedger.from_settings(settings, credential),
                               profiles=profiles, options=options,
                               worker_id=worker_id or default_worker_id(settings),
                               results=ServiceBusResultPublisher.from_settings(settings),
                               trace_context=current_trace_context)


def build_handler(settings: AppSettings, worker_id: str | None = None) -> "MessageHandler":
    """The whole handler of one message: telemetry, service, retry scheduler, retry policy and event type prefix.
    Telemetry is installed here, on the first message, so the host's indexing does not pay for its imports."""
    from .adapters.servicebus_retry import ServiceBusRetryScheduler
    from .adapters.telemetry import OpenTelemetryTelemetry
    from .adapters.telemetry_setup import configure_telemetry
    from .service_layer.messages import MessageHandler

    configure_telemetry(settings)
    return MessageHandler(build_service(settings, worker_id),
                          scheduler=ServiceBusRetryScheduler.from_settings(settings),
                          policy=settings.retry_policy, type_prefix=settings.event_type_prefix,
                          telemetry=OpenTelemetryTelemetry())


def get_handler() -> "MessageHandler":
    """The process's handler, built on first use from the start-up settings."""
    global _handler
    handler = _handler
    if handler is not None:
        return handler
    settings = startup_settings()
    with _lock:
        if _handler is None:
            _handler = build_handler(settings)
        return _handler


def warm_up() -> dict[str, str]:
    """Build the process's handler, then have each of its clients make its first call at once (a token, a
    connection, Key Vault's challenge, the APIM tier, the Service Bus links): what the first event would otherwise
    wait for, one after another. Returns part -> "ready" or why not; a part that fails is left to the first event,
    which does the same work again (every warm-up call is a read or a token)."""
    from .service_layer.concurrency import run_all
    from .service_layer.step_log import LOGGER_NAME, error_reason

    log = logging.getLogger(LOGGER_NAME)
    started = time.perf_counter()
    try:
        handler = get_handler()
    except Exception as exc:  # noqa: BLE001 - the first event builds it again and reports the failure there
        log.warning("warm-up: the handler could not be built (%s); the first event builds it", error_reason(exc))
        return {"handler": error_reason(exc)}
    built = time.perf_counter()
    service = handler.service
    parts = {name: part for name, part in (
        ("auth0", service.identity), ("keyvault", service.secrets), ("apim", service.gateway),
        ("ledger", service.ledger), ("results", service.results), ("retries", handler.scheduler))
        if callable(getattr(part, "warm_up", None))}

    def run(part) -> str:
        try:
            part.warm_up()
            return "ready"
        except Exception as exc:  # noqa: BLE001 - reported below; the first event meets it again if it lasts
            return error_reason(exc)

    outcome = dict(zip(parts, run_all([lambda p=part: run(p) for part in parts.values()],
                                      max_workers=len(parts), name="warm-up")))
    done = time.perf_counter()
    failed = {k: v for k, v in outcome.items() if v != "ready"}
    log.log(logging.WARNING if failed else logging.INFO,
            "warm-up: handler built in %d ms, then %s ready in %d ms%s", (built - started) * 1000,
            ", ".join(k for k, v in outcome.items() if v == "ready") or "nothing", (done - built) * 1000,
            "".join(f"; {k} not: {v}" for k, v in failed.items()))
    return outcome


def begin_warm_up() -> threading.Thread | None:
    """Start :func:`warm_up` in a background thread when WARM_UP is on (the default): the host connects its
    triggers meanwhile, and the first event, which waits for the handler being built rather than building a
    second, finds the clients ready. Called once the host has the functions (``function_app``)."""
    if not startup_settings().warm_up:
        return None
    thread = threading.Thread(target=warm_up, name="app-warm-up", daemon=True)
    thread.start()
    return thread


def build_drift_report(service, detection_id: str) -> "DriftReport":
    """Where every drift finding of the timer goes: a log line and a customer.drift-detected event each."""
    from .adapters.drift_log import ResultEventDriftReport

    return ResultEventDriftReport(service, detection_id)


def run_drift_reconciliation(*, repair: bool | None = None, customer_id: str | None = None,
                             detection_id: str | None = None) -> "ReconcileResult":
    """The timer's reconciliation, on the process's own service (its adapters, and so their pacing, are the ones
    the events use): report every finding, repair when DRIFT_REPAIR (or ``repair``) says so, then send what the
    outbox still holds (result events whose send failed after their commit), and ask for the rotation of every
    secret older than its profile's max_secret_age_days."""
    from .service_layer.drift import reconcile
    from .service_layer.rotation_schedule import request_due_rotations

    settings = startup_settings()
    handler = get_handler()
    service = handler.service
    run = detection_id or service.core.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    result = reconcile(service, build_drift_report(service, run),
                       repair=settings.drift_repair if repair is None else repair, customer_id=customer_id)
    service.publish_pending()
    if customer_id is None:
        result.rotations_requested = len(request_due_rotations(service, handler.scheduler,
                                                               type_prefix=handler.type_prefix))
    return result


def close() -> None:
    """Close the connections of the process's handler (its Service Bus senders) and forget it: for a host that
    stops in-process (the demo's) before the stack goes; a worker process just exits."""
    global _handler
    with _lock:
        handler, _handler = _handler, None
    if handler is None:
        return
    for part in (handler.service.results, handler.scheduler):
        closer = getattr(part, "close", None)
        if callable(closer):
            closer()


def reset() -> None:
    """Forget the process's settings and handler (tests that change the environment)."""
    global _settings, _handler
    with _lock:
        _settings = _handler = None
