"""The names a customer's resources go by: the ones its ledger row records, else the ones derived from its id.

The ledger is the authority. A row records the names its customer's resources were given, so a customer provisioned
under the naming scheme before issue 23 keeps its names (they are adopted, never renamed: a new subscription id
would mean new subscription keys, a new secret name a new secret URI for its integrations); a customer the ledger
records no name for gets the current scheme's (``shared/domain/naming.py``).
"""
from __future__ import annotations

from ..domain import naming
from ..domain.records import CustomerRecord


def secret_name(rec: CustomerRecord | None, customer_id: str) -> str:
    return (rec.keyvault_secret_name if rec else None) or naming.secret_name(customer_id)


def authorization_server_id(rec: CustomerRecord | None, customer_id: str) -> str:
    return (rec.apim_authorization_server_id if rec else None) or naming.authorization_server_id(customer_id)


def subscription_id(rec: CustomerRecord | None, customer_id: str) -> str:
    return (rec.apim_subscription_id if rec else None) or naming.subscription_id(customer_id)


def legacy_names(customer_id: str) -> dict[str, str]:
    """(resource kind -> name) of the names the scheme before issue 23 gave this id, where they differ from now."""
    pairs = {"secret": (naming.legacy_secret_name, naming.secret_name),
             "authorization_server": (naming.legacy_authorization_server_id, naming.authorization_server_id),
             "subscription": (naming.legacy_subscription_id, naming.subscription_id)}
    return {kind: old(customer_id) for kind, (old, new) in pairs.items()
            if old(customer_id).lower() != new(customer_id).lower()}
