"""A world of fakes for the service-layer tests: the fakes sharing one call log and clock, the profiles, event
builders, a normalised snapshot of everything (to compare end states) and an orphan finder."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from shared.domain.events import (CredentialsRotationRequested, CustomerCreated, CustomerRemoved, CustomerUpdated,
                                    parse_event)
from shared.domain.profiles import parse_profiles
from shared.domain.records import PROVISIONED
from shared.service_layer.provisioning import ProvisioningOptions, ProvisioningService
from tests.fakes import (CallLog, FakeApiGateway, FakeClock, FakeIdentityProvider, FakeLedger, FakeResultPublisher,
                         FakeSecretStore)

ROOT = Path(__file__).resolve().parents[2]
API = "https://api.contoso.example/"
DOMAIN = "contoso.eu.auth0.com"
VAULT = "https://kv-customers.vault.azure.net/"
T0 = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone.utc)

EXTRA_PROFILES = """
[profiles.m2m-shared]
description = "Machine-to-machine client without its own API Management authorization server entry."
app_type = "non_interactive"
grant_types = ["client_credentials"]
token_endpoint_auth_method = "client_secret_basic"
first_party = false
token_lifetime = 600
audience = "${API_AUDIENCE}"
scopes = ["read:data"]
apim_product = "oem"
apim_authorization_server = "none"

[profiles.web-required]
description = "Web client that must come with redirect URIs."
app_type = "regular_web"
grant_types = ["authorization_code"]
token_endpoint_auth_method = "client_secret_post"
first_party = false
audience = "${API_AUDIENCE}"
scopes = ["read:data"]
apim_product = "partners"
redirect_uris = "required"
"""


def make_profiles():
    text = (ROOT / "config" / "client_profiles.toml").read_text(encoding="utf-8") + EXTRA_PROFILES
    return parse_profiles(text, env={"API_AUDIENCE": API})


def _iso(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def created(customer: str = "acme", event_id: str = "e-created", *, at: float = 0, profile: str = "oem",
            display_name: str = "Acme Corp", plan: str | None = None, redirect_uris: list[str] | None = None,
            email: str | None = None, existing_client_id: str | None = None) -> CustomerCreated:
    data = {"customerId": customer, "displayName": display_name, "profile": profile}
    if existing_client_id is not None:
        data["existingClientId"] = existing_client_id
    if plan is not None:
        data["plan"] = plan
    if redirect_uris is not None:
        data["redirectUris"] = redirect_uris
    if email is not None:
        data["contactEmail"] = email
    doc = {"specversion": "1.0", "id": event_id, "source": "/crm", "type": "customer.created", "time": _iso(at),
           "data": data}
    return parse_event(json.dumps(doc), now=T0 + dt.timedelta(days=1))


def removed(customer: str = "acme", event_id: str = "e-removed", *, at: float = 10,
            reason: str | None = None) -> CustomerRemoved:
    data = {"customerId": customer}
    if reason is not None:
        data["reason"] = reason
    doc = {"specversion": "1.0", "id": event_id, "source": "/crm", "type": "customer.removed", "time": _iso(at),
           "data": data}
    return parse_event(json.dumps(doc), now=T0 + dt.timedelta(days=1))


def rotation(customer: str = "acme", event_id: str = "e-rotate", *, at: float = 5,
             reason: str | None = None) -> CredentialsRotationRequested:
    data = {"customerId": customer}
    if reason is not None:
        data["reason"] = reason
    doc = {"specversion": "1.0", "id": event_id, "source": "/crm", "type": "customer.credentials-rotation-requested",
           "time": _iso(at), "data": data}
    return parse_event(json.dumps(doc), now=T0 + dt.timedelta(days=1))


def updated(customer: str = "acme", event_id: str = "e-updated", *, at: float = 5, **data) -> CustomerUpdated:
    """``data``: the camelCase data fields to change (displayName, profile, plan, redirectUris, contactEmail)."""
    doc = {"specversion": "1.0", "id": event_id, "source": "/crm", "type": "customer.updated", "time": _iso(at),
           "data": {"customerId": customer, **data}}
    return parse_event(json.dumps(doc), now=T0 + dt.timedelta(days=1))


class World:
    def __init__(self, *, limit: int | None = 10, other_servers: int = 0, purge: bool = False,
                 purge_protection: bool = False, max_parallel: int = 1, claim_ttl: float = 300.0,
                 results: bool = False):
        self.log = CallLog()
        self.clock = FakeClock()
        self.identity = FakeIdentityProvider(self.log)
        self.secrets = FakeSecretStore(self.log, purge_protection=purge_protection)
        self.gateway = FakeApiGateway(self.log, limit=limit, other_servers=other_servers,
                                      products={"oem", "partners"})
        self.ledger = FakeLedger(self.log, clock=self.clock)
        # The topic: off by default, so the call sequences the crash tests enumerate stay those of the services
        self.results = FakeResultPublisher(self.log) if results else None
        self.profiles = make_profiles()
        self.options = ProvisioningOptions(auth0_domain=DOMAIN, purge_deleted_secrets=purge, claim_ttl=claim_ttl,
                                           fence_guard=min(30.0, claim_ttl / 2),
                                           max_parallel_steps=max_parallel, keyvault_url=VAULT)

    def service(self, worker_id: str = "w1", *, max_parallel: int | None = None, **options) -> ProvisioningService:
        if max_parallel is not None:
            options["max_parallel_steps"] = max_parallel
        opts = ProvisioningOptions(**{**self.options.__dict__, **options})
        return ProvisioningService(identity=self.identity, secrets=self.secrets, gateway=self.gateway,
                                   ledger=self.ledger, profiles=self.profiles, options=opts, worker_id=worker_id,
                                   results=self.results)

    def expire_claims(self) -> None:
        self.clock.advance(self.options.claim_ttl + self.options.clock_skew + 1)

    # ---- what is there ------------------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Everything in every fake, with generated ids and versions replaced by stable symbols, so that two runs
        that reach the same state compare equal."""
        sym: dict[str, str] = {}
        for customer in sorted({a["spec"].client_metadata.get("customer_id", "?")
                                for a in self.identity.apps.values()}):
            for i, client_id in enumerate(self.identity.apps_of(customer), 1):
                sym[client_id] = f"app:{customer}#{i}"
        by_secret = {a["secret"]: f"secret-of:{sym[cid]}" for cid, a in self.identity.apps.items()}
        grant_sym = {gid: f"grant-of:{sym.get(g['client_id'], 'gone')}" for gid, g in self.identity.grants.items()}

        def s(value):
            return None if value is None else sym.get(value, f"unknown:{value}")

        ledger = {}
        for cid, r in self.ledger.customers.items():
            latest = self.secrets.latest(r.keyvault_secret_name) if r.keyvault_secret_name else None
            ledger[cid] = dict(
                status=r.status, profile=r.profile, display_name=r.display_name, client=s(r.auth0_client_id),
                grant=None if r.auth0_client_grant_id is None else grant_sym.get(r.auth0_client_grant_id, "unknown"),
                kv_name=r.keyvault_secret_name,
                kv_version=None if r.keyvault_secret_version is None else (
                    "latest" if latest and latest["version"] == r.keyvault_secret_version else "stale"),
                apim_server=r.apim_authorization_server_id, apim_subscription=r.apim_subscription_id,
                intent=r.auth0_create_intent, pending=r.pending_event_id, last_event_id=r.last_event_id,
                last_event_type=r.last_event_type, last_event_time=r.last_event_time, last_error=r.last_error,
                claim_owner=r.claim_owner, claim_expires=r.claim_expires)
        secrets = {}
        for name, entry in self.secrets.active.items():
            v = entry["versions"][-1]
            tags = dict(v["tags"])
            if "client_id" in tags:
                tags["client_id"] = s(tags["client_id"])
            secrets[name] = dict(value=by_secret.get(v["value"], "unknown-value"), content_type=v["content_type"],
                                 tags=tags)
        servers = {}
        for sid, spec in self.gateway.customer_servers().items():
            d = dict(spec.__dict__)
            d["client_id"] = s(spec.client_id)
            d["client_secret"] = None if spec.client_secret is None else by_secret.get(spec.client_secret, "unknown")
            servers[sid] = d
        apps = {}
        for client_id, a in self.identity.apps.items():
            spec = a["spec"]
            apps[sym[client_id]] = dict(spec.__dict__)
        return dict(
            ledger=ledger,
            audit={k: e.outcome for k, e in self.ledger.audits.items()},
            apps=apps,
            grants=sorted((grant_sym[gid], g["audience"], g["scopes"]) for gid, g in self.identity.grants.items()),
            secrets=secrets,
            deleted_secrets=self.secrets.deleted_names(),
            servers=servers,
            subscriptions={k: {**v, "display_name": s(v["display_name"])} for k, v in self.gateway.subscriptions.items()},
        )

    def orphans(self) -> list[str]:
        """Anything that exists in a service without a settled ledger row that owns it (or the reverse)."""
        problems: list[str] = []
        records = self.ledger.customers
        provisioned = {cid: r for cid, r in records.items() if r.status == PROVISIONED}
        for client_id, a in self.identity.apps.items():
            customer = a["spec"].client_metadata.get("customer_id")
            r = provisioned.get(customer)
            if r is None or r.auth0_client_id != client_id:
                problems.append(f"auth0 application {client_id} of {customer} is not the recorded one")
        for gid, g in self.identity.grants.items():
            if g["client_id"] not in self.identity.apps:
                problems.append(f"grant {gid} of deleted client {g['client_id']}")
            elif not any(r.auth0_client_grant_id == gid for r in provisioned.values()):
                problems.append(f"grant {gid} not recorded")
        for name, entry in self.secrets.active.items():
            owner = [r for r in provisioned.values() if (r.keyvault_secret_name or "").lower() == name]
            if not owner:
                problems.append(f"key vault secret {name} has no provisioned owner")
                continue
            r = owner[0]
            v = entry["versions"][-1]
            if r.auth0_client_id not in self.identity.apps or v["value"] != self.identity.secret_of(r.auth0_client_id):
                problems.append(f"key vault secret {name} does not hold the client's secret")
            if v["tags"].get("client_id") != r.auth0_client_id:
                problems.append(f"key vault secret {name} is tagged with another client")
        for sid, spec in self.gateway.customer_servers().items():
            owner = [r for r in provisioned.values() if r.apim_authorization_server_id == sid]
            if not owner or owner[0].auth0_client_id != spec.client_id:
                problems.append(f"authorization server {sid} has no provisioned owner with its client id")
        for sub in self.gateway.subscriptions:
            if not any(r.apim_subscription_id == sub for r in provisioned.values()):
                problems.append(f"subscription {sub} has no provisioned owner")
        for cid, r in records.items():
            if r.claim_owner is not None:
                problems.append(f"customer {cid} still claimed by {r.claim_owner}")
            if r.status != PROVISIONED:
                continue
            if r.auth0_client_id not in self.identity.apps:
                problems.append(f"customer {cid}: recorded client {r.auth0_client_id} does not exist")
            if r.auth0_client_grant_id not in self.identity.grants:
                problems.append(f"customer {cid}: recorded grant does not exist")
            if r.keyvault_secret_name and r.keyvault_secret_name.lower() not in self.secrets.active:
                problems.append(f"customer {cid}: recorded secret does not exist")
            if r.apim_authorization_server_id and r.apim_authorization_server_id not in self.gateway.servers:
                problems.append(f"customer {cid}: recorded authorization server does not exist")
            if r.apim_subscription_id not in self.gateway.subscriptions:
                problems.append(f"customer {cid}: recorded subscription does not exist")
        return problems

    def leftovers(self) -> list[str]:
        """What remains in any service (for single-customer tests)."""
        left = []
        if self.identity.apps:
            left.append("auth0 applications")
        if self.identity.grants:
            left.append("client grants")
        if self.secrets.names():
            left.append("key vault secrets")
        if self.gateway.customer_servers():
            left.append("authorization servers")
        if self.gateway.subscriptions:
            left.append("subscriptions")
        return left
