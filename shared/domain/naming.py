"""Names derived from a customer id in each service, stable across deliveries and never colliding.

Every removal can find a customer's resources from the id alone, even when the ledger lost a write, because the
names are a pure function of the customer id.
"""
from __future__ import annotations

import hashlib
import re

_KV_ALLOWED = re.compile(r"^[a-z0-9-]+$")
_HASHED_TAIL = re.compile(r"-[0-9a-f]{10}$")


def _suffix(customer_id: str) -> str:
    return hashlib.sha256(customer_id.encode()).hexdigest()[:10]


def _normalised(customer_id: str, prefix: str, allowed: re.Pattern, max_len: int) -> str:
    base = re.sub(r"[^a-z0-9-]", "-", customer_id.lower())
    # An id kept as it is never ends like a hashed name, so the two sets of names cannot meet
    # ("Acme" -> "...acme-37036cd8f9", and the id "acme-37036cd8f9" itself is hashed too).
    if allowed.match(customer_id) and not _HASHED_TAIL.search(customer_id):
        name = f"{prefix}{customer_id}"
        if len(name) <= max_len:
            return name
    # The id had to change (case, `.` or `_`): add a hash of the original so "Acme", "acme" and "a.cme" differ.
    return f"{prefix}{base}"[: max_len - 11] + "-" + _suffix(customer_id)


def secret_name(customer_id: str, prefix: str = "auth0-client-") -> str:
    """Key Vault secret name: 1-127 of 0-9a-zA-Z-, case-insensitive."""
    return _normalised(customer_id, prefix, _KV_ALLOWED, 127)


def authorization_server_id(customer_id: str, prefix: str = "auth0-") -> str:
    """APIM authorization server id: 1-80 characters, no `*#&+:<>?`; kept to the Key Vault alphabet for clarity."""
    return _normalised(customer_id, prefix, _KV_ALLOWED, 80)


def subscription_id(customer_id: str, prefix: str = "customer-") -> str:
    """APIM subscription id: up to 256 characters, no `*#&+:<>?`."""
    return _normalised(customer_id, prefix, _KV_ALLOWED, 256)
