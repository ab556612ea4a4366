"""``python -m emulators show``: what the running stand-ins hold, per service, without reading their code.

Reads each stand-in's control API (``/_control/state``) and the stack's Service Bus view, and reduces them to what a
developer asks about: Auth0 applications (client id, name, customer, app type, grants) and organizations (name,
branding, enabled connections, the client grants associated with them), Key Vault secrets (names, versions, tags;
never values), APIM authorization servers and subscriptions (state, product) and, per queue, the active, scheduled
and dead-lettered counts with the dead-lettered messages' reasons. ``customer`` keeps only what belongs to one
customer (Auth0 ``client_metadata.customer_id``, an organization associated with that customer's grant or whose
metadata names it, the secret's ``customer_id`` tag, the APIM names the app derives from the customer id, the
messages' session id or, for result events, their ``customerId`` application property).
"""
from __future__ import annotations

import json
import urllib.request
from typing import Any

from shared.adapters.servicebus_client import portal_delivery_count

from .control import StandInControl


class StandInUnreachable(Exception):
    pass


def _state(info: dict, service: str) -> dict:
    svc = info["services"][service]
    try:
        return StandInControl(svc["url"], verify=info["ca_cert"], timeout=5).state()
    except OSError as exc:
        raise StandInUnreachable(f"{service} does not answer at {svc['url']} ({exc})") from exc


def _servicebus_snapshot(info: dict) -> dict | None:
    url = (info.get("servicebus") or {}).get("control")
    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except OSError as exc:
        raise StandInUnreachable(f"the Service Bus stand-in does not answer at {url} ({exc})") from exc


def _auth0(state: dict, customer: str | None) -> list[dict]:
    management = set(state.get("management_client_ids", []))
    grants: dict[str, list[dict]] = {}
    for grant in state.get("client_grants", []):
        grants.setdefault(grant.get("client_id"), []).append(
            {"audience": grant.get("audience"), "scope": list(grant.get("scope") or [])})
    apps = []
    for client in sorted(state.get("clients", []), key=lambda c: c.get("_seq", 0)):
        if client["client_id"] in management:
            continue  # the stack's own management client: not the app's doing
        metadata = client.get("client_metadata") or {}
        if customer is not None and metadata.get("customer_id") != customer:
            continue
        apps.append({"client_id": client["client_id"], "name": client.get("name"),
                     "customer": metadata.get("customer_id"), "profile": metadata.get("profile"),
                     "app_type": client.get("app_type"), "grant_types": list(client.get("grant_types") or []),
                     "api_grants": grants.get(client["client_id"], [])})
    return apps


def _organizations(state: dict, customer: str | None, customers_of_clients: dict[str, str]) -> list[dict]:
    """Each organization with its branding, enabled connections and associated client grants. Its customer is the
    one whose application its grants belong to, else the ``customer_id`` of its metadata (a hint the app writes)."""
    grants = {g["id"]: g for g in state.get("client_grants", [])}
    connections = {c["id"]: c.get("name") for c in state.get("connections", [])}
    out = []
    for org in sorted(state.get("organizations", []), key=lambda o: o.get("_seq", 0)):
        linked = [grants[a["grant_id"]] for a in state.get("organization_client_grants", [])
                  if a["organization_id"] == org["id"] and a["grant_id"] in grants]
        owners = {customers_of_clients.get(g.get("client_id")) for g in linked} - {None}
        owner = next(iter(owners)) if len(owners) == 1 else (org.get("metadata") or {}).get("customer_id")
        if customer is not None and owner != customer and customer not in owners:
            continue
        brand = org.get("branding") or {}
        out.append({"id": org["id"], "name": org.get("name"), "display_name": org.get("display_name"),
                    "customer": owner, "logo_url": brand.get("logo_url"), "colors": dict(brand.get("colors") or {}),
                    "connections": [connections.get(c["connection_id"], c["connection_id"])
                                    for c in state.get("organization_connections", [])
                                    if c["organization_id"] == org["id"]],
                    "client_grants": [{"client_id": g.get("client_id"), "audience": g.get("audience"),
                                       "organization_usage": g.get("organization_usage", "deny")} for g in linked]})
    return out


def _secret(name: str, record: dict) -> dict:
    versions = record.get("versions") or []
    latest = versions[-1] if versions else {}
    tags = dict(latest.get("tags") or {})
    # Never the value: names, versions, tags and flags only.
    return {"name": record.get("name", name), "customer": tags.get("customer_id"), "versions": len(versions),
            "enabled": latest.get("enabled"), "content_type": latest.get("contentType"), "tags": tags}


def _keyvault(state: dict, customer: str | None) -> tuple[list[dict], list[dict]]:
    live = [_secret(n, r) for n, r in sorted((state.get("secrets") or {}).items())]
    deleted = [_secret(n, r) for n, r in sorted((state.get("deleted") or {}).items())]
    if customer is not None:
        live = [s for s in live if s["customer"] == customer]
        deleted = [s for s in deleted if s["customer"] == customer]
    return live, deleted


def _apim(state: dict, customer: str | None, customers_of_clients: dict[str, str],
          known_customers: set[str]) -> tuple[list[dict], list[dict]]:
    from shared.domain import naming  # the app's rule for the names it gives APIM entries

    servers_by_customer = {naming.authorization_server_id(c).lower(): c for c in known_customers}
    subs_by_customer = {naming.subscription_id(c).lower(): c for c in known_customers}
    servers = []
    for name, body in sorted((state.get("authorizationServers") or {}).items()):
        props = body.get("properties") or {}
        owner = customers_of_clients.get(props.get("clientId")) or servers_by_customer.get(name.lower())
        servers.append({"name": name, "display_name": props.get("displayName"), "customer": owner,
                        "client_id": props.get("clientId"), "grant_types": list(props.get("grantTypes") or [])})
    subscriptions = []
    for name, body in sorted((state.get("subscriptions") or {}).items()):
        props = body.get("properties") or {}
        scope = props.get("scope") or ""
        product = scope.rsplit("/products/", 1)[1] if "/products/" in scope else scope or None
        subscriptions.append({"name": name, "display_name": props.get("displayName"),
                              "customer": subs_by_customer.get(name.lower()), "state": props.get("state"),
                              "product": product})
    if customer is not None:
        servers = [s for s in servers if s["customer"] == customer]
        subscriptions = [s for s in subscriptions if s["customer"] == customer]
    return servers, subscriptions


def _dead_lettered(message: dict) -> dict:
    # The sequence number is what `opstool replay --seq N` takes; the delivery count is the portal's (the first
    # delivery is 1), as opstool shows it, where the stand-in keeps the AMQP header's count of failed deliveries.
    return {"sequence_number": message.get("sequence_number"), "message_id": message.get("message_id"),
            "session_id": message.get("session_id"), "subject": message.get("subject"),
            "delivery_count": portal_delivery_count(message.get("delivery_count")),
            "reason": message.get("dead_letter_reason"), "description": message.get("dead_letter_error_description")}


def _of_customer(message: dict, customer: str) -> bool:
    """An event on the app's queue names its customer in the session id; a result event on the topic in its
    ``customerId`` application property (its subject is the event type)."""
    return customer in (message.get("session_id"), (message.get("application_properties") or {}).get("customerId"))


def _entity(view: dict, customer: str | None) -> dict:
    messages = view.get("messages") or []
    dead = view.get("dead_letter_messages") or []
    if customer is None:
        counts = {"active": view.get("active_count", 0), "scheduled": view.get("scheduled_count", 0),
                  "dead_lettered": view.get("dead_letter_count", 0), "locked": view.get("locked_count", 0),
                  "deferred": view.get("deferred_count", 0)}
    else:
        messages = [m for m in messages if _of_customer(m, customer)]
        dead = [m for m in dead if _of_customer(m, customer)]
        states = [m.get("state") for m in messages]
        counts = {"active": sum(s in ("active", "locked") for s in states),
                  "scheduled": states.count("scheduled"), "dead_lettered": len(dead),
                  "locked": states.count("locked"), "deferred": states.count("deferred")}
    return {**counts, "dead_letter_messages": [_dead_lettered(m) for m in dead]}


def _servicebus(snapshot: dict | None, customer: str | None) -> dict:
    if snapshot is None:
        return {"available": False,
                "note": "the app uses another Service Bus than the stand-in: look there (Service Bus Explorer)"}
    entities = {name: _entity(view, customer) for name, view in sorted(snapshot.get("queues", {}).items())}
    for topic, tview in sorted(snapshot.get("topics", {}).items()):
        for sub, view in sorted((tview.get("subscriptions") or {}).items()):
            entities[f"{topic}/subscriptions/{sub}"] = _entity(view, customer)
    return {"available": True, "namespace": snapshot.get("namespace"), "entities": entities}


def collect(info: dict, customer: str | None = None) -> dict[str, Any]:
    """What the stack described by ``info`` (its stack.json) holds, optionally for one customer only."""
    auth0_state = _state(info, "auth0")
    apps = _auth0(auth0_state, customer)
    secrets, deleted = _keyvault(_state(info, "keyvault"), customer)
    all_apps = _auth0(auth0_state, None)
    customers_of_clients = {a["client_id"]: a["customer"] for a in all_apps if a["customer"]}
    known = set(customers_of_clients.values()) | {s["customer"] for s in secrets + deleted if s["customer"]}
    if customer is not None:
        known.add(customer)
    servers, subscriptions = _apim(_state(info, "apim"), customer, customers_of_clients, known)
    return {"stack": {"pid": info.get("pid"), "folder": info.get("folder"), "persist": info.get("persist")},
            "gateway": {"api_url": (info.get("api") or {}).get("url"),
                        "url": (info.get("services", {}).get("gateway") or {}).get("url")},
            "customer": customer,
            "auth0": {"applications": apps,
                      "organizations": _organizations(auth0_state, customer, customers_of_clients)},
            "keyvault": {"secrets": secrets, "deleted_secrets": deleted},
            "apim": {"authorization_servers": servers, "subscriptions": subscriptions},
            "servicebus": _servicebus(_servicebus_snapshot(info), customer)}


def render(doc: dict) -> str:
    """The human-readable form of ``collect``'s result."""
    out: list[str] = []
    who = f" for customer {doc['customer']}" if doc.get("customer") else ""
    stack = doc.get("stack") or {}
    out.append(f"local stack (pid {stack.get('pid')}){who}")
    gateway = doc.get("gateway") or {}
    if gateway.get("api_url"):
        out.append(f"API gateway: {gateway['api_url']} (subscription key + Auth0 token; python -m devtools.call)")

    apps = doc["auth0"]["applications"]
    out.append(f"\nAuth0 applications: {len(apps)}")
    for a in apps:
        out.append(f"  {a['client_id']}  {a['name']!r}  customer={a['customer'] or '-'}  profile={a['profile'] or '-'}"
                   f"  app_type={a['app_type']}  grant_types={','.join(a['grant_types']) or '-'}")
        for g in a["api_grants"]:
            out.append(f"      API grant: {g['audience']}  scopes: {' '.join(g['scope']) or '-'}")

    orgs = doc["auth0"].get("organizations", [])
    if orgs:
        out.append(f"Auth0 organizations: {len(orgs)}")
        for o in orgs:
            colors = o["colors"]
            shown = f"{colors.get('primary')}/{colors.get('page_background')}" if colors else "-"
            out.append(f"  {o['id']}  {o['name']}  {o['display_name']!r}  customer={o['customer'] or '-'}  "
                       f"logo={o['logo_url'] or '-'}  colours={shown}")
            if o["connections"]:
                out.append(f"      connections: {', '.join(o['connections'])}")
            for g in o["client_grants"]:
                out.append(f"      M2M access: {g['client_id']} -> {g['audience']}  "
                           f"(organization_usage {g['organization_usage']})")

    kv = doc["keyvault"]
    out.append(f"\nKey Vault secrets: {len(kv['secrets'])} (values are never shown)")
    for s in kv["secrets"]:
        tags = " ".join(f"{k}={v}" for k, v in sorted(s["tags"].items())) or "-"
        state = "enabled" if s["enabled"] else "disabled"
        out.append(f"  {s['name']}  versions={s['versions']}  {state}  tags: {tags}")
    if kv["deleted_secrets"]:
        out.append(f"  soft-deleted: {', '.join(s['name'] for s in kv['deleted_secrets'])}")

    apim = doc["apim"]
    out.append(f"\nAPIM authorization servers: {len(apim['authorization_servers'])}")
    for s in apim["authorization_servers"]:
        out.append(f"  {s['name']}  {s['display_name']!r}  customer={s['customer'] or '-'}  "
                   f"client_id={s['client_id']}  grant_types={','.join(s['grant_types']) or '-'}")
    out.append(f"APIM subscriptions: {len(apim['subscriptions'])}")
    for s in apim["subscriptions"]:
        out.append(f"  {s['name']}  state={s['state']}  product={s['product'] or '-'}  "
                   f"customer={s['customer'] or '-'}")

    sb = doc["servicebus"]
    if not sb["available"]:
        out.append(f"\nService Bus: {sb['note']}")
    else:
        out.append(f"\nService Bus ({sb['namespace']}), messages{who}:")
        for name, e in sb["entities"].items():
            extra = "".join(f"  {k}={e[k]}" for k in ("locked", "deferred") if e[k])
            out.append(f"  {name}: active={e['active']}  scheduled={e['scheduled']}  "
                       f"dead-lettered={e['dead_lettered']}{extra}")
            for m in e["dead_letter_messages"]:
                out.append(f"      dead-lettered seq {m['sequence_number']}  {m['message_id']}  "
                           f"session={m['session_id'] or '-'}  "
                           f"{m['subject'] or '-'}  delivery count {m['delivery_count']}: {m['reason']}")
    return "\n".join(out)
