"""Failure classification shared by every layer.

Adapters translate SDK exceptions into these two kinds at the boundary, so the service layer and the trigger
decide retry-or-dead-letter without knowing any SDK. Messages must never contain a secret value.
"""
from __future__ import annotations


class ProvisioningError(Exception):
    """Base class. ``service`` and ``operation`` say where it happened, for logs and the ledger."""

    transient = False
    #: a stable reason code for the CRM (``customer.provisioning-failed``): the text may change, the code does not
    code = "PermanentFailure"

    def __init__(self, message: str, *, service: str = "", operation: str = "", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.service = service
        self.operation = operation
        self.status = status

    @property
    def reason(self) -> str:
        where = ".".join(p for p in (self.service, self.operation) if p)
        return f"{where}: {self.message}" if where else self.message


class TransientError(ProvisioningError):
    """Worth retrying later: 5xx, timeouts, dropped connections, 429, a ledger ETag race, a busy customer.

    ``retry_after`` is the number of seconds the service asked us to wait (from a 429's reset header), if any.
    """

    transient = True
    code = "RetryBudgetSpent"  # a transient failure reaches the CRM only when its retries are spent

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class PermanentError(ProvisioningError):
    """Retrying cannot help: the event, the configuration or a service's validation said no."""


class _NamesItsField(PermanentError):
    """A rejection of the event itself: its message already names the field, so the reason is the message alone
    (``event.profile: data.profile: ...`` said the same thing twice)."""

    @property
    def reason(self) -> str:
        return self.message


class InvalidEvent(_NamesItsField):
    """The event does not follow the contract. ``field`` is a JSON path such as ``data.customerId``."""
    code = "InvalidEvent"

    def __init__(self, field: str, rule: str):
        super().__init__(f"{field}: {rule}", service="event", operation="parse")
        self.field = field
        self.rule = rule



class MetadataCollision(InvalidEvent):
    """The event names a top-level attribute after a Service Bus message property. The Functions host has then put
    the attribute's value in place of the property it read from the message, so what the function was told about
    its message (message id, delivery count, lock token...) is the sender's, not Service Bus's."""

class UnknownProfile(_NamesItsField):
    code = "UnknownProfile"

    def __init__(self, profile: str, known: list[str]):
        super().__init__(f"data.profile: unknown profile {profile!r} (known: {', '.join(sorted(known))})",
                         service="event", operation="profile")
        self.profile = profile


class RetryBudgetSpent(PermanentError):
    """A transient failure outlived the retry budget (attempts or total time): retrying now is up to a person. The
    reason is the last transient failure's, so ops see what kept failing."""
    code = "RetryBudgetSpent"

    def __init__(self, last: TransientError, attempts: int):
        super().__init__(f"retry budget spent after {attempts} retries; last failure: {last.reason}",
                         service=last.service, operation=last.operation, status=last.status)
        self.last = last
        self.attempts = attempts

    @property
    def reason(self) -> str:
        return self.message


class ChangeNotInPlace(PermanentError):
    """A customer.updated asks for a change that cannot be made to the existing resources (a confidential client
    made public, a third-party one first-party...): refused whole, before anything is changed."""
    code = "ChangeNotInPlace"


class NotProvisioned(PermanentError):
    """A customer.updated for a customer that was removed: an update never brings one back."""
    code = "NotProvisioned"


class LedgerConflict(TransientError):
    """Another writer changed the ledger row since we read it (ETag mismatch)."""


class CustomerBusy(TransientError):
    """Another worker holds this customer's claim; try again after it ends or expires."""


class ClaimLost(TransientError):
    """This worker's claim expired or was taken over: it writes nothing more (a fenced write was refused)."""


class RotationRefused(PermanentError):
    """A credentials rotation that cannot be done for this customer: a public client has no secret, a customer
    that is not provisioned has nothing to rotate."""

    def __init__(self, message: str):
        super().__init__(message, service="provisioning", operation="rotate_secret")
