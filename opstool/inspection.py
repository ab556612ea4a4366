"""The read-only commands: list, show, customers. They browse (peek) and read the ledger; nothing changes."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from .context import Context, selection_from
from .dead_letters import DeadLetter, iso, jsonable, peek_one
from shared.domain.errors import ProvisioningError

from .errors import EXIT_CONNECTION, EXIT_FAILED, EXIT_OK, EXIT_USAGE, is_unreachable
from .ledger_view import audit_partition
from .output import Column, body_block, emit, redact, render_table, safe_text, write_json_line
from .safe_json import load_json


# ---- list --------------------------------------------------------------------------------------------------------
def _short_time(value: dt.datetime | None) -> str | None:
    return value.strftime("%m-%d %H:%M:%S") if value else None


def _short_event_time(text: str | None) -> str | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):  # not a time, or one with no UTC equivalent (0001-01-01T00:00:00+01:00)
        return text
    return value.strftime("%m-%d %H:%M:%S")


def _list_columns(ctx: Context, wide: bool) -> list[Column]:
    when = (lambda d: iso(d.enqueued_time)) if wide else (lambda d: _short_time(d.enqueued_time))
    event_when = (lambda d: d.event.event_time) if wide else (lambda d: _short_event_time(d.event.event_time))
    return [
        Column("SEQ", lambda d: d.sequence_number, align_right=True),
        Column("MESSAGE ID", lambda d: d.message_id, 13),
        Column("CUSTOMER", lambda d: d.event.customer_id, 16),
        Column("TYPE", lambda d: d.event.event_type, 18),
        Column("EVENT TIME", event_when),
        Column("DL REASON", lambda d: d.dead_letter_reason, 24),
        Column("DL DESCRIPTION", lambda d: d.dead_letter_description, 30),
        Column("LEDGER ERROR", ctx.ledger.last_error, 44),
        Column("ENQUEUED", when),
        Column("DLV", lambda d: d.delivery_count, align_right=True),
        Column("RPL", lambda d: d.replay_count, align_right=True),
    ]


def _list_json(ctx: Context, dl: DeadLetter) -> dict:
    note = ctx.ledger.note(dl)
    return {
        "sequence_number": dl.sequence_number, "message_id": dl.message_id,
        "customer_id": dl.event.customer_id, "event_id": dl.event.event_id, "event_type": dl.event.event_type,
        "event_time": dl.event.event_time, "session_id": dl.session_id,
        "dead_letter_reason": dl.dead_letter_reason, "dead_letter_description": dl.dead_letter_description,
        "ledger_error": str(note) if note else None,
        "ledger": None if note is None else {"outcome": note.outcome, "reason": note.reason,
                                             "recorded_at": jsonable(note.recorded_at), "attempts": note.attempts},
        "enqueued_time": iso(dl.enqueued_time), "delivery_count": dl.delivery_count,
        "replay_count": dl.replay_count,
        "body_size": len(dl.body) if dl.body is not None else None, "body_problem": dl.body_problem,
    }


def cmd_list(ctx: Context) -> int:
    selection = selection_from(ctx.args, destructive=False)
    with ctx.target.client() as client, ctx.dead_letter_receiver(client) as receiver:
        selected = ctx.gather(receiver, selection)
    ctx.ledger.prefetch(selected)
    if not selected and not ctx.json:
        emit(ctx.out, f"no dead-lettered message{' matches' if not selection.is_empty else 's'} in {ctx.where}")
        return EXIT_OK
    print_list(ctx, selected)
    return EXIT_OK


def print_list(ctx: Context, selected: list[DeadLetter]) -> None:
    """The table (or JSON Lines) and the summary of the selected messages, on ctx.out."""
    if ctx.json:
        for dl in selected:
            write_json_line(_list_json(ctx, dl), ctx.out)
        return
    emit(ctx.out, render_table(selected, _list_columns(ctx, ctx.args.wide), wide=ctx.args.wide))
    emit(ctx.out, f"\n{len(selected)} message(s) in {ctx.where}; times in UTC"
         + ("" if ctx.args.wide else "; --wide shows every cell in full"))
    emit(ctx.out, _reasons_summary(ctx, selected))


def _reasons_summary(ctx: Context, selected: list[DeadLetter], top: int = 5) -> str:
    """How many messages per reason (the ledger's when it has one, else the broker's): one outage, one line."""
    counts = Counter(ctx.ledger.last_error(d) or f"{d.dead_letter_reason or '-'}: {d.dead_letter_description or '-'}"
                     for d in selected)
    lines = ["by reason:"] + [f"  {n:>5}  {safe_text(reason)}" for reason, n in counts.most_common(top)]
    if len(counts) > top:
        lines.append(f"  {sum(n for _, n in counts.most_common()[top:]):>5}  ({len(counts) - top} other reasons)")
    return "\n".join(lines)


# ---- show --------------------------------------------------------------------------------------------------------
def _show_json(ctx: Context, dl: DeadLetter, record: Any, trail: list) -> dict:
    text, encoding = dl.body_text()
    body: Any = text
    if encoding == "utf-8":
        doc, problem = load_json(text)
        if problem is None:
            body = redact(doc)
    return {
        "queue": ctx.target.queue, "namespace": ctx.target.namespace,
        "sequence_number": dl.sequence_number, "body": body, "body_encoding": encoding,
        "body_size": len(dl.body) if dl.body is not None else None, "body_problem": dl.body_problem,
        "properties": dl.properties(),
        "application_properties": redact(jsonable(dl.application_properties)),
        "annotations": dl.broker_annotations(),
        "event": jsonable(dl.event.__dict__),
        "ledger": {
            "partition": audit_partition(dl)[0],
            "available": ctx.ledger.available,
            "customer": None if record is None else redact(jsonable(
                {k: v for k, v in record.__dict__.items() if k != "etag"})),
            "audit": [redact(jsonable(e.__dict__)) for e in trail],
        },
    }


def _pairs(rows: list[tuple[str, Any]], indent: str = "  ") -> str:
    keys = [safe_text(k, 80) for k, _ in rows]
    width = max(len(k) for k in keys)
    return "\n".join(f"{indent}{k.ljust(width)}  {'-' if v is None or v == '' else safe_text(v)}"
                     for k, (_, v) in zip(keys, rows))


def cmd_show(ctx: Context) -> int:
    seq = ctx.args.sequence_number
    with ctx.target.client() as client, ctx.dead_letter_receiver(client) as receiver:
        dl = peek_one(receiver, seq)
    if dl is None:
        emit(ctx.err, f"error: no dead-lettered message with sequence number {seq} in {ctx.where}")
        return EXIT_FAILED
    record, trail = ctx.ledger.audit_trail(dl)
    print_show(ctx, dl, record, trail)
    return EXIT_OK


def print_show(ctx: Context, dl: DeadLetter, record: Any, trail: list) -> None:
    """One message in full (or as one JSON object), with the ledger's record and audit trail, on ctx.out."""
    if ctx.json:
        write_json_line(_show_json(ctx, dl, record, trail), ctx.out)
        return
    out = []
    out.append(f"Dead-lettered message {dl.sequence_number} in {ctx.where}")
    out.append("\nBroker")
    out.append(_pairs([("sequence number", dl.sequence_number), ("enqueued (UTC)", iso(dl.enqueued_time)),
                       ("expires (UTC)", iso(dl.expires_at)), ("delivery count", dl.delivery_count),
                       ("dead-letter reason", dl.dead_letter_reason),
                       ("dead-letter description", dl.dead_letter_description),
                       ("dead-letter source", dl.dead_letter_source), ("replay count", dl.replay_count)]))
    out.append("\nProperties")
    out.append(_pairs([(k.replace("_", " "), v) for k, v in dl.properties().items()]))
    props = redact(jsonable(dl.application_properties))
    out.append("\nApplication properties")
    out.append(_pairs(sorted(props.items())) if props else "  (none)")
    text, encoding = dl.body_text()
    out.append("")
    out.extend(body_block(dl.body, text, encoding, dl.content_type))
    partition = audit_partition(dl)[0]
    if not ctx.ledger.available:
        out.append(f"\nLedger: not read ({ctx.ledger.failure or ctx.why_no_ledger})")
    else:
        note = ctx.ledger.note(dl)
        out.append(f"\nLedger, this event: {safe_text(note) if note else 'no audit row (the app never recorded it)'}")
        if record is not None:
            out.append(f"Ledger, customer {safe_text(partition)}:")
            out.append(_pairs([("status", record.status), ("profile", record.profile),
                               ("last error", record.last_error), ("pending event", record.pending_event_id),
                               ("last event applied", None if not record.last_event_id else
                                f"{record.last_event_type or '-'} {record.last_event_id} "
                                f"at {iso(record.last_event_time) or '-'}"),
                               ("auth0 client id", record.auth0_client_id),
                               ("updated (UTC)", iso(record.updated_at))]))
        elif partition != "~unparsed":
            out.append(f"Ledger, customer {safe_text(partition)}: no state row")
        if trail:
            out.append(f"\nAudit trail ({safe_text(partition)}, oldest first)")
            cols = [Column("RECORDED (UTC)", lambda e: iso(e.recorded_at)),
                    Column("EVENT ID", lambda e: e.event_id), Column("TYPE", lambda e: e.event_type),
                    Column("EVENT TIME", lambda e: iso(e.event_time)), Column("OUTCOME", lambda e: e.outcome),
                    Column("TRIES", lambda e: e.attempts, align_right=True),
                    Column("MESSAGE ID", lambda e: e.message_id), Column("REASON", lambda e: e.reason)]
            out.append("\n".join("  " + line for line in render_table(trail, cols, wide=True).splitlines()))
    emit(ctx.out, "\n".join(out))


# ---- customers -----------------------------------------------------------------------------------------------------
def cmd_customers(ctx: Context) -> int:
    if ctx.ledger.ledger is None:
        emit(ctx.err, f"error: the ledger is needed for this command ({ctx.why_no_ledger})")
        return EXIT_USAGE
    try:
        records = ctx.ledger.ledger.list_customers()
    except ProvisioningError as exc:  # the ledger adapter raises only its own classified errors
        emit(ctx.err, f"error: cannot read the ledger: {type(exc).__name__}: {safe_text(exc, 300)}")
        return EXIT_CONNECTION if is_unreachable(exc) else EXIT_FAILED
    wanted_status = set(ctx.args.status or [])
    wanted_ids = set(ctx.args.customer or [])
    rows = sorted((r for r in records
                   if (not wanted_status or r.status in wanted_status)
                   and (not wanted_ids or r.customer_id in wanted_ids)
                   and (not ctx.args.with_error or r.last_error)),
                  key=lambda r: r.customer_id)
    if ctx.json:
        for r in rows:
            write_json_line(jsonable({k: v for k, v in r.__dict__.items() if k != "etag"}), ctx.out)
        return EXIT_OK
    if not rows:
        emit(ctx.out, "no customer in the ledger matches")
        return EXIT_OK
    cols = [Column("CUSTOMER", lambda r: r.customer_id, 24), Column("STATUS", lambda r: r.status),
            Column("PROFILE", lambda r: r.profile, 16),
            Column("LAST EVENT", lambda r: r.last_event_type, 18),
            Column("LAST EVENT TIME", lambda r: iso(r.last_event_time) if ctx.args.wide else
                   _short_time(r.last_event_time)),
            Column("PENDING EVENT", lambda r: r.pending_event_id, 13),
            Column("LAST ERROR", lambda r: r.last_error, 60),
            Column("UPDATED", lambda r: iso(r.updated_at) if ctx.args.wide else _short_time(r.updated_at))]
    emit(ctx.out, render_table(rows, cols, wide=ctx.args.wide))
    by_status = Counter(r.status for r in rows)
    emit(ctx.out, f"\n{len(rows)} customer(s): " + ", ".join(f"{n} {k}" for k, n in sorted(by_status.items()))
         + "; times in UTC")
    return EXIT_OK
