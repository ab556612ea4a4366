"""``opstool backfill FILE``: bring customers provisioned before the app (or by hand) under it, from a file.

1. **Validate every row first** with the app's own event parser (and the client profiles' rules), and report
   every bad row with its line number and the rule, before anything is sent. Bad rows are never sent. Lines end at
   a line feed only; a line that is not UTF-8 or nests too deeply is one bad row.
2. **Plan** each valid row from the ledger and the state file: sent before (this file, this row: same event id),
   already in the ledger (provisioned by the app or adopted: not sent), in the ledger with another profile (not
   sent, and a failure: the file and the ledger disagree), removed (not sent: a backfill must not bring a removed
   customer back), or to send.
3. **Send** ``customer.created`` events with ids derived from the batch (the file's name), the customer and the
   row, so a rerun of the same file sends nothing twice (the state file and the ledger say what was sent; Service
   Bus duplicate detection catches a resend within its window). Paced at ``--rate`` events per second and at most
   ``--max-pending`` events the app has not applied yet, read from the ledger.
4. **Follow** the events in the ledger until each is applied or failed, then print the **summary from the ledger**:
   provisioned, failed with the app's reasons, pending, invalid.

The app adopts what exists: an application named by the row's ``existingClientId`` (marked in its
``client_metadata``, otherwise left as it is), and the secret, authorization server and subscription under their
derived names (idempotent writes). Ctrl-C stops after the event being sent; the same command resumes.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from shared.domain.events import CREATED
from shared.domain.records import APPLIED, FAILED, PROVISIONED, REJECTED, REMOVED, STALE

from .backfill_rows import (COLUMNS, EXISTS, INVALID, MISMATCH, SEND, SENT_BEFORE, SOURCE, WAS_REMOVED, Row,
                            profile_rules, read_rows, validate)
from .context import Context, confirm
from .errors import EXIT_FAILED, EXIT_OK, UsageError
from .output import emit, safe_text, write_json_line
from .sending import QueueSender, cloud_event, now_iso, type_prefix

#: test hook: behave as if Ctrl-C was pressed right after this many events were sent
INTERRUPT_ENV = "OPSTOOL_BACKFILL_INTERRUPT_AFTER"
POLL_SECONDS = 1.0
LEDGER_WORKERS = 8

# ---- the state file and the ledger ---------------------------------------------------------------------------------
class StateFile:
    """What this file's backfill sent, one JSON line per event, appended and fsync'd after each send: a crash
    between the send and the line costs a resend with the same id, which the queue or the app drops."""

    def __init__(self, path: Path):
        self.path = path
        self.sent: set[str] = set()
        if path.exists():
            for raw in path.read_text(encoding="utf-8").splitlines():
                try:
                    self.sent.add(json.loads(raw)["eventId"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut off by a crash
        self._file = None

    def record(self, row: Row) -> None:
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps({"eventId": row.event_id, "customerId": row.customer_id, "line": row.line,
                                     "sentAt": now_iso()}) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.sent.add(row.event_id)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def read_ledger(ledger, rows: list[Row]) -> None:
    """Each row's customer record and its event's audit row (one query each, several at once)."""
    def one(row: Row) -> None:
        record, audit = ledger.get_customer(row.customer_id, row.event_id)
        row.status = record.status if record else None
        row.outcome = audit.outcome if audit else None
        row.reason = (audit.reason if audit else None) or (
            record.last_error if record and record.pending_event_id == row.event_id else None)
        row.record = record

    if rows:
        with ThreadPoolExecutor(max_workers=LEDGER_WORKERS) as pool:
            list(pool.map(one, rows))


def plan(rows: list[Row], state: StateFile, ledger) -> None:
    valid = [r for r in rows if r.plan != INVALID]
    if ledger is not None:
        read_ledger(ledger, valid)
    for row in valid:
        record = row.record
        if row.event_id in state.sent or row.outcome is not None or (record and record.pending_event_id == row.event_id):
            row.plan, row.note = SENT_BEFORE, "sent by an earlier run of this file"
        elif record is not None and record.status == REMOVED:
            row.plan, row.note = WAS_REMOVED, "removed in the ledger: not brought back (send a created event by hand)"
        elif record is not None and record.profile and record.profile != row.data.get("profile"):
            row.plan, row.note = MISMATCH, (
                f"in the ledger with profile {record.profile!r}, the row says {row.data.get('profile')!r}: not sent "
                "(change the profile with customer.updated where it can change in place, else remove the customer "
                "first; or fix the row)")
        elif record is not None:
            row.plan, row.note = EXISTS, f"already in the ledger ({record.status}): not sent"
        else:
            adopt = f"; adopts application {row.data['existingClientId']}" if row.data.get("existingClientId") else ""
            row.plan, row.note = SEND, f"customer.created (profile {row.data.get('profile')}{adopt})"


# ---- progress ----------------------------------------------------------------------------------------------------
class Progress:
    """One line on stderr, redrawn in place, when stderr is a terminal: counts, rate and the time left."""

    def __init__(self, stream: TextIO, total: int, enabled: bool):
        self.stream, self.total, self.enabled = stream, total, enabled and total > 0
        self.started = time.monotonic()
        self._last = 0.0

    def show(self, sent: int, applied: int, failed: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        width = 30
        done = applied + failed
        filled = int(width * done / self.total)
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 and done else 0.0
        eta = f"{_duration((self.total - done) / rate)}" if rate else "?"
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] sent {sent}/{self.total}, applied {applied}, "
                          f"failed {failed}, pending {sent - done} · {rate:.1f}/s · left {eta}   ")
        self.stream.flush()

    def end(self) -> None:
        if self.enabled and self._last:
            self._last = 0.0  # once: the interrupted path and the normal one both end it
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# ---- sending -----------------------------------------------------------------------------------------------------
def _final(row: Row) -> bool:
    return row.outcome in (APPLIED, STALE, REJECTED)


def _interrupt_after(values: dict) -> int | None:
    raw = (os.environ.get(INTERRUPT_ENV) or values.get(INTERRUPT_ENV) or "").strip()
    return int(raw) if raw.isdigit() else None


def send_rows(ctx: Context, rows: list[Row], state: StateFile, ledger, prefix: str) -> tuple[bool, int]:
    """Send the rows planned SEND, paced: (False when interrupted by Ctrl-C, how many were sent)."""
    args = ctx.args
    todo = [r for r in rows if r.plan == SEND]
    progress = Progress(ctx.err, len(todo), enabled=args.progress or ctx.err.isatty())
    pending: list[Row] = []
    stop_after = _interrupt_after(ctx.values)
    interval = 1.0 / args.rate
    next_at = time.monotonic()
    sent = applied = failed = 0
    try:
        with QueueSender(ctx.target) as sender:
            for row in todo:
                while ledger is not None and len(pending) >= args.max_pending:
                    pending, a, f = _refresh(ledger, pending)
                    applied, failed = applied + a, failed + f
                    progress.show(sent, applied, failed)
                    if len(pending) >= args.max_pending:
                        time.sleep(POLL_SECONDS)
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at = max(next_at + interval, time.monotonic() - interval)
                sender.send([cloud_event(row.event_id, CREATED, SOURCE, row.data, prefix=prefix)])
                state.record(row)
                sent += 1
                pending.append(row)
                progress.show(sent, applied, failed)
                if stop_after is not None and sent >= stop_after:
                    raise KeyboardInterrupt
        _follow(ctx, ledger, pending, progress, sent, applied, failed)
        return True, sent
    except KeyboardInterrupt:
        progress.end()
        emit(ctx.err, f"interrupted: {sent} of {len(todo)} event(s) sent this run, recorded in {state.path}; run the "
                      "same command again to send the rest (nothing is sent twice)")
        return False, sent
    finally:
        progress.end()


def _refresh(ledger, pending: list[Row]) -> tuple[list[Row], int, int]:
    read_ledger(ledger, pending)
    still = [r for r in pending if not _final(r)]
    done = [r for r in pending if _final(r)]
    return still, sum(1 for r in done if r.outcome != REJECTED), sum(1 for r in done if r.outcome == REJECTED)


def _follow(ctx: Context, ledger, pending: list[Row], progress: Progress, sent: int, applied: int, failed: int):
    """Wait until the app applied every event sent, or nothing changed for --wait seconds."""
    if ledger is None or not pending or ctx.args.wait <= 0:
        return
    quiet_since = time.monotonic()
    while pending:
        before = len(pending)
        pending, a, f = _refresh(ledger, pending)
        applied, failed = applied + a, failed + f
        progress.show(sent, applied, failed, force=True)
        if len(pending) < before:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= ctx.args.wait:
            return
        if pending:
            time.sleep(POLL_SECONDS)


# ---- the command -------------------------------------------------------------------------------------------------
def cmd_backfill(ctx: Context) -> int:
    args = ctx.args
    if args.rate <= 0 or args.max_pending < 1:
        raise UsageError("--rate must be positive and --max-pending at least 1")
    path = Path(args.file)
    batch = args.batch or path.stem
    prefix = type_prefix(ctx.values)
    rules, note = profile_rules(ctx.values)
    if note:
        emit(ctx.err, f"note: {note}")
    rows = read_rows(path, args.format)
    validate(rows, batch, prefix, rules)
    bad = [r for r in rows if r.plan == INVALID]
    for row in bad:  # every bad row, before anything is sent
        _say(ctx, row, f"invalid: {row.problem}", kind="invalid")
    ledger = ctx.ledger.ledger
    if ledger is None:
        emit(ctx.err, f"note: the ledger is not available ({ctx.why_no_ledger}): the plan cannot tell what exists "
                      "and the summary cannot say what was applied")
    state = StateFile(Path(args.state) if args.state else path.with_name(path.name + ".backfill-state.jsonl"))
    try:
        plan(rows, state, ledger)
        to_send = [r for r in rows if r.plan == SEND]
        if args.dry_run:
            for row in rows:
                if row.plan != INVALID:
                    _say(ctx, row, f"{row.plan}: {row.note}", kind="plan")
            _summary(ctx, rows, 0, state.sent, title="plan (dry run, nothing sent)")
            return EXIT_OK if not bad and not any(r.plan == MISMATCH for r in rows) else EXIT_FAILED
        if to_send:
            confirm(ctx, f"send {len(to_send)} customer.created event(s) to {ctx.target.namespace}/"
                         f"{ctx.target.queue}", len(to_send))
        finished, sent = send_rows(ctx, rows, state, ledger, prefix) if to_send else (True, 0)
    finally:
        state.close()
    if ledger is not None:
        read_ledger(ledger, [r for r in rows if r.plan != INVALID])
    ok = _summary(ctx, rows, sent, state.sent, title="summary (from the ledger)" if ledger is not None else "summary")
    return EXIT_OK if finished and ok and not bad else EXIT_FAILED


@dataclass
class Counts:
    provisioned: list[Row] = field(default_factory=list)
    failed: list[Row] = field(default_factory=list)
    pending: list[Row] = field(default_factory=list)
    not_sent: list[Row] = field(default_factory=list)
    unsent: list[Row] = field(default_factory=list)  # planned, not sent yet (the run was interrupted)
    invalid: list[Row] = field(default_factory=list)


def _classify(rows: list[Row], dry_run: bool, sent_ids: set[str]) -> Counts:
    c = Counts()
    for row in rows:
        if dry_run and row.plan == SEND:
            continue  # counted as "to send"
        if row.plan == SEND and row.event_id not in sent_ids and row.outcome is None:
            c.unsent.append(row)
        elif row.plan == INVALID:
            c.invalid.append(row)
        elif row.plan == WAS_REMOVED:
            c.not_sent.append(row)
        elif row.status == PROVISIONED and (row.outcome in (APPLIED, STALE) or row.plan == EXISTS):
            c.provisioned.append(row)
        elif row.outcome in (FAILED, REJECTED) or row.plan in (EXISTS, MISMATCH):
            c.failed.append(row)
        else:
            c.pending.append(row)
    return c


def _summary(ctx: Context, rows: list[Row], sent: int, sent_ids: set[str], *, title: str) -> bool:
    c = _classify(rows, ctx.args.dry_run, sent_ids)
    by_file = sum(1 for r in c.provisioned if r.plan != EXISTS)
    counts = {"rows": len(rows), "sentThisRun": sent, "provisioned": len(c.provisioned), "provisionedByThisFile": by_file,
              "alreadyThere": len(c.provisioned) - by_file, "failed": len(c.failed), "pending": len(c.pending),
              "notSent": len(c.not_sent), "notSentYet": len(c.unsent), "invalid": len(c.invalid)}
    if ctx.args.dry_run:
        counts["toSend"] = sum(1 for r in rows if r.plan == SEND)
    if ctx.json:
        write_json_line({"summary": title, **counts,
                         "failures": [{"line": r.line, "customerId": r.customer_id,
                                       "reason": r.reason or r.note} for r in c.failed],
                         "invalidRows": [{"line": r.line, "reason": r.problem} for r in c.invalid]}, ctx.out)
        return not (c.failed or c.pending or c.invalid or c.unsent)
    emit(ctx.out, f"backfill {title}:")
    if ctx.args.dry_run:
        emit(ctx.out, f"  to send:      {counts['toSend']}")
    else:
        emit(ctx.out, f"  sent:         {sent} this run")
    emit(ctx.out, f"  provisioned:  {len(c.provisioned)} ({by_file} by this file, {counts['alreadyThere']} already "
                  "in the ledger)")
    emit(ctx.out, f"  failed:       {len(c.failed)}")
    for row in c.failed:
        emit(ctx.out, f"    line {row.line} {safe_text(row.customer_id, 64)}: "
                      f"{safe_text(row.reason or row.note or row.status, 300)}")
    emit(ctx.out, f"  pending:      {len(c.pending)}" + ("" if ctx.args.dry_run else
                                                          " (sent, not applied yet: run the same command later)"))
    if c.unsent:
        emit(ctx.out, f"  not sent yet: {len(c.unsent)} (interrupted: run the same command to send them)")
    emit(ctx.out, f"  not sent:     {len(c.not_sent)} (removed in the ledger)")
    emit(ctx.out, f"  invalid rows: {len(c.invalid)} (never sent)")
    for row in c.invalid:
        emit(ctx.out, f"    line {row.line}: {safe_text(row.problem, 300)}")
    return not (c.failed or c.pending or c.invalid or c.unsent)


def _say(ctx: Context, row: Row, text: str, *, kind: str) -> None:
    if ctx.json:
        write_json_line({kind: True, "line": row.line, "customerId": row.customer_id or None,
                         "eventId": row.event_id or None, "plan": row.plan,
                         "detail": row.problem if row.plan == INVALID else row.note}, ctx.out)
        return
    stream = ctx.err if kind == "invalid" else ctx.out
    who = safe_text(row.customer_id, 64) if row.customer_id else "-"
    emit(stream, f"line {row.line} {who}: {safe_text(text, 400)}")


def configure(sub, common, fmt, epilog) -> None:
    p = sub.add_parser("backfill", parents=[common], formatter_class=fmt,
                       help="send customer.created events for the customers of a file (CSV or JSON Lines)",
                       description=__doc__.split("\n\n", 1)[1].replace("``", "").replace("**", "") + "\n\nColumns (CSV header) or keys (JSON Lines): "
                       + ", ".join(COLUMNS) + " (the created event's data fields; redirectUris separated by spaces "
                       "in CSV, a list in JSON Lines; existingClientId names an Auth0 application to adopt).",
                       epilog=epilog)
    p.add_argument("file", metavar="FILE", help="CSV with a header line, or JSON Lines (.jsonl)")
    p.add_argument("--format", choices=("csv", "jsonl"), help="default: by the file's suffix, else by its content")
    p.add_argument("--batch", metavar="NAME",
                   help="what event ids are derived from, with the customer and the row (default: the file's name "
                        "without its suffix): keep it when the file is renamed")
    p.add_argument("--state", metavar="PATH", help="the state file (default: FILE.backfill-state.jsonl)")
    p.add_argument("--rate", type=float, default=2.0, metavar="N",
                   help="events sent per second at most (default 2: what one app instance applies with an Auth0 "
                        "tenant limit of 10 requests/s, docs/BENCHMARKS.md; 1 for a free tenant's 2 requests/s)")
    p.add_argument("--max-pending", type=int, default=20, metavar="N",
                   help="events sent and not applied yet (read from the ledger) before sending pauses (default 20)")
    p.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                   help="after sending, follow the events in the ledger until none has been applied for this "
                        "long (default 120; 0: do not wait)")
    p.add_argument("--progress", action="store_true", help="show the progress line even when stderr is not a "
                                                           "terminal")
    p.add_argument("--dry-run", action="store_true", help="validate and show the plan of every row; send nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="JSON Lines: one object per bad row (and per row of the plan "
                                                       "with --dry-run), then the summary")
    p.set_defaults(fn=cmd_backfill)

