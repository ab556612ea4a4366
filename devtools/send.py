"""Send customer events to the queue, as the CRM would.

    python -m devtools.send created --customer acme --profile oem
    python -m devtools.send updated --customer acme --display-name "Acme Group" --plan premium
    python -m devtools.send removed --customer acme
    python -m devtools.send invalid                 # an event the app must dead-letter with a clear reason
    python -m devtools.send file schemas/samples/customer-created-oem.json [--keep [--new-message-id]]

Each event gets a fresh id and the current time unless --keep is given (a resent event keeps both, and the app
treats it as a duplicate; add --new-message-id, or Service Bus duplicate detection drops the resend before the
app sees it). The message carries MessageId = event id, SessionId = customer id and content type
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


def build_event(kind: str, customer: str, profile: str | None = "oem", display_name: str | None = None,
                redirect_uris: list[str] | None = None, prefix: str = "", plan: str | None = None) -> dict:
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/devtools/send",
             "time": now_iso(), "datacontenttype": "application/json"}
    if kind == "created":
        data = {"customerId": customer, "displayName": display_name or f"{customer.title()} Ltd", "profile": profile}
        if redirect_uris:
            data["redirectUris"] = redirect_uris
        event.update(type=f"{prefix}customer.created", data=data)
    elif kind == "updated":
        # Only what is given changes.
        data = {"customerId": customer, "displayName": display_name, "profile": profile, "plan": plan,
                "redirectUris": redirect_uris or None}
        event.update(type=f"{prefix}customer.updated", data={k: v for k, v in data.items() if v is not None})
    elif kind == "removed":
        event.update(type=f"{prefix}customer.removed", data={"customerId": customer})
    elif kind == "invalid":
        # No profile: the app must refuse it and say which field broke which rule.
        event.update(type=f"{prefix}customer.created", data={"customerId": customer, "displayName": "No Profile"})
    else:
        raise ValueError(kind)
    return event


def send_events(events: list[dict], values: Mapping[str, str], queue: str | None = None,
                message_ids: list[str] | None = None, *, retries: int | None = None) -> None:
    """Send ``events`` to the app's queue, resolved from ``values`` by the app's own settings code. The message id
    is the event id unless ``message_ids`` gives others; ``retries``: the SDK's retry_total (default: the SDK's),
    which the command line keeps short so that a stack that is not running is reported within seconds."""
    from azure.servicebus import ServiceBusMessage

    from shared.adapters.servicebus_client import service_bus_client

    settings = ServiceBusSettings.load({**values, **({"CUSTOMER_EVENTS_QUEUE": queue} if queue else {})})
    options = {"retry_total": retries, "retry_backoff_factor": 0.5} if retries is not None else {}
    with service_bus_client(settings.service_bus, default_client_id=values.get("AZURE_CLIENT_ID"), **options) as client:
        with client.get_queue_sender(settings.customer_events_queue) as sender:
            for i, event in enumerate(events):
                customer = (event.get("data") or {}).get("customerId")
                message_id = message_ids[i] if message_ids else str(event.get("id") or uuid.uuid4())
                sender.send_messages(ServiceBusMessage(
                    json.dumps(event), message_id=message_id,
                    session_id=customer if isinstance(customer, str) else None,
                    content_type="application/cloudevents+json", subject=str(event.get("type"))))


def _known_profiles() -> str:
    """The profiles of the repository's config/client_profiles.toml, for the help text (the app may read another)."""
    try:
        import tomllib
        with open(APP_ROOT / "config" / "client_profiles.toml", "rb") as f:
            return ", ".join(tomllib.load(f).get("profiles", {}))
    except (OSError, ValueError):
        return "see config/client_profiles.toml"


DUPLICATE_WARNING = """\
warning: --keep sends each event with its own id as the Service Bus message id. The queue has duplicate detection
(10 minutes on the local stack, RequiresDuplicateDetection in infra/ for Azure): a message id it has seen within
that window is accepted and silently dropped, and the app never sees it. To make the app see the same event again
(its own duplicate handling), add --new-message-id: the event keeps its id, the message gets a fresh one."""


class UsageError(Exception):
    pass


def _read_events(path: Path) -> list[dict]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory; give a JSON file (samples: schemas/samples/)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    events = doc if isinstance(doc, list) else [doc]
    if not events or not all(isinstance(e, dict) for e in events):
        raise UsageError(f"{path} must hold one event (a JSON object) or a list of them")
    return events


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="python -m devtools.send", description=__doc__, formatter_class=fmt)
    p.add_argument("--settings", type=Path,
                   help="local.settings.json to read (default: the repository's, written by `make up`)")
    p.add_argument("--queue", help="queue name (default: the CUSTOMER_EVENTS_QUEUE setting)")
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    sp = sub.add_parser("created", help="send a customer.created event",
                        description="Send a customer.created event: the app creates the customer's Auth0 "
                                    "application, Key Vault secret and APIM entries for the profile.")
    sp.add_argument("--customer", required=True, metavar="ID", help="customer id (required), e.g. acme")
    sp.add_argument("--profile", required=True,
                    help=f"client profile (required); the repository's: {_known_profiles()}. An unknown one is "
                         "sent as given: the app refuses it and the event is dead-lettered")
    sp.add_argument("--display-name", help="display name (default: '<Customer> Ltd')")
    sp.add_argument("--redirect-uri", action="append", dest="redirect_uris", metavar="URL",
                    help="redirect URI, repeatable (for profiles that take them, e.g. partner-spa; default: none)")
    sp = sub.add_parser("updated", help="send a customer.updated event",
                        description="Send a customer.updated event: the app changes the customer's Auth0 "
                                    "application, grant and APIM entries in place. Only the options given change.")
    sp.add_argument("--customer", required=True, metavar="ID", help="customer id (required)")
    sp.add_argument("--profile", help="a new client profile of the same kind (confidential or public)")
    sp.add_argument("--display-name", help="a new display name")
    sp.add_argument("--plan", help="a new plan (a profile's plans may grant other scopes)")
    sp.add_argument("--redirect-uri", action="append", dest="redirect_uris", metavar="URL",
                    help="the new redirect URIs, repeatable (they replace the current ones)")
    sp = sub.add_parser("removed", help="send a customer.removed event",
                        description="Send a customer.removed event: the app removes everything it created for "
                                    "the customer.")
    sp.add_argument("--customer", required=True, metavar="ID", help="customer id (required)")
    sp = sub.add_parser("invalid", help="send an event the app must refuse (no profile)",
                        description="Send a customer.created event without data.profile: the app refuses it, "
                                    "records the reason in its ledger and dead-letters it on its first delivery "
                                    "(reason InvalidEvent, the rule as description).")
    sp.add_argument("--customer", default="hooli", metavar="ID", help="customer id (default: %(default)s)")
    sp = sub.add_parser("file", help="send the event(s) in a JSON file",
                        description="Send the event in a JSON file (one event, or a list of them). Each event gets "
                                    "a fresh id and the current time unless --keep is given. Samples: "
                                    "schemas/samples/")
    sp.add_argument("path", type=Path, help="JSON file, e.g. schemas/samples/customer-created-oem.json")
    sp.add_argument("--keep", action="store_true",
                    help="keep the file's id and time (default: fresh ones); see the duplicate-detection warning")
    sp.add_argument("--new-message-id", action="store_true",
                    help="with --keep: send under a fresh message id, so Service Bus does not drop a resend and "
                         "the app sees the duplicate event (default: message id = event id)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.settings is not None and not args.settings.is_file():
            raise UsageError(f"no such settings file: {args.settings}")
        settings = tool_values(args.settings)
        try:
            prefix = ServiceBusSettings.load(settings).event_type_prefix
        except (SettingsError, ValueError) as exc:
            from emulators.appsettings import tool_advice
            print(f"cannot send: {exc}\n{tool_advice(args.settings)}", file=sys.stderr)
            return 2
        message_ids = None
        if args.kind == "file":
            events = _read_events(args.path)
            if not args.keep:
                for e in events:
                    e["id"], e["time"] = str(uuid.uuid4()), now_iso()
            elif args.new_message_id:
                message_ids = [str(uuid.uuid4()) for _ in events]
            else:
                print(DUPLICATE_WARNING, file=sys.stderr)
        else:
            extra = {}
            if args.kind == "created":
                extra = dict(profile=args.profile, display_name=args.display_name, redirect_uris=args.redirect_uris)
            elif args.kind == "updated":
                extra = dict(profile=args.profile, display_name=args.display_name, redirect_uris=args.redirect_uris,
                             plan=args.plan)
            events = [build_event(args.kind, args.customer, prefix=prefix, **extra)]
    except UsageError as exc:
        print(f"cannot send: {exc}", file=sys.stderr)
        return 2
    try:
        send_events(events, settings, args.queue, message_ids=message_ids, retries=1)
    except Exception as exc:  # noqa: BLE001 - reported below without a traceback; the SDK's types vary
        from azure.servicebus.exceptions import ServiceBusError
        if not isinstance(exc, (ServiceBusError, OSError)):
            raise
        namespace = ServiceBusSettings.load(settings).service_bus.namespace or "the namespace"
        print(f"cannot send: Service Bus at {namespace} did not take the message ({type(exc).__name__}: "
              f"{_first_line(exc)})\nis the local stack running? `python -m emulators status` tells; "
              "`make up` (or `make run`) starts it", file=sys.stderr)
        return 3
    for e, mid in zip(events, message_ids or [None] * len(events)):
        extra = f" message-id={mid}" if mid else ""
        print(f"sent {e.get('type')} id={e.get('id')} customer={(e.get('data') or {}).get('customerId')}{extra}")
    return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"


if __name__ == "__main__":
    sys.exit(main())
