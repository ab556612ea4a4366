"""What every command shares: the connection and ledger it works with, the selection it acts on, and the
confirmation it asks for before acting on several messages."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from .connection import load_values, local_stack_hint, resolve_ledger, resolve_target
from .dead_letters import DeadLetter, peek_pages
from .errors import UsageError
from .ledger_view import LedgerView
from .output import emit, safe_text
from .selection import Selection, parse_duration, parse_time


@dataclass
class Context:
    args: argparse.Namespace
    out: TextIO
    err: TextIO

    def __post_init__(self):
        self.values = load_values(self.args.settings)
        try:
            self.target = resolve_target(connection_string=self.args.connection_string,
                                         namespace=self.args.namespace, queue=self.args.queue, values=self.values)
        except UsageError as exc:
            hint = local_stack_hint(self.args.settings)
            raise UsageError(f"{exc}\n{hint}" if hint else str(exc)) from None
        ledger, why_not = resolve_ledger(self.values, disabled=self.args.no_ledger)
        self.ledger = LedgerView(ledger, warn=self.err)
        self.why_no_ledger = why_not
        if ledger is None and not self.args.no_ledger:
            emit(self.err, f"note: {why_not}; the ledger columns stay empty (--no-ledger silences this)")

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def where(self) -> str:
        return f"{self.target.namespace}/{self.target.queue}/$DeadLetterQueue"

    def dead_letter_receiver(self, client: Any) -> Any:
        from azure.servicebus import ServiceBusReceiveMode, ServiceBusSubQueue
        return client.get_queue_receiver(self.target.queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER,
                                         receive_mode=ServiceBusReceiveMode.PEEK_LOCK, prefetch_count=0)

    def gather(self, receiver: Any, selection: Selection) -> list[DeadLetter]:
        """The selected messages, by browsing the dead-letter queue (nothing is locked)."""
        start = min(selection.sequence_numbers) if selection.sequence_numbers else 1

        def messages():
            for page in peek_pages(receiver, start=start):
                if selection.needs_ledger_error:
                    self.ledger.prefetch(page)
                yield from page

        return list(selection.apply(messages(), self.ledger.last_error))


# ---- selection ---------------------------------------------------------------------------------------------------
def selection_from(args: argparse.Namespace, *, destructive: bool) -> Selection:
    try:
        older = parse_duration(args.older_than) if args.older_than else None
        newer = parse_duration(args.newer_than) if args.newer_than else None
        before = parse_time(args.before) if args.before else None
        after = parse_time(args.after) if args.after else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    sel = Selection(sequence_numbers=sorted(set(args.seq or [])), reasons=args.reason or [],
                    customers=args.customer or [], types=args.type or [], older_than=older, newer_than=newer,
                    enqueued_before=before, enqueued_after=after,
                    limit=args.limit, everything=getattr(args, "all", False))
    if sel.everything and (sel.sequence_numbers or sel.has_filters):
        raise UsageError("--all selects every message: do not combine it with --seq or filters")
    if destructive and sel.is_empty:
        raise UsageError("say which messages: --seq N, a filter (--reason, --customer, --type, --older-than, "
                         "--newer-than, --before, --after) or --all")
    return sel


class Declined(Exception):
    pass


def confirm(ctx: Context, question: str, count: int, stdin=None) -> None:
    """Ask before acting, unless --yes: on a terminal always (a mistyped --seq is one message too), without one
    refuse to act on several messages (a script that names one message by --seq goes on)."""
    stdin = stdin or sys.stdin
    if ctx.args.yes or count < 1:
        return
    if not stdin.isatty() and count == 1:
        return
    ask(ctx.err, question, yes=False, how="Check the selection with --dry-run", stdin=stdin)


def ask(err: TextIO, question: str, *, yes: bool, how: str, stdin=None) -> None:
    """The confirmation of a command that deletes or rotates (drift --repair, rotate; replay and purge of several
    messages): --yes goes on; a terminal is asked; without a terminal the command refuses (UsageError, exit 2),
    saying ``how`` to check first, before anything changes."""
    stdin = stdin or sys.stdin
    if yes:
        return
    if not stdin.isatty():
        raise UsageError(f"refusing to {question} without confirmation: stdin is not a terminal. {how}, then run "
                         "again with --yes")
    err.write(safe_text(f"{question[0].upper()}{question[1:]}? [y/N] ", None))
    err.flush()
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise Declined()
