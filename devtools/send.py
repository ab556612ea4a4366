"""Send customer events to the queue, as the CRM would.

    python -m devtools.send created --customer acme --profile oem
    python -m devtools.send removed --customer acme
    python -m devtools.send invalid                 # an event the app must dead-letter with a clear reason
    python -m devtools.send file schemas/samples/customer-created-oem.json [--keep]

Each event gets a fresh id and the current time unless --keep is given (a resent event keeps both, and the app
treats it as a duplicate). The message carries MessageId = event id, SessionId = customer id and content type
application/cloudevents+json, as the README asks of senders. Settings come from the environment or
local.settings.json (ServiceBusConnection, CUSTOMER_EVENTS_QUEUE).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import uuid
from pathlib import Path

from .settings_file import ROOT, load_settings

SAMPLES = ROOT / "schemas" / "samples"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_event(kind: str, customer: str, profile: str = "oem", display_name: str | None = None,
                redirect_uris: list[str] | None = None, prefix: str = "") -> dict:
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/devtools/send",
             "time": now_iso(), "datacontenttype": "application/json"}
    if kind == "created":
        data = {"customerId": customer, "displayName": display_name or f"{customer.title()} Ltd", "profile": profile}
        if redirect_uris:
            data["redirectUris"] = redirect_uris
        event.update(type=f"{prefix}customer.created", data=data)
    elif kind == "removed":
        event.update(type=f"{prefix}customer.removed", data={"customerId": customer})
    elif kind == "invalid":
        # No profile: the app must refuse it and say which field broke which rule.
        event.update(type=f"{prefix}customer.created", data={"customerId": customer, "displayName": "No Profile"})
    else:
        raise ValueError(kind)
    return event


def service_bus_client(settings: dict[str, str]):
    """The namespace the app listens to: ServiceBusConnection (a connection string), or
    ServiceBusConnection__fullyQualifiedNamespace with DefaultAzureCredential, as the Functions host reads them."""
    from azure.servicebus import ServiceBusClient

    if settings.get("ServiceBusConnection"):
        return ServiceBusClient.from_connection_string(settings["ServiceBusConnection"])
    namespace = settings.get("ServiceBusConnection__fullyQualifiedNamespace")
    if not namespace:
        raise SystemExit("neither ServiceBusConnection nor ServiceBusConnection__fullyQualifiedNamespace is set: "
                         "start the local stack (`make up`) or set one in the environment")
    from azure.identity import DefaultAzureCredential
    return ServiceBusClient(namespace, DefaultAzureCredential())


def send_events(events: list[dict], settings: dict[str, str], queue: str | None = None) -> None:
    from azure.servicebus import ServiceBusMessage

    queue = queue or settings.get("CUSTOMER_EVENTS_QUEUE", "customer-events")
    with service_bus_client(settings) as client:
        with client.get_queue_sender(queue) as sender:
            for event in events:
                customer = (event.get("data") or {}).get("customerId")
                sender.send_messages(ServiceBusMessage(
                    json.dumps(event), message_id=str(event.get("id") or uuid.uuid4()),
                    session_id=customer if isinstance(customer, str) else None,
                    content_type="application/cloudevents+json", subject=str(event.get("type"))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.send", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", help="local.settings.json to read (default: the repository's)")
    p.add_argument("--queue", help="queue name (default: CUSTOMER_EVENTS_QUEUE)")
    sub = p.add_subparsers(dest="kind", required=True)
    for kind in ("created", "removed", "invalid"):
        sp = sub.add_parser(kind, help=f"send a {kind} event")
        sp.add_argument("--customer", default="acme")
        if kind == "created":
            sp.add_argument("--profile", default="oem")
            sp.add_argument("--display-name")
            sp.add_argument("--redirect-uri", action="append", dest="redirect_uris")
    sp = sub.add_parser("file", help="send the event in a JSON file (one event, or a list)")
    sp.add_argument("path", type=Path)
    sp.add_argument("--keep", action="store_true", help="keep the file's id and time")
    args = p.parse_args(argv)
    settings = load_settings(args.settings)
    prefix = settings.get("EVENT_TYPE_PREFIX", "")
    if args.kind == "file":
        doc = json.loads(args.path.read_text())
        events = doc if isinstance(doc, list) else [doc]
        if not args.keep:
            for e in events:
                e["id"], e["time"] = str(uuid.uuid4()), now_iso()
    else:
        extra = {}
        if args.kind == "created":
            extra = dict(profile=args.profile, display_name=args.display_name, redirect_uris=args.redirect_uris)
        events = [build_event(args.kind, args.customer, prefix=prefix, **extra)]
    send_events(events, settings, args.queue)
    for e in events:
        print(f"sent {e.get('type')} id={e.get('id')} customer={(e.get('data') or {}).get('customerId')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
