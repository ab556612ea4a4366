"""What the trigger does with a message once the service layer has answered: the settlement decision.

The service layer knows nothing of Service Bus settlement; it returns an outcome or raises a classified error, and
this module maps that to one of three ends:

- complete: applied, duplicate, stale, or a transient failure handed to a scheduled retry copy;
- dead-letter now, with ``DeadLetterReason`` a short stable code and ``DeadLetterErrorDescription`` the rule:
  a permanent failure cannot succeed on a redelivery, so waiting for MaxDeliveryCount only hides its reason;
- leave it to the host (raise, so the host abandons it): a transient failure no retry copy could be scheduled for,
  and anything unexpected (a bug). The queue's MaxDeliveryCount stays the backstop for those.
"""
from __future__ import annotations

from dataclasses import dataclass

from shared.domain.errors import InvalidEvent, PermanentError, RetryBudgetSpent, UnknownProfile

#: DeadLetterReason codes, stable: runbooks, alerts and ``opstool list --reason`` match on them.
INVALID_EVENT = "InvalidEvent"
UNKNOWN_PROFILE = "UnknownProfile"
RETRY_BUDGET_SPENT = "RetryBudgetSpent"
PERMANENT_FAILURE = "PermanentFailure"

# Service Bus stores the description as a message property; the portal and Service Bus Explorer show it on one
# line. The rules are short; anything longer is cut, so a reason quoting the input cannot grow the message.
MAX_DESCRIPTION = 1024


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    description: str


def dead_letter_for(error: BaseException) -> DeadLetter | None:
    """The dead-lettering a raised error calls for, or None when the host's redelivery path should handle it."""
    if not isinstance(error, PermanentError):
        return None
    if isinstance(error, InvalidEvent):
        code = INVALID_EVENT
    elif isinstance(error, UnknownProfile):
        code = UNKNOWN_PROFILE
    elif isinstance(error, RetryBudgetSpent):
        code = RETRY_BUDGET_SPENT
    else:
        code = PERMANENT_FAILURE
    # ProvisioningError reasons are written never to hold a secret (they go to the ledger as they are).
    return DeadLetter(code, describe(error.reason))


def describe(text: str) -> str:
    """One printable line of at most MAX_DESCRIPTION characters: control characters, line breaks and lone
    surrogates (a rule may quote the offending input) are escaped visibly, so the description is valid Unicode that
    any tool can show safely."""
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    line = "".join(out)
    return line if len(line) <= MAX_DESCRIPTION else line[:MAX_DESCRIPTION - 1] + "…"
