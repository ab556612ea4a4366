"""Listen on a subscription of the result-events topic and print what the CRM would receive.

    python -m devtools.listen                          # every result event, until Ctrl-C
    python -m devtools.listen --customer acme --count 1 --timeout 30
    python -m devtools.listen --json                   # one CloudEvent per line, as received

The topic is the RESULT_EVENTS_TOPIC setting (default customer-lifecycle); the local stack's subscription is
``audit`` (in Azure the CRM's is ``crm``). Messages are received and completed, as a consumer would, so each is
printed once; --peek only looks. Settings come from the environment or local.settings.json.
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


def receive_results(values: Mapping[str, str], *, subscription: str = DEFAULT_SUBSCRIPTION,
                    customer: str | None = None, max_wait: float = 5.0, peek: bool = False,
                    topic: str | None = None) -> Iterator[dict]:
    """Yield the result events on ``subscription`` (parsed CloudEvents, ``customer``'s only when given) until none
    arrives for ``max_wait`` seconds. Received messages are completed (those of other customers too: a listener
    filtered by customer still consumes the subscription)."""
    from azure.servicebus import ServiceBusReceiveMode

    from shared.adapters.servicebus_client import service_bus_client

    settings = ServiceBusSettings.load(values)
    topic = topic or settings.result_events_topic
    mode = ServiceBusReceiveMode.PEEK_LOCK if peek else ServiceBusReceiveMode.RECEIVE_AND_DELETE
    with service_bus_client(settings.service_bus, default_client_id=values.get("AZURE_CLIENT_ID")) as client:
        with client.get_subscription_receiver(topic, subscription, receive_mode=mode,
                                              max_wait_time=max_wait) as receiver:
            while True:
                if peek:
                    batch = receiver.peek_messages(max_message_count=50)
                else:
                    batch = receiver.receive_messages(max_message_count=50, max_wait_time=max_wait)
                if not batch:
                    return
                for message in batch:
                    try:
                        event = json.loads(b"".join(message.body))
                    except (ValueError, TypeError):
                        event = {"type": "(not JSON)", "id": message.message_id, "data": {}}
                    if customer is None or (event.get("data") or {}).get("customerId") == customer:
                        yield event
                if peek:
                    return


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
    p.add_argument("--customer", metavar="ID", help="print only this customer's events")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("--timeout", type=float,
                   help="stop when no event arrives for this many seconds (default: listen until Ctrl-C)")
    p.add_argument("--peek", action="store_true", help="look without receiving (the events stay for the CRM)")
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
    printed = 0
    deadline_wait = args.timeout if args.timeout is not None else 30.0
    try:
        while True:
            for event in receive_results(values, subscription=args.subscription, customer=args.customer,
                                         max_wait=deadline_wait, peek=args.peek, topic=args.topic):
                print(json.dumps(event, ensure_ascii=False) if args.json else one_line(event), flush=True)
                printed += 1
                if args.count is not None and printed >= args.count:
                    return 0
            if args.timeout is not None or args.peek:
                return 0 if args.count is None else 1  # fewer than --count arrived in time
            time.sleep(0.1)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
