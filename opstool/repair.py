"""The commands that change the dead-letter queue: replay and purge (and export, which writes what purge writes
first). Each prints one line per message as it happens, progress on stderr, and a summary."""
from __future__ import annotations

import datetime as dt
from typing import Any

from .context import Context, confirm, selection_from
from .dead_letters import DeadLetter, iso
from .errors import EXIT_FAILED, EXIT_OK, UsageError
from .export_file import default_export_path, write_export
from .locked_receive import receive_selected
from .output import Progress, emit, safe_text, write_json_line
from .purge import Purger
from .replay import CrashHook, Replayer, replay_message_id
from .results import FAILED, SKIPPED, Result, Summary
from .selection import Selection


# ---- replay and purge ----------------------------------------------------------------------------------------------
class Reporter:
    """Prints each result as it happens (the durable record of a run), counts, and shows progress on stderr."""

    def __init__(self, ctx: Context, verb: str, total: int):
        self.ctx, self.summary = ctx, Summary()
        self.progress = Progress(verb, total, ctx.err)

    def __call__(self, result: Result, *, step: bool = True) -> None:
        self.summary.add(result)
        self.progress.clear()
        if self.ctx.json:
            write_json_line(result.as_json(), self.ctx.out)
        else:
            parts = [f"{result.result:<12}", f"seq {result.sequence_number:>6}",
                     f"message {safe_text(result.message_id or '-', 200)}", safe_text(result.customer_id or "-", 64),
                     safe_text(result.event_type or "-", 200)]
            if result.new_message_id:
                parts.append(f"-> {safe_text(result.new_message_id, 200)} (replay-count {result.replay_count})")
            line = "  ".join(parts)
            if result.detail:
                line += f"\n{'':14}{safe_text(result.detail)}"
            emit(self.ctx.out, line, flush=True)
        if step:
            self.progress.step()

    def finish(self, command: str, *, dry_run: bool = False, extra: dict | None = None) -> int:
        self.progress.close()
        order = ["replayed", "purged", "would-replay", "would-purge", "skipped", "failed"]
        counts = {k: self.summary.counts[k] for k in sorted(self.summary.counts, key=lambda k: (
            order.index(k) if k in order else len(order), k))}
        if self.ctx.json:
            write_json_line({"summary": {"command": command, "dry_run": dry_run, **counts, **(extra or {})}},
                            self.ctx.out)
        else:
            text = ", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing to do"
            suffix = " (dry run: nothing was changed)" if dry_run else ""
            emit(self.ctx.out, f"{command} summary: {text}{suffix}")
        return EXIT_FAILED if self.summary.failed else EXIT_OK


def _skip_missing(report: Reporter, selection: Selection, selected: list[DeadLetter]) -> None:
    found = {d.sequence_number for d in selected}
    for seq in selection.sequence_numbers:
        if seq not in found:
            report(Result(seq, None, SKIPPED, detail="not in the dead-letter queue (already replayed or purged?), "
                                                     "or excluded by the filters"), step=False)


def _run_locked(ctx: Context, receiver: Any, report: Reporter, selected: list[DeadLetter], handle) -> None:
    """Lock and handle the selected messages; whatever could not be received is reported as skipped. A connection
    failure stops the run: what was not attempted is reported, then the error goes up (exit 3)."""
    by_seq = {d.sequence_number: d for d in selected}
    try:
        missing = receive_selected(receiver, list(by_seq), handle, max_wait=ctx.args.max_wait)
    except BaseException as exc:
        done = {r.sequence_number for r in report.summary.results}
        why = ("interrupted" if isinstance(exc, KeyboardInterrupt)
               else f"the run stopped: {type(exc).__name__}")
        for seq, dl in by_seq.items():
            if seq not in done:
                report(Result(seq, dl.message_id, SKIPPED, detail=f"not attempted ({why})",
                              customer_id=dl.event.customer_id, event_type=dl.event.event_type))
        raise
    for seq in sorted(missing):
        dl = by_seq[seq]
        base = dict(customer_id=dl.event.customer_id, event_type=dl.event.event_type)
        present, locked_until = _still_there(receiver, seq)
        if present:
            until = f" until {iso(locked_until)}" if locked_until else ""
            report(Result(seq, dl.message_id, FAILED, **base,
                          detail=f"still in the dead-letter queue but locked{until}, by another receiver or by a run "
                                 f"that crashed (a lock lasts the queue's LockDuration); run the command again "
                                 f"once the lock has expired"))
        else:
            report(Result(seq, dl.message_id, SKIPPED, **base,
                          detail="no longer in the dead-letter queue (replayed or purged meanwhile)"))


def _still_there(receiver: Any, seq: int) -> tuple[bool, dt.datetime | None]:
    """Whether a message the pass could not lock is still in the dead-letter queue (browsing sees locked
    messages), and until when it is locked when the broker says."""
    try:
        batch = receiver.peek_messages(max_message_count=1, sequence_number=seq)
    except Exception:  # noqa: BLE001 - cannot tell: say what is certain, that it was not handled
        return True, None
    if not batch or batch[0].sequence_number != seq:
        return False, None
    until = batch[0].locked_until_utc
    now = dt.datetime.now(dt.timezone.utc)
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=dt.timezone.utc)
    return True, until if until and until > now else None


def cmd_replay(ctx: Context) -> int:
    selection = selection_from(ctx.args, destructive=True)
    queue = ctx.target.queue
    with ctx.target.client() as client, ctx.dead_letter_receiver(client) as receiver:
        selected = ctx.gather(receiver, selection)
        report = Reporter(ctx, "replay:", len(selected))
        _skip_missing(report, selection, selected)
        if not selected:
            return report.finish("replay", dry_run=ctx.args.dry_run)
        rejected = [dl for dl in selected if (ctx.ledger.last_error(dl) or "").startswith("rejected")]
        for dl in rejected:
            emit(ctx.err, f"warning: seq {dl.sequence_number} was rejected by the app "
                          f"({ctx.ledger.last_error(dl)}); the copy is the same event, so it is rejected again "
                          "unless the app's configuration changed (a profile added, say) or the sender fixes it")
        if ctx.args.dry_run:
            for dl in selected:
                report(Result(dl.sequence_number, dl.message_id, "would-replay",
                              new_message_id=replay_message_id(queue, dl), replay_count=dl.replay_count + 1,
                              customer_id=dl.event.customer_id, event_type=dl.event.event_type,
                              detail=f"to queue {queue}; dead-lettered for: "
                                     f"{ctx.ledger.last_error(dl) or dl.dead_letter_reason or '-'}"), step=False)
            return report.finish("replay", dry_run=True)
        confirm(ctx, f"replay {len(selected)} dead-lettered messages to queue {queue} on {ctx.target.namespace}",
                 len(selected))
        with client.get_queue_sender(queue) as sender:
            replayer = Replayer(receiver, sender, queue, report, crash=CrashHook(ctx.values))
            try:
                _run_locked(ctx, receiver, report, selected, replayer)
            except BaseException:
                report.finish("replay")
                raise
    return report.finish("replay")


def cmd_export(ctx: Context) -> int:
    selection = selection_from(ctx.args, destructive=False)
    path = ctx.args.output or str(default_export_path(ctx.target.queue))
    with ctx.target.client() as client, ctx.dead_letter_receiver(client) as receiver:
        selected = ctx.gather(receiver, selection)
    try:
        count = write_export(path, selected, queue=ctx.target.queue, namespace=ctx.target.namespace,
                             redacted=ctx.args.redact)
    except FileExistsError:
        raise UsageError(f"{path} exists: the export never overwrites a file; choose another --output") from None
    except BrokenPipeError:
        raise  # -o - into a reader that stopped reading: ends quietly (cli.main)
    except OSError as exc:
        emit(ctx.err, f"error: cannot write {path}: {exc}")
        return EXIT_FAILED
    if path != "-":
        if ctx.json:
            write_json_line({"exported": count, "path": path, "redacted": ctx.args.redact}, ctx.out)
        else:
            emit(ctx.out, f"exported {count} message(s) from {ctx.where} to {path}")
    return EXIT_OK


def cmd_purge(ctx: Context) -> int:
    selection = selection_from(ctx.args, destructive=True)
    path = ctx.args.export or str(default_export_path(ctx.target.queue))
    if path == "-":
        raise UsageError("purge needs a real file for --export (stdout cannot be made durable)")
    with ctx.target.client() as client, ctx.dead_letter_receiver(client) as receiver:
        selected = ctx.gather(receiver, selection)
        report = Reporter(ctx, "purge:", len(selected))
        _skip_missing(report, selection, selected)
        if not selected:
            return report.finish("purge", dry_run=ctx.args.dry_run)
        if ctx.args.dry_run:
            for dl in selected:
                report(Result(dl.sequence_number, dl.message_id, "would-purge", customer_id=dl.event.customer_id,
                              event_type=dl.event.event_type, detail=f"after exporting it to {path}"), step=False)
            return report.finish("purge", dry_run=True, extra={"export": path})
        confirm(ctx, f"purge {len(selected)} dead-lettered messages from {ctx.where} (exported to {path} first)",
                 len(selected))
        try:
            count = write_export(path, selected, queue=ctx.target.queue, namespace=ctx.target.namespace)
        except FileExistsError:
            raise UsageError(f"{path} exists: the export never overwrites a file; choose another --export") from None
        except OSError as exc:
            emit(ctx.err, f"error: cannot write the export {path} ({exc}); nothing was removed")
            return EXIT_FAILED
        emit(ctx.err, f"exported {count} message(s) to {path} (synced to disk); removing them now")
        try:
            _run_locked(ctx, receiver, report, selected, Purger(receiver, report))
        except BaseException:
            report.finish("purge", extra={"export": path})
            raise
    return report.finish("purge", extra={"export": path})
