"""The result events the app sends back to the CRM: CloudEvents 1.0 (structured JSON), like the events it receives.

One constructor per type. Each event is about one customer and carries ids, names, versions and reasons only,
never a secret (the Key Vault secret is named by its URI and version, never its value). Its id, which is also the
Service Bus message id, is derived from what it reports (the source event and the outcome), so publishing it twice
(a retry after a crash between the ledger commit and the publish) gives the same message, which the topic's duplicate
detection drops, and which a CRM can recognise by its id beyond the detection window.
The JSON Schema is ``schemas/result-event.schema.json``; samples are in ``schemas/samples/result-*.json``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .errors import ProvisioningError

PROVISIONED = "customer.provisioned"
UPDATED = "customer.updated"
DEPROVISIONED = "customer.deprovisioned"
PROVISIONING_FAILED = "customer.provisioning-failed"
DRIFT_DETECTED = "customer.drift-detected"
CREDENTIALS_ROTATED = "customer.credentials-rotated"
RESULT_TYPES = (PROVISIONED, UPDATED, DEPROVISIONED, PROVISIONING_FAILED, DRIFT_DETECTED, CREDENTIALS_ROTATED)

#: the CloudEvents ``source`` of every result event
SOURCE = "/customer-provisioning"
CONTENT_TYPE = "application/cloudevents+json"
#: the longest rule text an event carries (the ledger's reasons are clipped the same way)
RULE_MAX = 1024


@dataclass(frozen=True)
class ResultEvent:
    type: str  # one of RESULT_TYPES, without a prefix
    customer_id: str | None
    message_id: str
    time: dt.datetime
    data: dict[str, Any]
    #: the app's trace context (a TraceContext) while it handled the source event: the CRM's trace goes on through
    #: the CloudEvents distributed-tracing extension (``traceparent``/``tracestate``)
    trace_context: Any = None

    def to_cloudevent(self, type_prefix: str = "") -> dict[str, Any]:
        event = {"specversion": "1.0", "id": self.message_id, "source": SOURCE, "type": type_prefix + self.type,
                 "time": _iso(self.time), "datacontenttype": "application/json", "data": self.data}
        if self.customer_id:
            event["subject"] = self.customer_id
        if self.trace_context is not None:
            event.update(self.trace_context.as_attributes())
        return event

    def body(self, type_prefix: str = "") -> str:
        return json.dumps(self.to_cloudevent(type_prefix), ensure_ascii=False, separators=(",", ":"))


def result_message_id(result_type: str, *source: str) -> str:
    """The message id of a result event: its type and a digest of what it reports (the source event's id, or a
    finding's identity), so the same outcome always gets the same id and another outcome never does."""
    digest = hashlib.sha256("\x00".join((result_type, *source)).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{result_type.removeprefix('customer.')}-{digest[:40]}"


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _source(event_id: str, event_type: str, event_time: dt.datetime | None) -> dict[str, Any]:
    out: dict[str, Any] = {"sourceEventId": event_id, "sourceEventType": event_type}
    if event_time is not None:
        out["sourceEventTime"] = _iso(event_time)
    return out


def secret_uri(vault_url: str, name: str | None) -> str | None:
    """The versionless URI of a Key Vault secret (the version is its own field)."""
    if not name or not vault_url:
        return None
    return f"{vault_url.rstrip('/')}/secrets/{name}"


def provisioned(*, customer_id: str, event_id: str, event_type: str, event_time: dt.datetime, now: dt.datetime,
                profile: str, display_name: str, plan: str | None, client_id: str, grant_id: str | None,
                secret_uri: str | None, secret_version: str | None, authorization_server_id: str | None,
                subscription_id: str | None) -> ResultEvent:
    data = {"customerId": customer_id, **_source(event_id, event_type, event_time), "profile": profile,
            "displayName": display_name, "plan": plan, "auth0ClientId": client_id, "auth0ClientGrantId": grant_id,
            "keyVaultSecretUri": secret_uri, "keyVaultSecretVersion": secret_version,
            "apimSubscriptionId": subscription_id, "apimAuthorizationServerId": authorization_server_id}
    return ResultEvent(PROVISIONED, customer_id, result_message_id(PROVISIONED, event_id), now, data)


def updated(*, customer_id: str, event_id: str, event_type: str, event_time: dt.datetime, now: dt.datetime,
            profile: str, display_name: str, plan: str | None, client_id: str, scopes: tuple[str, ...],
            changed: tuple[str, ...], apim_product: str, subscription_id: str | None) -> ResultEvent:
    data = {"customerId": customer_id, **_source(event_id, event_type, event_time), "profile": profile,
            "displayName": display_name, "plan": plan, "auth0ClientId": client_id, "scopes": list(scopes),
            "changed": list(changed), "apimProduct": apim_product, "apimSubscriptionId": subscription_id}
    return ResultEvent(UPDATED, customer_id, result_message_id(UPDATED, event_id), now, data)


def deprovisioned(*, customer_id: str, event_id: str, event_type: str, event_time: dt.datetime, now: dt.datetime,
                  client_id: str | None, never_provisioned: bool = False) -> ResultEvent:
    data = {"customerId": customer_id, **_source(event_id, event_type, event_time), "auth0ClientId": client_id,
            "neverProvisioned": never_provisioned}
    return ResultEvent(DEPROVISIONED, customer_id, result_message_id(DEPROVISIONED, event_id), now, data)


def credentials_rotated(*, customer_id: str, event_id: str, event_type: str, event_time: dt.datetime,
                        now: dt.datetime, client_id: str, secret_uri: str | None, secret_version: str,
                        authorization_server_id: str | None) -> ResultEvent:
    """A rotation applied: where the new secret is (its Key Vault URI and version), never the secret itself."""
    data = {"customerId": customer_id, **_source(event_id, event_type, event_time), "auth0ClientId": client_id,
            "keyVaultSecretUri": secret_uri, "keyVaultSecretVersion": secret_version, "rotatedAt": _iso(now),
            "apimAuthorizationServerId": authorization_server_id}
    return ResultEvent(CREDENTIALS_ROTATED, customer_id, result_message_id(CREDENTIALS_ROTATED, event_id), now, data)


def failure_code(exc: BaseException) -> str:
    """The stable reason code of a failure: the error class's ``code`` (InvalidEvent, UnknownProfile,
    ChangeNotInPlace, NotProvisioned, PermanentFailure, RetryBudgetSpent), ``InternalError`` for anything else."""
    if isinstance(exc, ProvisioningError):
        return exc.code
    return "InternalError"


def provisioning_failed(*, customer_id: str | None, event_id: str | None, event_type: str | None,
                        event_time: dt.datetime | None, now: dt.datetime, code: str, rule: str, dead_lettered: bool,
                        message_id: str | None = None) -> ResultEvent:
    """``rule`` is the app's own reason text (it names the field and the rule, or the service and its answer): it
    never holds a secret. An event that could not be read at all is identified by its message id."""
    source = event_id or message_id or ""
    data = {"customerId": customer_id, "sourceEventId": event_id, "sourceEventType": event_type,
            "sourceMessageId": message_id, "reasonCode": code, "rule": rule[:RULE_MAX],
            "deadLettered": dead_lettered}
    if event_time is not None:
        data["sourceEventTime"] = _iso(event_time)
    return ResultEvent(PROVISIONING_FAILED, customer_id,
                       result_message_id(PROVISIONING_FAILED, source, code), now, data)


def provisioning_failed_for(exc: BaseException, *, customer_id: str | None, event_id: str | None,
                            event_type: str | None, event_time: dt.datetime | None, now: dt.datetime, reason: str,
                            message_id: str | None = None) -> ResultEvent:
    """The event for a failure that sends the message to the dead-letter queue: a permanent one, or a transient
    one whose retry budget is spent."""
    return provisioning_failed(customer_id=customer_id, event_id=event_id, event_type=event_type,
                               event_time=event_time, now=now, code=failure_code(exc), rule=reason,
                               dead_lettered=True, message_id=message_id)


#: the kinds of drift findings (``data.finding``)
DRIFT_FINDINGS = ("missing", "leftover", "orphan", "drift")


def drift_detected(*, customer_id: str | None, finding: str, service: str, resource: str, detail: str,
                   detection_id: str, now: dt.datetime, expected: Any = None, actual: Any = None,
                   repaired: bool = False) -> ResultEvent:
    """One finding of a drift check. ``finding``: ``missing`` (a provisioned customer's resource is gone),
    ``leftover`` (a removed customer still has one), ``orphan`` (an application managed by this app with no ledger
    row) or ``drift`` (a resource differs from the profile). ``service``: auth0, keyvault or apim; ``resource``:
    what is affected (``application``, ``client_grant``, ``secret``, ``subscription``, ``authorization_server``)
    and its id; ``detection_id`` names the run (e.g. the timer's scheduled time): a finding is reported once per
    run, however often the run's publish is retried. ``expected``/``actual`` are plain JSON values, never a
    secret. ``customer_id`` None: an orphan whose application names no customer."""
    if finding not in DRIFT_FINDINGS:
        raise ValueError(f"finding must be one of {DRIFT_FINDINGS}")
    data = {"customerId": customer_id, "finding": finding, "service": service, "resource": resource,
            "detail": detail[:RULE_MAX], "expected": expected, "actual": actual, "repaired": repaired,
            "detectionId": detection_id}
    message_id = result_message_id(DRIFT_DETECTED, customer_id or "", finding, service, resource, detection_id)
    return ResultEvent(DRIFT_DETECTED, customer_id, message_id, now, data)


__all__ = ["CONTENT_TYPE", "CREDENTIALS_ROTATED", "DEPROVISIONED", "DRIFT_DETECTED", "PROVISIONED",
           "PROVISIONING_FAILED", "RESULT_TYPES", "ResultEvent", "SOURCE", "UPDATED", "credentials_rotated",
           "deprovisioned", "drift_detected", "failure_code", "provisioned", "provisioning_failed",
           "provisioning_failed_for", "result_message_id", "secret_uri", "updated"]
