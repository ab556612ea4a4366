"""Command line of the ops tool: see ``python -m opstool --help`` and docs/RUNBOOK.md."""
from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from shared.domain.errors import ProvisioningError

from .context import Context, Declined
from .errors import (EXIT_BROKEN_PIPE, EXIT_CODES_HELP, EXIT_CONNECTION, EXIT_FAILED, EXIT_USAGE, UsageError,
                     is_connection_error, is_unreachable)
from .inspection import cmd_customers, cmd_list, cmd_show
from . import backfill, tenant
from .repair import cmd_export, cmd_purge, cmd_replay
from .rotate import cmd_rotate
from .output import emit, safe_text
from .replay import CRASH_ENV

DESCRIPTION = """\
Inspect and repair the customer-events dead-letter queue and the customers' resources; send operational events.

  list       what is dead-lettered and why (peek: nothing is locked or changed)
  show       one message in full, with the ledger's audit trail for its customer
  customers  the ledger's customers: status and last error (to find what is stuck, and to verify a replay)
  replay     send selected messages back to the queue (a copy with a new message id), then remove them
  export     write selected messages to a JSON Lines file (nothing is removed)
  purge      export selected messages to a file, then remove them
  rotate     ask the app to rotate a customer's client secret
  backfill   send customer.created events for the customers of a file, adopting what exists
  drift      compare the ledger with Auth0, Key Vault and APIM (--repair to repair)
  plan       what an event (or a repair of a customer) would create, adopt, update or delete; changes nothing
  tenant     plan / apply the Auth0 tenant's configuration: the API and its scopes, the app's Management API grant

Connection: --connection-string, or --namespace NAME (Microsoft Entra ID via DefaultAzureCredential), or
ServiceBusConnection from the environment or local.settings.json. Queue: --queue, else CUSTOMER_EVENTS_QUEUE,
else customer-events. The ledger (the app's own reasons) is read from LEDGER_CONNECTION / AzureWebJobsStorage or
LEDGER_TABLE_ENDPOINT, table LEDGER_TABLE; --no-ledger skips it. See docs/RUNBOOK.md.
"""
JSON_HELP = "JSON Lines on stdout: one object per message (then, for replay and purge, one summary object)"
SELECTION_HELP = """\
selection (replay, export, purge): --seq N (repeatable), the filters, or --all; --seq and filters combine (AND),
repeated filters of one kind combine (OR). Messages are chosen by browsing when the command starts; messages
dead-lettered later are not included."""



# ---- parser --------------------------------------------------------------------------------------------------------
def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    g.add_argument("--connection-string", metavar="CS",
                   help="Service Bus connection string (prefer the ServiceBusConnection setting: a command line "
                        "is visible to other users of the machine)")
    g.add_argument("--namespace", metavar="NAME",
                   help="namespace name (NAME.servicebus.windows.net) or full host name; signs in with "
                        "DefaultAzureCredential (needs Azure Service Bus Data Owner, or Receiver + Sender)")
    g.add_argument("--queue", help="queue (default: CUSTOMER_EVENTS_QUEUE, else customer-events)")
    g.add_argument("--settings", metavar="PATH", help="local.settings.json to read (default: the repository's)")
    g.add_argument("--no-ledger", action="store_true", help="do not read the app's ledger")
    return p


def _filters(p: argparse.ArgumentParser, *, with_all: bool) -> None:
    g = p.add_argument_group("selection")
    g.add_argument("--seq", type=int, action="append", metavar="N", help="sequence number (repeatable)")
    g.add_argument("--reason", action="append", metavar="TEXT",
                   help="TEXT appears (case-insensitive) in the dead-letter reason, its description or the "
                        "ledger's last error (repeatable: any)")
    g.add_argument("--customer", action="append", metavar="ID", help="customer id, exact (repeatable: any)")
    g.add_argument("--type", action="append", metavar="TYPE",
                   help="event type, exact or after a prefix: customer.created also matches "
                        "com.contoso.customer.created (repeatable: any)")
    g.add_argument("--older-than", metavar="DURATION", help="enqueued more than DURATION ago (30m, 2h, 1d, 1h30m)")
    g.add_argument("--newer-than", metavar="DURATION", help="enqueued less than DURATION ago")
    g.add_argument("--before", metavar="TIME",
                   help="enqueued before TIME, ISO 8601 with a zone (2026-12-02T03:12:00Z): e.g. when an outage began")
    g.add_argument("--after", metavar="TIME", help="enqueued after TIME, ISO 8601 with a zone")
    g.add_argument("--limit", type=int, metavar="N", help="at most N messages (lowest sequence numbers first)")
    if with_all:
        g.add_argument("--all", action="store_true", help="every message in the dead-letter queue")


def _acting(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")
    p.add_argument("--yes", "-y", action="store_true",
                   help="do not ask for confirmation (required without a terminal when acting on more than one)")
    p.add_argument("--max-wait", type=float, default=5.0, metavar="SECONDS",
                   help="how long a receive waits for the next message before the pass ends (default 5)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m opstool", description=DESCRIPTION, epilog=EXIT_CODES_HELP,
                                     formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()

    p = sub.add_parser("list", parents=[common], formatter_class=fmt, help="table of dead-lettered messages",
                       description="List dead-lettered messages by browsing (peek): nothing is locked, counted or "
                                   "changed. Columns: sequence number, message id, customer, event type, event "
                                   "time, the broker's dead-letter reason and description, the app's last error "
                                   "for the event (ledger), enqueued time, delivery count (DLV: the first delivery "
                                   "is 1, as in the portal and the host's log), replay count (RPL). Times in UTC.",
                       epilog=EXIT_CODES_HELP)
    _filters(p, with_all=False)
    p.add_argument("--wide", action="store_true", help="full cells and full ISO times instead of truncated ones")
    p.add_argument("--json", action="store_true", help="JSON Lines: one object per message")
    p.set_defaults(fn=cmd_list)

    p = sub.add_parser("show", parents=[common], formatter_class=fmt, help="one message in full",
                       description="Show one dead-lettered message: broker annotations, properties, application "
                                   "properties, the body pretty-printed, and the ledger's record and audit trail "
                                   "for its customer. Fields whose names look like secret, password, key or token "
                                   "are shown as ***redacted***. Peek only: nothing changes.",
                       epilog=EXIT_CODES_HELP)
    p.add_argument("sequence_number", type=int, metavar="SEQ")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(fn=cmd_show)

    p = sub.add_parser("customers", parents=[common], formatter_class=fmt,
                       help="the ledger's customers: status and last error",
                       description="List the customers in the app's ledger (read only): status (provisioning, "
                                   "provisioned, rotating, removing, removed), last applied event, the event being "
                                   "applied and the last error. A customer left in provisioning or removing with an "
                                   "error is stuck even when its message is not dead-lettered (yet); updating and "
                                   "rotating last only while an event holds the customer (a failed one is provisioned "
                                   "again, with its error). Use it to verify a replay.", epilog=EXIT_CODES_HELP)
    p.add_argument("--status", action="append",
                   choices=("provisioning", "provisioned", "updating", "rotating", "removing", "removed"),
                   help="only customers in this status (repeatable: any)")
    p.add_argument("--customer", action="append", metavar="ID", help="customer id, exact (repeatable: any)")
    p.add_argument("--with-error", action="store_true", help="only customers with a last error recorded")
    p.add_argument("--wide", action="store_true", help="full cells and full ISO times")
    p.add_argument("--json", action="store_true", help="JSON Lines: one object per customer")
    p.set_defaults(fn=cmd_customers)

    p = sub.add_parser("replay", parents=[common], formatter_class=fmt, help="send messages back to the queue",
                       description="Replay dead-lettered messages: for each, lock it, send a copy to the queue, "
                                   "then complete it. A failure between the two leaves a duplicate (never a loss); "
                                   "running replay again finishes it. The copy keeps body, correlation id, content "
                                   "type, subject, session id and application properties (without DeadLetterReason "
                                   "and DeadLetterErrorDescription), gets a new message id (stable for this "
                                   "dead-lettered message, so a re-run's copy is caught by duplicate detection), "
                                   "replay-original-message-id and replay-count + 1.\n\n" + SELECTION_HELP +
                                   f"\n\nTest hook: {CRASH_ENV}=N exits the process hard (code 99) right after "
                                   "the Nth copy is sent, before its dead-lettered message is completed.",
                       epilog=EXIT_CODES_HELP)
    _filters(p, with_all=True)
    _acting(p)
    p.set_defaults(fn=cmd_replay)

    p = sub.add_parser("export", parents=[common], formatter_class=fmt, help="write messages to a JSON Lines file",
                       description="Export dead-lettered messages to a JSON Lines file, one object per message "
                                   "(body as text, or base64 when not UTF-8; properties; application properties; "
                                   "annotations). Nothing is removed. Without a selection: every message.\n\n"
                                   + SELECTION_HELP, epilog=EXIT_CODES_HELP)
    _filters(p, with_all=True)
    p.add_argument("--output", "-o", metavar="PATH",
                   help="file to create (never overwritten; default dlq-export-QUEUE-TIMESTAMP.jsonl); - for stdout")
    p.add_argument("--redact", action="store_true",
                   help="replace secret-looking fields (for sharing; such a file cannot restore the messages)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("purge", parents=[common], formatter_class=fmt, help="export, then remove messages",
                       description="Remove dead-lettered messages for good, ONLY after writing them to an export "
                                   "file (flushed and fsync'd; never overwritten). Then each is locked and "
                                   "completed.\n\n" + SELECTION_HELP, epilog=EXIT_CODES_HELP)
    _filters(p, with_all=True)
    p.add_argument("--export", metavar="PATH",
                   help="the export file to create first (default dlq-export-QUEUE-TIMESTAMP.jsonl)")
    _acting(p)
    p.set_defaults(fn=cmd_purge)

    p = sub.add_parser("rotate", parents=[common], formatter_class=fmt, help="rotate a customer's client secret",
                       description="Send a customer.credentials-rotation-requested event: the app rotates the "
                                   "customer's client secret in Auth0, stores the new one as a new Key Vault version "
                                   "and in the API Management entry. One rotation per request, whatever is retried. "
                                   "Refused for a public client (no secret) and a customer that is not provisioned. "
                                   "Integrations must pick up the new secret: see README, Secret rotation. Asks "
                                   "for confirmation on a terminal; without one, --yes is required.",
                       epilog=EXIT_CODES_HELP)
    p.add_argument("--customer", required=True, metavar="ID", help="customer id, exact")
    p.add_argument("--reason", metavar="TEXT", help="why (kept in the event; e.g. the incident number)")
    p.add_argument("--event-id", metavar="ID", help="the request's id (default: a new one); the same id again is "
                                                    "the same request, never a second rotation")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for the app's outcome in the ledger (exit 1 if not applied)")
    p.add_argument("--dry-run", action="store_true", help="show the event; send nothing")
    p.add_argument("--yes", "-y", action="store_true",
                   help="do not ask for confirmation (required without a terminal: a rotation ends a live secret)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(fn=cmd_rotate)

    backfill.configure(sub, common, fmt, EXIT_CODES_HELP)
    tenant.configure(sub, fmt)

    # drift and plan use the app's settings (Auth0, Key Vault, APIM, the ledger), not the queue.
    app = argparse.ArgumentParser(add_help=False)
    app.add_argument("--settings", metavar="PATH", help="local.settings.json to read (default: the repository's)")
    app.add_argument("--wide", action="store_true", help="full cells instead of truncated ones")
    p = sub.add_parser("drift", parents=[app], formatter_class=fmt,
                       help="compare the ledger with Auth0, Key Vault and APIM",
                       description="The drift reconciliation the app's timer runs (DRIFT_SCHEDULE), on demand: "
                                   "missing resources of provisioned customers, leftovers of removed ones, "
                                   "applications marked as managed by the app that no ledger row records "
                                   "(orphans), and settings that differ from the profile (grant types, callbacks, "
                                   "first-party flag, grant scopes, names, subscription state and product, the "
                                   "application's marker), and ledger rows left in the middle of a change. Every "
                                   "status is checked; a customer an event holds right now is left out. The ledger "
                                   "decides whose an application is: one a row records is never deleted. Reads only, "
                                   "unless --repair: then each "
                                   "customer with a finding is repaired through the app's own use cases, under "
                                   "its claim and the app's rate limits, after a confirmation (--yes without a "
                                   "terminal). Exit 1 when a repair failed.",
                       epilog=EXIT_CODES_HELP)
    p.add_argument("--customer", metavar="ID", help="check this customer only")
    p.add_argument("--repair", action="store_true", help="repair what is found (as DRIFT_REPAIR=true does); asks "
                                                         "first on a terminal")
    p.add_argument("--yes", "-y", action="store_true",
                   help="repair without asking (required without a terminal: a repair deletes applications and "
                        "rewrites secrets)")
    p.add_argument("--json", action="store_true", help="JSON Lines: one object per finding, then a summary")
    p.set_defaults(fn=cmd_drift, app_command=True)

    p = sub.add_parser("plan", parents=[app], formatter_class=fmt,
                       help="what an event would change, without changing anything",
                       description="Like terraform plan: what applying EVENT.json (a CloudEvent as the CRM sends "
                                   "it) would create, adopt, update or delete in Auth0, Key Vault and API "
                                   "Management, from the current state; with --customer ID, what a repair of the "
                                   "customer would change (\"No changes\" when the services match its ledger "
                                   "row). The app's use cases run with write calls recorded instead of sent; "
                                   "nothing is written, the ledger included, and no secret is read.",
                       epilog=EXIT_CODES_HELP)
    p.add_argument("event_file", nargs="?", metavar="EVENT.json")
    p.add_argument("--customer", metavar="ID", help="plan a repair of this customer instead of an event")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(fn=cmd_plan, app_command=True)
    return parser


def main(argv: list[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    ctx = None
    try:
        if getattr(args, "app_command", False):
            return _run_app_command(args, out, err)
        ctx = Context(args, out, err)
        return args.fn(ctx)
    except BrokenPipeError:
        # `opstool list | head`: the reader has what it wanted. A replay or purge stops at the message it was
        # reporting (each message is settled or left whole; see locked_receive).
        _silence_broken_stdout(out)
        return EXIT_BROKEN_PIPE
    except UsageError as exc:
        emit(err, f"error: {exc}")
        return EXIT_USAGE
    except Declined:
        emit(err, "aborted: nothing was changed")
        return EXIT_FAILED
    except KeyboardInterrupt:
        emit(err, "interrupted")
        return EXIT_FAILED
    except ProvisioningError as exc:  # the ledger (backfill, rotate --wait...), through the app's own adapter
        emit(err, f"error: {safe_text(exc.reason, 500)}")
        return EXIT_CONNECTION if is_unreachable(exc) else EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - one place turns SDK errors into an exit code and one clear line
        if not is_connection_error(exc):
            raise
        where = ctx.target.namespace if ctx else "Service Bus"
        queue = f" queue {ctx.target.queue}" if ctx else ""
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        emit(err, f"error: cannot use{queue} on {where}: {type(exc).__name__}: {safe_text(text, 300)}")
        return EXIT_CONNECTION


# drift and plan load the whole service layer; the dead-letter commands should not pay for it at every start.
def cmd_drift(args, out, err) -> int:
    from .drift import cmd_drift as run
    return run(args, out, err)


def cmd_plan(args, out, err) -> int:
    from .plan import cmd_plan as run
    return run(args, out, err)


def _run_app_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """drift and plan: a failure of Auth0, Key Vault, APIM or the ledger is one line and exit 1, 3 when the service
    could not be reached or refused the credentials; never a traceback."""
    try:
        return args.fn(args, out, err)
    except ProvisioningError as exc:
        emit(err, f"error: {safe_text(exc.reason, 500)}")
        return EXIT_CONNECTION if is_unreachable(exc) else EXIT_FAILED


def _silence_broken_stdout(stream) -> None:
    """Point the stream's file descriptor at /dev/null, so the interpreter's last flush at exit does not raise
    BrokenPipeError again (the recipe of the Python documentation, "Note on SIGPIPE")."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's StringIO): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def run() -> int:
    """``python -m opstool``: :func:`main` on the real stdout and stderr. Text that the terminal's encoding cannot
    hold is written escaped instead of failing, and a closed pipe ends the run quietly."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_broken_stdout(sys.stdout)
        code = EXIT_BROKEN_PIPE
    return code
