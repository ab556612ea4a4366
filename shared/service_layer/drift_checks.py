"""The drift check of one customer: its ledger row against what Auth0, Key Vault and API Management hold.

The row is the desired state, whatever its status: a provisioned customer (or one an update or a rotation left
without a claim) must have every resource its profile wants, with the row's names and settings; a removed one none;
a row left in the middle of a change is a finding of its own (service ``ledger``). The names compared are the ones
the row records (``resource_names``): a customer provisioned under the naming scheme before issue 23 keeps its names.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..domain import naming
from ..domain.drift import DRIFT, LEDGER, LEFTOVER, MISSING, Finding
from ..domain.profiles import ClientProfile
from ..domain.records import PROVISIONING, REMOVING, ROTATING, UPDATING, CustomerRecord
from . import resource_names
from .convergence import application_created_by_app, wanted_callbacks
from .core import MANAGED_BY, clip
from .limits import APIM_SERVER_NAME_MAX
from .ports import Application, ClientGrant


@dataclass
class ServiceState:
    """What the services hold, read once per check, and the names every ledger row records."""
    applications: list[Application]
    grants: dict[str, dict[str, ClientGrant]]  # audience -> client id -> grant
    secrets: dict  # lower-case name -> SecretInfo
    servers: dict  # lower-case id -> AuthorizationServerInfo
    subscriptions: dict  # lower-case id -> SubscriptionInfo
    #: lower-case name -> the customers whose rows record it (secret, authorization server and subscription names)
    recorded_names: dict[str, set[str]] = field(default_factory=dict)


def recorded_names(records) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for rec in records:
        for name in (rec.keyvault_secret_name, rec.apim_authorization_server_id, rec.apim_subscription_id):
            if name:
                names.setdefault(name.lower(), set()).add(rec.customer_id)
    return names


def status_finding(rec: CustomerRecord) -> Finding | None:
    """A row no claim holds that is still in the middle of a change."""
    why = f" (last error: {rec.last_error})" if rec.last_error else ""
    if rec.status == PROVISIONING:
        return Finding(rec.customer_id, DRIFT, LEDGER, "customer", rec.customer_id,
                       f"status provisioning and no claim: the creation did not finish{why}; its event is retried or "
                       "dead-lettered (replay it, or send customer.removed)", repairable=False)
    if rec.status == REMOVING:
        return Finding(rec.customer_id, DRIFT, LEDGER, "customer", rec.customer_id,
                       f"status removing and no claim: the removal did not finish{why}; a repair finishes it")
    if rec.status in (UPDATING, ROTATING):
        return Finding(rec.customer_id, DRIFT, LEDGER, "customer", rec.customer_id,
                       f"status {rec.status} and no claim: the event did not finish{why}; a repair brings the services "
                       "back to the ledger")
    return None


def check_provisioned(rec: CustomerRecord, profile: ClientProfile, state: ServiceState, *,
                      name_prefix: str = "") -> list[Finding]:
    cid, out = rec.customer_id, []

    def add(kind, service, resource, rid, detail, repairable=True):
        out.append(Finding(cid, kind, service, resource, rid, detail, repairable))

    app = next((a for a in state.applications if a.client_id == rec.auth0_client_id), None)
    if app is None:
        add(MISSING, "auth0", "application", rec.auth0_client_id or "", "the recorded application does not exist")
    else:
        _check_application(rec, profile, app, state, add, name_prefix)
    display = rec.display_name or ""
    if profile.confidential:
        name = resource_names.secret_name(rec, cid)
        secret = state.secrets.get(name.lower())
        if secret is None or not secret.enabled:
            add(MISSING, "keyvault", "secret", name, "disabled" if secret else "no such secret")
        elif app is not None and secret.tags.get("client_id") != app.client_id:
            add(DRIFT, "keyvault", "secret", name, f"tagged for client {secret.tags.get('client_id')!r}, not "
                                                  f"{app.client_id!r}")
        if rec.rotation_pending:
            add(DRIFT, "keyvault", "secret", name, f"rotation {rec.rotation_pending} did not finish: Key Vault and API "
                                                  "Management may hold an older secret than Auth0; a repair carries "
                                                  "Auth0's secret to both")
    if profile.wants_authorization_server:
        sid = resource_names.authorization_server_id(rec, cid)
        server = state.servers.get(sid.lower())
        if server is None:
            add(MISSING, "apim", "authorization_server", sid, "no such entry")
        else:
            if app is not None and server.client_id != app.client_id:
                add(DRIFT, "apim", "authorization_server", sid, f"client {server.client_id!r}, not {app.client_id!r}")
            scope = " ".join(profile.scopes_for(rec.plan))
            if set(server.grant_types) != set(profile.apim_grant_types) or server.default_scope != scope:
                add(DRIFT, "apim", "authorization_server", sid,
                    f"grant types {sorted(server.grant_types)} scope {server.default_scope!r} (profile and plan: "
                    f"{sorted(profile.apim_grant_types)} {scope!r})")
            if display and server.display_name != clip(display, APIM_SERVER_NAME_MAX):
                add(DRIFT, "apim", "authorization_server", sid, f"display name {server.display_name!r} (ledger: "
                                                                f"{display!r})")
    sub_id = resource_names.subscription_id(rec, cid)
    sub = state.subscriptions.get(sub_id.lower())
    if sub is None:
        add(MISSING, "apim", "subscription", sub_id, "no such subscription")
    else:
        if sub.state != "active":
            add(DRIFT, "apim", "subscription", sub_id, f"state {sub.state} (wanted: active)")
        if sub.product_id != profile.apim_product:
            add(DRIFT, "apim", "subscription", sub_id, f"product {sub.product_id!r} (profile: "
                                                       f"{profile.apim_product!r})")
        if app is not None and sub.display_name != app.client_id:
            # The gateway binds the subscription's keys to the client its display name names: any other name
            # refuses the customer's own calls (or, worse, admits another client's tokens).
            add(DRIFT, "apim", "subscription", sub_id, f"bound to client {sub.display_name!r}, not "
                                                       f"{app.client_id!r}")
    return out + shared_or_legacy_names(rec, state)


def _check_application(rec: CustomerRecord, profile: ClientProfile, app: Application, state: ServiceState, add,
                       name_prefix: str) -> None:
    cid = rec.customer_id
    marker = app.client_metadata
    if marker.get("customer_id") != cid or marker.get("managed_by") != MANAGED_BY:
        add(DRIFT, "auth0", "application", app.client_id,
            f"client_metadata says customer_id={marker.get('customer_id')!r} managed_by="
            f"{marker.get('managed_by')!r}; the ledger records this application for {cid!r}: a repair restores the "
            "marker (the ledger decides whose an application is)")
    if rec.display_name and application_created_by_app(app, cid) and app.name != name_prefix + rec.display_name:
        add(DRIFT, "auth0", "application", app.client_id,
            f"name {app.name!r} (ledger: {name_prefix + rec.display_name!r})")
    if app.grant_types is not None and set(app.grant_types) != set(profile.grant_types):
        add(DRIFT, "auth0", "application", app.client_id,
            f"grant_types {sorted(app.grant_types)} (profile: {sorted(profile.grant_types)})")
    callbacks = wanted_callbacks(profile, rec)
    if callbacks is not None and app.callbacks is not None and list(app.callbacks) != list(callbacks):
        add(DRIFT, "auth0", "application", app.client_id, f"callbacks {list(app.callbacks)} (wanted: "
                                                          f"{list(callbacks)})")
    if app.is_first_party is not None and app.is_first_party != profile.first_party:
        add(DRIFT, "auth0", "application", app.client_id,
            f"is_first_party={app.is_first_party} (profile: {profile.first_party}); fixed at creation: remove "
            "and create the customer to change it", repairable=False)
    grant = state.grants.get(profile.audience, {}).get(app.client_id)
    if grant is None:
        add(MISSING, "auth0", "client_grant", f"{app.client_id} -> {profile.audience}",
            "no grant to the profile's audience")
    elif set(grant.scopes) != set(wanted := profile.scopes_for(rec.plan)):
        add(DRIFT, "auth0", "client_grant", grant.grant_id,
            f"scopes {sorted(grant.scopes)} (profile and plan: {sorted(wanted)})")


def check_removed(rec: CustomerRecord, state: ServiceState) -> list[Finding]:
    """A removed customer (or one whose removal did not finish) has nothing left: not under the names its row still
    records, nor under the derived ones."""
    cid, out = rec.customer_id, []
    for service, resource, names, held in (
            ("keyvault", "secret", (rec.keyvault_secret_name, naming.secret_name(cid)), state.secrets),
            ("apim", "authorization_server", (rec.apim_authorization_server_id, naming.authorization_server_id(cid)),
             state.servers),
            ("apim", "subscription", (rec.apim_subscription_id, naming.subscription_id(cid)), state.subscriptions)):
        for name in dict.fromkeys(n.lower() for n in names if n):
            if name in held and not state.recorded_names.get(name, set()) - {cid}:
                out.append(Finding(cid, LEFTOVER, service, resource, name, f"the customer is {rec.status}"))
    return out + shared_or_legacy_names(rec, state)


def shared_or_legacy_names(rec: CustomerRecord, state: ServiceState) -> list[Finding]:
    """A name this row records that another row records too (two customers on one resource: the naming scheme
    before issue 23 let that happen), and a resource under this customer's name of that scheme that no row records
    (made by a creation the upgrade interrupted). Neither is repaired: an operator decides whose it is."""
    cid, out = rec.customer_id, []
    kinds = {"secret": ("keyvault", state.secrets), "authorization_server": ("apim", state.servers),
             "subscription": ("apim", state.subscriptions)}
    for resource, name in (("secret", rec.keyvault_secret_name), ("authorization_server",
                                                                  rec.apim_authorization_server_id),
                           ("subscription", rec.apim_subscription_id)):
        others = sorted(state.recorded_names.get((name or "").lower(), set()) - {cid})
        if name and others:
            out.append(Finding(cid, DRIFT, kinds[resource][0], resource, name,
                               f"the ledger records this name for {', '.join(map(repr, others))} too: one resource "
                               "serves two customers; remove one of them and create it again", repairable=False))
    for resource, old in resource_names.legacy_names(cid).items():
        service, held = kinds[resource]
        if old.lower() in held and not state.recorded_names.get(old.lower()):
            out.append(Finding(cid, LEFTOVER, service, resource, old,
                               "named by the naming scheme before issue 23 and recorded by no ledger row: delete it by "
                               "hand once you have checked it is not in use", repairable=False))
    return out
