"""Listen on a subscription of the result-events topic and print what the CRM would receive.

    python -m devtools.listen                          # every result event, until Ctrl-C (they are consumed)
    python -m devtools.listen --customer acme --count 1 --timeout 30   # acme's only; the others stay
    python -m devtools.listen --json                   # one CloudEvent per line, as received

The topic is the RESULT_EVENTS_TOPIC setting (default customer-lifecycle); the local stack's subscription is
``audit`` (in Azure the CRM's is ``crm``). Without --customer the events are received and completed, as the CRM
would, so each is printed once. With --customer, or --peek, the listener only browses (peek): it prints the
customer's events, old and new, and consumes nothing, so the other customers' events (and this customer's) stay on
the subscription for the CRM and for other listeners. Settings come from the environment or local.settings.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping

from shared.settings import ServiceBusSettings, SettingsError, tool_values

DEFAULT_SUBSCRIPTION = "audit"
#: the data fields shown in the one-line form, in this order (the rest is in --json)
SHOWN = ("auth0ClientId", "profile", "plan", "keyVaultSecretUri", "keyVaultSecretVersion", "apimSubscriptionId",
         "apimAuthorizationServerId", "changed", "scopes", "reasonCode", "rule", "deadLettered", "finding",
         "service", "resource", "detail")
#: how often a browsing listener looks for new events (peek does not wait for them)
BROWSE_INTERVAL = 0.5


def _event(message) -> dict:
    try:
        return json.loads(b"".join(message.body))
    except (ValueError, TypeError):
        return {"type": "(not JSON)", "id": message.message_id, "data": {}}


def _of(event: dict, customer: str | None) -> bool:
    return customer is None or (event.get("data") or {}).get("customerId") == customer


def _receiver(values: Mapping[str, str], subscription: str, topic: str | None, **options):
    from shared.adapters.servicebus_client import service_bus_client

    settings = ServiceBusSettings.load(values)
    client = service_bus_client(settings.service_bus, default_client_id=values.get("AZURE_CLIENT_ID"))
    return client, client.get_subscription_receiver(topic or settings.result_events_topic, subscription, **options)


def receive_results(values: Mapping[str, str], *, subscription: str = DEFAULT_SUBSCRIPTION, max_wait: float = 5.0,
                    topic: str | None = None) -> Iterator[dict]:
    """Receive and complete (consume) every result event on ``subscription``, yielding each (a parsed
    CloudEvent), until none arrives for ``max_wait`` seconds: what the CRM does."""
    from azure.servicebus import ServiceBusReceiveMode

    client, receiver = _receiver(values, subscription, topic, max_wait_time=max_wait,
                                 receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)
    with client, receiver:
        while batch := receiver.receive_messages(max_message_count=50, max_wait_time=max_wait):
            yield from map(_event, batch)


def browse_results(values: Mapping[str, str], *, subscription: str = DEFAULT_SUBSCRIPTION,
                   customer: str | None = None, max_wait: float = 5.0, topic: str | None = None) -> Iterator[dict]:
    """Yield the result events on ``subscription`` (``customer``'s only, when given) by browsing: nothing is
    locked or consumed. Follows the subscription from its oldest message, and stops once no new event of the
    customer has appeared for ``max_wait`` seconds (0: after what is there now; infinity: until interrupted)."""
    client, receiver = _receiver(values, subscription, topic)
    cursor, last_seen = 0, time.monotonic()
    with client, receiver:
        while True:
            batch = receiver.peek_messages(max_message_count=50, sequence_number=cursor)
            for message in batch:
                cursor = max(cursor, message.sequence_number + 1)
                event = _event(message)
                if _of(event, customer):
                    last_seen = time.monotonic()
                    yield event
            if batch:
                continue
            if time.monotonic() - last_seen >= max_wait:
                return
            time.sleep(BROWSE_INTERVAL)


def one_line(event: dict) -> str:
    data = event.get("data") or {}
    parts = [f"{event.get('time', '-')}", f"{event.get('type', '?')}", f"customer={data.get('customerId') or '-'}",
             f"source-event={data.get('sourceEventId') or '-'}"]
    for key in SHOWN:
        value = data.get(key)
        if value is not None and value != []:
            parts.append(f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devtools.listen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", type=Path, help="local.settings.json to read (default: the repository's)")
    p.add_argument("--subscription", default=DEFAULT_SUBSCRIPTION, help="subscription (default: %(default)s)")
    p.add_argument("--topic", help="topic (default: the RESULT_EVENTS_TOPIC setting)")
    p.add_argument("--customer", metavar="ID",
                   help="print only this customer's events, by browsing: nothing is consumed, every event stays "
                        "on the subscription (implies --peek)")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("--timeout", type=float,
                   help="stop when no event arrives for this many seconds (default: listen until Ctrl-C)")
    p.add_argument("--peek", action="store_true",
                   help="browse without receiving: the events stay for the CRM (stops after what is there now "
                        "unless --timeout or --count says to wait for more)")
    p.add_argument("--json", action="store_true", help="print each CloudEvent as one JSON line")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    values = tool_values(args.settings)
    try:
        ServiceBusSettings.load(values)
    except (SettingsError, ValueError) as exc:
        from emulators.appsettings import tool_advice
        print(f"cannot listen: {exc}\n{tool_advice(args.settings)}", file=sys.stderr)
        return 2
    browse = args.peek or args.customer is not None
    if browse:
        print(f"browsing {args.subscription} (peek): nothing is consumed, the events stay on the subscription",
              file=sys.stderr, flush=True)
    # Without --timeout: --peek alone shows what is there now; a listener (by customer or not) goes on until Ctrl-C.
    if args.timeout is not None:
        wait = args.timeout
    elif args.peek and args.customer is None and args.count is None:
        wait = 0.0
    else:
        wait = float("inf") if browse else 30.0
    printed = 0
    try:
        while True:
            if browse:
                events = browse_results(values, subscription=args.subscription, customer=args.customer,
                                        max_wait=wait, topic=args.topic)
            else:
                events = receive_results(values, subscription=args.subscription, max_wait=wait, topic=args.topic)
            for event in events:
                print(json.dumps(event, ensure_ascii=False) if args.json else one_line(event), flush=True)
                printed += 1
                if args.count is not None and printed >= args.count:
                    return 0
            if args.timeout is not None or browse:
                return 0 if args.count is None else 1  # fewer than --count arrived in time
            time.sleep(0.1)
    except KeyboardInterrupt:
        return 0

if __name__ == "__main__":
    sys.exit(main())
