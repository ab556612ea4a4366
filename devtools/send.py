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
from typing import Mapping

from shared.settings import APP_ROOT, ServiceBusSettings, SettingsError, tool_values

SAMPLES = APP_ROOT / "schemas" / "samples"


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


def send_events(events: list[dict], values: Mapping[str, str], queue: str | None = None) -> None:
    """Send ``events`` to the app's queue, resolved from ``values`` by the app's own settings code."""
    from azure.servicebus import ServiceBusMessage

    from shared.adapters.servicebus_client import service_bus_client

    settings = ServiceBusSettings.load({**values, **({"CUSTOMER_EVENTS_QUEUE": queue} if queue else {})})
    with service_bus_client(settings.service_bus, default_client_id=values.get("AZURE_CLIENT_ID")) as client:
        with client.get_queue_sender(settings.customer_events_queue) as sender:
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
    try:
        settings = tool_values(args.settings)
        prefix = ServiceBusSettings.load(settings).event_type_prefix
    except (SettingsError, ValueError) as exc:
        print(f"cannot send: {exc}\nstart the local stack (`make up`) or set ServiceBusConnection", file=sys.stderr)
        return 2
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
