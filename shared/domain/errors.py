"""Failure classification shared by every layer.

Adapters translate SDK exceptions into these two kinds at the boundary, so the service layer and the trigger
decide retry-or-dead-letter without knowing any SDK. Messages must never contain a secret value.
"""
from __future__ import annotations


class ProvisioningError(Exception):
    """Base class. ``service`` and ``operation`` say where it happened, for logs and the ledger."""

    transient = False

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

    def __init__(self, field: str, rule: str):
        super().__init__(f"{field}: {rule}", service="event", operation="parse")
        self.field = field
        self.rule = rule


class UnknownProfile(_NamesItsField):
    def __init__(self, profile: str, known: list[str]):
        super().__init__(f"data.profile: unknown profile {profile!r} (known: {', '.join(sorted(known))})",
                         service="event", operation="profile")
        self.profile = profile


class RetryBudgetSpent(PermanentError):
    """A transient failure outlived the retry budget (attempts or total time): retrying now is up to a person. The
    reason is the last transient failure's, so ops see what kept failing."""

    def __init__(self, last: TransientError, attempts: int):
        super().__init__(f"retry budget spent after {attempts} retries; last failure: {last.reason}",
                         service=last.service, operation=last.operation, status=last.status)
        self.last = last
        self.attempts = attempts

    @property
    def reason(self) -> str:
        return self.message


class LedgerConflict(TransientError):
    """Another writer changed the ledger row since we read it (ETag mismatch)."""


class CustomerBusy(TransientError):
    """Another worker holds this customer's claim; try again after it ends or expires."""


class ClaimLost(TransientError):
    """This worker's claim expired or was taken over: it writes nothing more (a fenced write was refused)."""
