"""azure-core plumbing shared by the Key Vault, API Management and Table Storage adapters: the in-call retry
policy, and the translation of azure-core exceptions into TransientError/PermanentError.

Retries. azure-core's default is 10 retries with exponential backoff, and it sleeps whatever ``Retry-After`` a 429
or 503 asks for, without a cap: one throttled call could hold a worker for minutes. The app's retries belong to the
message pipeline (a failed step raises TransientError; the trigger redelivers with backoff and every step is
idempotent). In-call we keep *two* quick retries (0.2 s then 0.4 s, plus jitter; at most 2 s) for blips, on the
methods azure-core deems safe (GET, PUT, DELETE; POST only on 500/503/504), and give up at once on a
``Retry-After`` longer than 2 s, so that the wait is the pipeline's (TransientError.retry_after), not a blocked
thread's. Every PUT/DELETE this app sends is idempotent but one: a Key Vault secret PUT makes a new version each
time, so the Key Vault adapter turns the retry of a PUT whose answer was lost off and reads the latest version back
instead (a second version of the same secret would break "the version before the latest is the old secret").
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from azure.core.exceptions import (AzureError, ClientAuthenticationError, HttpResponseError, ServiceRequestError,
                                   ServiceResponseError)
from azure.core.pipeline.policies import RetryPolicy

from ..domain.errors import PermanentError, ProvisioningError, TransientError
from .failure_rules import MAX_MESSAGE, is_transient_status, redact, retry_after_seconds
from .telemetry import CallStatusPolicy, external_call

RETRY_TOTAL = 2
RETRY_BACKOFF_FACTOR = 0.2
RETRY_BACKOFF_MAX = 2
#: a Retry-After longer than this is left to the message pipeline
MAX_IN_CALL_WAIT = 2.0
CONNECTION_TIMEOUT = 5.0
#: what :func:`azure_call` returns for an answer listed in ``absent_on`` (the thing does not exist)
ABSENT = object()


def retry_kwargs() -> dict:
    """Keyword arguments for clients that build their own RetryPolicy (azure-data-tables)."""
    return dict(retry_total=RETRY_TOTAL, retry_connect=RETRY_TOTAL, retry_read=RETRY_TOTAL,
                retry_status=RETRY_TOTAL, retry_backoff_factor=RETRY_BACKOFF_FACTOR,
                retry_backoff_max=RETRY_BACKOFF_MAX)


class ShortRetryPolicy(RetryPolicy):
    """azure-core's RetryPolicy with the small budget above, that will not sleep a long Retry-After."""

    def __init__(self, **kwargs):
        for key, value in retry_kwargs().items():
            kwargs.setdefault(key, value)
        super().__init__(**kwargs)

    def is_retry(self, settings, response) -> bool:
        wait = self.get_retry_after(response)
        if wait is not None and wait > MAX_IN_CALL_WAIT:
            return False
        return super().is_retry(settings, response)


def client_kwargs(*, ca_bundle: str | None, timeout: float) -> dict:
    """Transport settings every Azure client of the app gets, and the policy that tells each call's span the status
    of every answer (after the retry policy, so each attempt is seen)."""
    kwargs = dict(connection_timeout=CONNECTION_TIMEOUT, read_timeout=timeout, per_retry_policies=[CallStatusPolicy()])
    if ca_bundle:
        kwargs["connection_verify"] = ca_bundle
    return kwargs


def error_code(exc: HttpResponseError) -> str:
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None) or getattr(exc, "error_code", None) or ""
    return str(getattr(code, "value", code))  # azure-data-tables gives an enum member


def inner_error_code(exc: HttpResponseError) -> str:
    err = getattr(exc, "error", None)
    inner = getattr(err, "innererror", None) or {}
    if isinstance(inner, dict):
        return str(inner.get("code") or "")
    return str(getattr(inner, "code", "") or "")


def _describe(exc: HttpResponseError) -> str:
    err = getattr(exc, "error", None)
    status = exc.status_code
    code = error_code(exc)
    message = getattr(err, "message", None)
    if not message:
        reason = getattr(exc, "reason", None) or ""
        message = reason or type(exc).__name__
    head = " ".join(str(p) for p in (status, code) if p)
    text = f"{head}: {message}" if head else str(message)
    return " ".join(text.split())[:MAX_MESSAGE]


def classify(exc: Exception, *, service: str, operation: str, secrets: Iterable[str | None] = ()
             ) -> ProvisioningError:
    """The TransientError or PermanentError that stands for ``exc`` (never containing one of ``secrets``)."""
    secrets = tuple(secrets)
    kw = dict(service=service, operation=operation)
    if isinstance(exc, ProvisioningError):
        return exc
    if isinstance(exc, ClientAuthenticationError) and exc.status_code is None:
        # The credential itself failed. CredentialUnavailableError means no identity is configured at all (a
        # deployment fault); anything else (the identity endpoint timed out, answered 5xx...) passes.
        from azure.identity import CredentialUnavailableError

        text = redact(str(exc.message or exc), secrets)
        if isinstance(exc, CredentialUnavailableError):
            return PermanentError(f"no Azure credential is available: {text}", **kw)
        return TransientError(f"getting an Azure token failed: {text}", **kw)
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        status = exc.status_code
        text = redact(_describe(exc), secrets)
        headers = getattr(exc.response, "headers", None)
        if is_transient_status(status):
            return TransientError(text, retry_after=retry_after_seconds(headers, status=status), status=status, **kw)
        if status in (409, 412):
            # A concurrent change of the same entity (ARM's "another operation is in progress", an ETag race):
            # the next delivery sees the settled state.
            return TransientError(text, status=status, **kw)
        return PermanentError(text, status=status, **kw)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        # No answer (connection refused or reset, timeout): the call may or may not have been applied, and every
        # call here is safe to repeat.
        return TransientError(f"{type(exc).__name__}: no response from the service", **kw)
    if isinstance(exc, AzureError):
        text = redact(str(getattr(exc, "message", exc)), secrets)
        return PermanentError(f"{type(exc).__name__}: {text}", **kw)
    raise exc


def azure_call(service: str, operation: str, fn: Callable[[], Any], *, absent_on: tuple[int, ...] = (),
               secrets: Iterable[str | None] = (), translate: Callable[[Exception], Exception | None] | None = None
               ) -> Any:
    """The one call path of the Azure adapters: run one SDK call, return :data:`ABSENT` for a status in
    ``absent_on`` ("not there" is an answer, not an error), and raise only TransientError/PermanentError (or what
    ``translate`` makes of an exception it recognises), never with one of ``secrets`` in the message. Each call is
    one span (``telemetry.external_call``)."""
    with external_call(service, operation) as call:
        try:
            return fn()
        except ProvisioningError:
            raise
        except Exception as exc:
            if isinstance(exc, HttpResponseError) and exc.status_code in absent_on:
                call.outcome = "absent"
                return ABSENT
            special = translate(exc) if translate is not None else None
            if special is not None:
                raise special from None
            raise classify(exc, service=service, operation=operation, secrets=secrets) from None
