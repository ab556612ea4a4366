"""Names derived from a customer id in each service: stable across deliveries, and distinct for distinct ids.

Every removal can find a customer's resources from the id alone, even when the ledger lost a write, because the
names are a pure function of the customer id. The scheme (docs/DESIGN.md, *Names*):

- an id that is already a valid name (``[a-z0-9-]``, short enough, not ending like a legacy hashed name) is kept:
  ``acme`` -> ``auth0-client-acme``;
- any other id (upper case, ``.``, ``_``, too long) becomes ``prefix + "-" + the id in lower case with ``.``/``_`` as
  ``-`` + "-" + 128 bits of its SHA-256`` (32 hex digits): ``Acme`` -> ``auth0-client--acme-<32 hex>``. The hash
  is of the id as given, so case and punctuation variants differ; two ids share a hashed name only if SHA-256
  truncated to 128 bits collides (about 2**64 work for any pair, out of reach). The ``-`` right after the prefix
  cannot follow the prefix in a kept name (ids start with a letter or digit), so no kept name equals a hashed one.

Key Vault and API Management compare names without regard to case, and so do the guarantees above.

Migration. Before issue 23 the hashed names were ``prefix + base + "-" + 40 bits`` (``legacy_*``): about a million
case variants of one id were enough to find two sharing every name. Those names stay in use for the customers whose
ledger rows record them (``shared/service_layer/resource_names.py``); the kept names are the same in both schemes.
A legacy hashed name has a letter or digit right after the prefix and a new hashed name has ``-`` there, so the
two never meet; and an id that ends like a legacy hashed name (``acme-37036cd8f9``) is hashed in both schemes, so no
kept name equals a legacy hashed one either.
"""
from __future__ import annotations

import hashlib
import re

_KV_ALLOWED = re.compile(r"^[a-z0-9-]+$")
#: how a legacy hashed name ends: an id ending so is hashed in both schemes
_LEGACY_TAIL = re.compile(r"-[0-9a-f]{10}$")
#: hex digits of SHA-256 in a hashed name: 128 bits
HASH_HEX = 32
LEGACY_HASH_HEX = 10

SECRET_PREFIX = "auth0-client-"
SERVER_PREFIX = "auth0-"
SUBSCRIPTION_PREFIX = "customer-"
ORGANIZATION_PREFIX = "customer-"
#: the services' limits: Key Vault secret names 1-127, APIM authorization servers 1-80, subscriptions 1-256, Auth0
#: organization names 1-50 (lower-case letters, digits, _ and -)
SECRET_MAX, SERVER_MAX, SUBSCRIPTION_MAX, ORGANIZATION_MAX = 127, 80, 256, 50


def _digest(customer_id: str, digits: int) -> str:
    return hashlib.sha256(customer_id.encode()).hexdigest()[:digits]


def _base(customer_id: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", customer_id.lower())


def _kept(customer_id: str, prefix: str, max_len: int) -> str | None:
    if _KV_ALLOWED.match(customer_id) and not _LEGACY_TAIL.search(customer_id) and \
            len(prefix) + len(customer_id) <= max_len:
        return prefix + customer_id
    return None


def _normalised(customer_id: str, prefix: str, max_len: int) -> str:
    kept = _kept(customer_id, prefix, max_len)
    if kept is not None:
        return kept
    tail = "-" + _digest(customer_id, HASH_HEX)
    return (prefix + "-" + _base(customer_id))[: max_len - len(tail)] + tail


def _legacy(customer_id: str, prefix: str, max_len: int) -> str:
    kept = _kept(customer_id, prefix, max_len)
    if kept is not None:
        return kept
    return f"{prefix}{_base(customer_id)}"[: max_len - LEGACY_HASH_HEX - 1] + "-" + _digest(customer_id,
                                                                                            LEGACY_HASH_HEX)


def secret_name(customer_id: str, prefix: str = SECRET_PREFIX) -> str:
    """Key Vault secret name: 1-127 of 0-9a-zA-Z-, case-insensitive."""
    return _normalised(customer_id, prefix, SECRET_MAX)


def authorization_server_id(customer_id: str, prefix: str = SERVER_PREFIX) -> str:
    """APIM authorization server id: 1-80 characters, no `*#&+:<>?`; kept to the Key Vault alphabet for clarity."""
    return _normalised(customer_id, prefix, SERVER_MAX)


def subscription_id(customer_id: str, prefix: str = SUBSCRIPTION_PREFIX) -> str:
    """APIM subscription id: up to 256 characters, no `*#&+:<>?`."""
    return _normalised(customer_id, prefix, SUBSCRIPTION_MAX)


def organization_name(customer_id: str, prefix: str = ORGANIZATION_PREFIX) -> str:
    """Auth0 organization name: 1-50 of a-z 0-9 _ -, unique in the tenant. The kept and hashed names are already
    lower case (``_base`` lower-cases the id), and the prefix leaves 41 characters for a kept id."""
    return _normalised(customer_id, prefix, ORGANIZATION_MAX)


# ---- the scheme before issue 23, for the customers whose ledger rows record its names ------------------------------
def legacy_secret_name(customer_id: str) -> str:
    return _legacy(customer_id, SECRET_PREFIX, SECRET_MAX)


def legacy_authorization_server_id(customer_id: str) -> str:
    return _legacy(customer_id, SERVER_PREFIX, SERVER_MAX)


def legacy_subscription_id(customer_id: str) -> str:
    return _legacy(customer_id, SUBSCRIPTION_PREFIX, SUBSCRIPTION_MAX)
