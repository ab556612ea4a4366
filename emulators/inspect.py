"""What the local stack holds, per customer: for the demo, the end-to-end tests and the chaos suite.

Reads each stand-in's state through its control API (never through the app), and groups every resource by the
customer it belongs to: Auth0 applications by ``client_metadata.customer_id``, secrets by their ``customer_id`` tag,
APIM entries by the names the app derives from the customer id. Anything that cannot be attributed, or belongs to a
customer that should have nothing, is an orphan; two applications for one customer are a duplicate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .control import StandInControl


@dataclass
class CustomerResources:
    customer_id: str
    auth0_applications: list[str] = field(default_factory=list)
    auth0_grants: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)          # live secret names
    deleted_secrets: list[str] = field(default_factory=list)  # soft-deleted names
    authorization_servers: list[str] = field(default_factory=list)
    subscriptions: dict[str, str] = field(default_factory=dict)  # id -> state

    @property
    def live(self) -> bool:
        return bool(self.auth0_applications or self.auth0_grants or self.secrets or self.authorization_servers
                    or self.subscriptions)

    def line(self) -> str:
        subs = ", ".join(f"{k} ({v})" for k, v in self.subscriptions.items()) or "-"
        return (f"{self.customer_id}: auth0 apps {self.auth0_applications or '-'}, grants {len(self.auth0_grants)}, "
                f"key vault {self.secrets or '-'} (soft-deleted {self.deleted_secrets or '-'}), "
                f"apim auth servers {self.authorization_servers or '-'}, subscriptions {subs}")


@dataclass
class StackView:
    customers: dict[str, CustomerResources]
    unattributed: list[str]  # resources no customer could be found for

    def of(self, customer_id: str) -> CustomerResources:
        return self.customers.get(customer_id) or CustomerResources(customer_id)

    def duplicates(self) -> dict[str, list[str]]:
        return {c: r.auth0_applications for c, r in self.customers.items() if len(r.auth0_applications) > 1}


def _controls(stack) -> dict[str, StandInControl]:
    if isinstance(stack, dict):  # stack.json as written by `python -m emulators up`
        return {name: StandInControl(svc["url"], verify=stack["ca_cert"])
                for name, svc in stack["services"].items()}
    return {name: stack.control(name) for name in ("auth0", "keyvault", "apim")}


def view_stack(stack) -> StackView:
    """``stack``: a running LocalStack, or the dict of its stack.json."""
    from shared.domain import naming  # the app's own rule for names: the one thing shared with the app

    ctl = _controls(stack)
    customers: dict[str, CustomerResources] = {}
    unattributed: list[str] = []

    def get(cid: str) -> CustomerResources:
        return customers.setdefault(cid, CustomerResources(cid))

    auth0 = ctl["auth0"].state()
    management = set(auth0.get("management_client_ids", []))
    owner_of_client: dict[str, str] = {}
    for client in auth0.get("clients", []):
        if client["client_id"] in management:
            continue
        cid = (client.get("client_metadata") or {}).get("customer_id")
        if cid:
            get(cid).auth0_applications.append(client["client_id"])
            owner_of_client[client["client_id"]] = cid
        else:
            unattributed.append(f"auth0 application {client['client_id']}")
    for grant in auth0.get("client_grants", []):
        cid = owner_of_client.get(grant.get("client_id"))
        if cid:
            get(cid).auth0_grants.append(grant["id"])
        elif grant.get("client_id") not in management:
            unattributed.append(f"auth0 grant {grant['id']}")

    vault = ctl["keyvault"].state()
    for bucket, attr in (("secrets", "secrets"), ("deleted", "deleted_secrets")):
        for name, secret in (vault.get(bucket) or {}).items():
            versions = secret.get("versions") or []
            latest = versions[-1] if isinstance(versions, list) and versions else {}
            cid = (latest.get("tags") or {}).get("customer_id") if isinstance(latest, dict) else None
            if cid:
                getattr(get(cid), attr).append(secret.get("name", name))
            elif bucket == "secrets":
                unattributed.append(f"key vault secret {name}")

    apim = ctl["apim"].state()
    server_names = {k.lower(): k for k in apim.get("authorizationServers", {})}
    sub_names = {k.lower(): (k, v) for k, v in apim.get("subscriptions", {}).items()}
    # Names are derived from customer ids; map back through every customer id we know of.
    for cid in list(customers):
        sid = naming.authorization_server_id(cid).lower()
        if sid in server_names:
            customers[cid].authorization_servers.append(server_names.pop(sid))
        sub = naming.subscription_id(cid).lower()
        if sub in sub_names:
            name, body = sub_names.pop(sub)
            customers[cid].subscriptions[name] = body.get("properties", {}).get("state", "?")
    unattributed += [f"apim authorization server {n}" for n in server_names.values()]
    unattributed += [f"apim subscription {n}" for n, _ in sub_names.values()]
    return StackView(customers, unattributed)


def view_customers(stack, customer_ids) -> StackView:
    """Like view_stack, but also maps APIM entries of customers that have nothing in Auth0 or Key Vault."""
    view = view_stack(stack)
    missing = [c for c in customer_ids if c not in view.customers]
    if not missing:
        return view
    from shared.domain import naming
    for cid in missing:
        view.customers[cid] = CustomerResources(cid)
    rest = []
    for item in view.unattributed:
        kind, _, name = item.rpartition(" ")
        for cid in missing:
            if kind == "apim authorization server" and name.lower() == naming.authorization_server_id(cid):
                view.customers[cid].authorization_servers.append(name)
                break
            if kind == "apim subscription" and name.lower() == naming.subscription_id(cid):
                view.customers[cid].subscriptions[name] = "?"
                break
        else:
            rest.append(item)
    view.unattributed = rest
    return view
