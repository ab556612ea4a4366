"""`make demo`: a whole customer lifecycle, unattended, on a private local stack.

Starts the local stack and the local Functions host in this process, sends events with the real Service Bus SDK
as the CRM would, and after each step prints what every service holds: acme created (profile oem), the same event
again (a duplicate: nothing new), initech created (partner-spa, a public client), acme removed, and an invalid event
(dead-lettered with its reason). Takes about 10 s; the stack lives in a temporary folder removed at the end, so
`make run`'s stack and its state are not touched. Exits 0 when every step ended as it must, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from .send import build_event, send_events
from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


class DemoFailed(Exception):
    pass


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def run_demo() -> int:
    from emulators.stack import LocalStack, StackOptions

    # The folder holds the stack's TLS key and its management credentials: removed however the demo ends.
    folder = Path(tempfile.mkdtemp(prefix="demo-stack-"))
    try:
        print(f"starting the local stack in {folder} ...", flush=True)
        stack = LocalStack(folder, StackOptions()).start()
        try:
            return _run_demo_on(stack)
        finally:
            stack.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_demo_on(stack) -> int:
    from emulators.inspect import view_customers
    from funchost import LocalFunctionsHost
    from shared.adapters.table_ledger import TableLedger
    from shared.settings import LedgerSettings

    settings = dict(stack.settings)
    settings["RETRY_BASE_SECONDS"] = "0.5"
    host = LocalFunctionsHost(str(ROOT), settings, functions=["customer_events"])
    host.start()
    ledger = TableLedger.from_settings(LedgerSettings.load(settings))
    customers = ["acme", "initech", "hooli"]

    def show(*only: str) -> None:
        view = view_customers(stack, list(only or customers))
        for cid in only or customers:
            record = ledger.get_customer(cid)[0]
            status = record.status if record else "(no ledger row)"
            print(f"  ledger   {cid}: {status}" + (f" — last error: {record.last_error}"
                                                   if record and record.last_error else ""))
            print(f"  services {view.of(cid).line()}")
        if view.unattributed:
            print(f"  unattributed resources: {view.unattributed}")

    def status(cid: str) -> str | None:
        record = ledger.get_customer(cid)[0]
        return record.status if record else None

    try:
        _section("1. customer.created for acme (profile oem: third-party machine-to-machine)")
        created = build_event("created", "acme", profile="oem", display_name="Acme Devices")
        send_events([created], settings)
        wait_until(lambda: status("acme") == "provisioned", timeout=60,
                   what="acme to be provisioned", error=DemoFailed)
        show("acme")
        acme = view_customers(stack, ["acme"]).of("acme")
        if len(acme.auth0_applications) != 1 or not acme.secrets or acme.subscriptions.get("customer-acme") != "active":
            raise DemoFailed("acme is not fully provisioned")

        _section("2. the same event delivered again (a CRM resend under a new message id)")
        _resend(settings, created)
        wait_until(lambda: any(a.attempts >= 2 for a in ledger.list_audit("acme")), timeout=60,
                   what="the duplicate to be audited", error=DemoFailed)
        print("  the app recognised the event id it had applied: nothing was created")
        show("acme")
        if len(view_customers(stack, ["acme"]).of("acme").auth0_applications) != 1:
            raise DemoFailed("a duplicate delivery created a second application")

        _section("3. customer.created for initech (profile partner-spa: public client, no secret anywhere)")
        send_events([build_event("created", "initech", profile="partner-spa", display_name="Initech Dashboard",
                                 redirect_uris=["https://app.initech.example/callback"])], settings)
        wait_until(lambda: status("initech") == "provisioned", timeout=60,
                   what="initech to be provisioned", error=DemoFailed)
        show("initech")

        _section("4. customer.removed for acme")
        send_events([build_event("removed", "acme")], settings)
        wait_until(lambda: status("acme") == "removed", timeout=60,
                   what="acme to be removed", error=DemoFailed)
        show("acme")
        if view_customers(stack, ["acme"]).of("acme").live:
            raise DemoFailed("acme still has live resources after its removal")

        _section("5. a bad event: customer.created without a profile")
        bad = build_event("invalid", "hooli")
        send_events([bad], settings)
        dead = wait_until(lambda: [m for m in _dead_letters(settings) if m.message_id == bad["id"]], timeout=60,
                          what="the bad event to reach the dead-letter queue", error=DemoFailed)
        reasons = [a.reason for a in ledger.list_audit("hooli") if a.event_id == bad["id"]]
        print(f"  dead-letter queue: message {bad['id']} reason={dead[0].dead_letter_reason} "
              f"description={dead[0].dead_letter_error_description!r}")
        print(f"  ledger's reason:   {reasons[0] if reasons else '(none)'}")
        print("  (`python -m opstool list` shows both side by side)")
        show("hooli")

        _section("summary")
        print(f"  function invocations: {invocations_line(host.invocations.get('customer_events', {}))}")
        show()
        print("\ndemo finished: every step ended as expected")
        return 0
    except DemoFailed as exc:
        print(f"\ndemo FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        host.stop(10)
        from shared import bootstrap
        bootstrap.close()  # the app's senders
        # The host's idle receivers close a moment after it stops: the stack waits for them rather than force them
        # closed (which the SDK would log as "amqp:connection:forced" warnings, one per receiver).
        try:
            wait_until(lambda: stack.servicebus.open_connections() == 0, timeout=10, what="the clients to close")
        except AssertionError:
            pass  # the stack closes the rest as it stops


def invocations_line(counts: dict) -> str:
    """The host's invocation counters in words: the bad event is a success, since the app dead-letters it itself
    on its first delivery; a failure is an invocation that raised (the host abandoned its message)."""
    succeeded, failed = counts.get("succeeded", 0), counts.get("failed", 0)
    line = (f"{succeeded} succeeded (the bad event among them: the app dead-letters it itself on its first "
            f"delivery), {failed} failed")
    return line + (" (an invocation that raised: its message was abandoned and delivered again)" if failed else "")


def _resend(settings: dict, event: dict) -> None:
    from azure.servicebus import ServiceBusClient, ServiceBusMessage
    with ServiceBusClient.from_connection_string(settings["ServiceBusConnection"]) as client:
        with client.get_queue_sender(settings["CUSTOMER_EVENTS_QUEUE"]) as sender:
            sender.send_messages(ServiceBusMessage(json.dumps(event), message_id=str(uuid.uuid4()),
                                                   session_id=event["data"]["customerId"]))


def _dead_letters(settings: dict):
    from azure.servicebus import ServiceBusClient, ServiceBusSubQueue
    with ServiceBusClient.from_connection_string(settings["ServiceBusConnection"]) as client:
        with client.get_queue_receiver(settings["CUSTOMER_EVENTS_QUEUE"],
                                       sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
            return receiver.peek_messages(max_message_count=100)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    # The host's own invocation lines stay visible; the app's step lines would bury the summary.
    logging.basicConfig(level=logging.WARNING, format="  %(levelname)s %(name)s: %(message)s")
    logging.getLogger("customer_provisioning").setLevel(logging.ERROR)
    logging.getLogger("funchost").setLevel(logging.CRITICAL)  # the bad event's tracebacks: the summary says it
    return run_demo()


if __name__ == "__main__":
    sys.exit(main())
