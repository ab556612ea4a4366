"""Lock exactly the dead-lettered messages that were selected, by sequence number, with the plain receive API.

Why this way: the SDK's ``receive_deferred_messages`` (the service's receive-by-sequence-number) only works for
*deferred* messages, and a dead-lettered message is not deferred; ``peek_messages`` never locks. What remains is
the ordinary peek-lock receive, which hands out the available messages lowest sequence number first. So the tool
browses (peek) to choose, then receives in peek-lock and matches sequence numbers:

- a selected message is handed to ``handle`` right away, which settles it (or asks for it to be held, or, when
  its lock ran out before anything was done with it, to receive it again);
- any other message is *held*: kept locked and unsettled so that the next receive moves past it instead of
  returning it again; held messages are abandoned at the end, which puts them back in the dead-letter queue as
  they were (abandon adds one to their delivery count, which means nothing in a dead-letter queue: it has no
  MaxDeliveryCount);
- the pass ends when every selected number was handled, when a receive brings nothing within ``max_wait``, or
  when every message seen so far came round again without a new one (held locks expired: all that is available
  was seen).

A selected number never received was gone (replayed, purged or expired meanwhile) or locked by another receiver;
the caller reports it as skipped. The price: during a pass the messages before the last selected one are locked,
so another receiver of the same dead-letter queue does not see them meanwhile.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any, Callable, Iterable

DEFAULT_BATCH = 20
SETTLED, HOLD, RETRY = "settled", "hold", "retry"
MAX_RETRIES = 3


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def keep_lock(receiver: Any, msg: Any, received_at: dt.datetime) -> bool:
    """Make sure at least half of the message's lock is left before acting on it (a message received in a batch
    waits while the ones before it are handled); renew it otherwise. False when the lock is already lost."""
    until = msg.locked_until_utc
    if until is None:
        return True
    until = _utc(until)
    now = dt.datetime.now(dt.timezone.utc)
    span = (until - received_at).total_seconds()
    if (until - now).total_seconds() > max(span / 2, 1.0):
        return True
    try:
        receiver.renew_message_lock(msg)
    except Exception:  # noqa: BLE001 - lost lock, or the message is gone: either way, not ours any more
        return False
    return True


def receive_selected(receiver: Any, wanted: Iterable[int], handle: Callable[[Any, dt.datetime], str], *,
                     max_wait: float = 5.0, batch: int = DEFAULT_BATCH) -> set[int]:
    """Receive from ``receiver`` (peek-lock, prefetch 0) until every sequence number in ``wanted`` went through
    ``handle(message, received_at)``, which returns SETTLED, HOLD (abandon it at the end, e.g. its copy could not
    be sent) or RETRY (its lock was lost before anything was done: receive it again). Returns the wanted numbers
    that were never handled."""
    pending = set(wanted)
    seen: set[int] = set()
    held: list[Any] = []
    retries: Counter[int] = Counter()
    repeats_since_new = 0
    try:
        while pending:
            # No more than still wanted: each extra message locked is one more held and abandoned.
            messages = receiver.receive_messages(max_message_count=min(batch, len(pending)), max_wait_time=max_wait)
            if not messages:
                break
            received_at = dt.datetime.now(dt.timezone.utc)
            for msg in messages:
                seq = msg.sequence_number
                if seq in seen:
                    repeats_since_new += 1
                else:
                    seen.add(seq)
                    repeats_since_new = 0
                if seq in pending:
                    outcome = handle(msg, received_at)
                    if outcome == RETRY:
                        retries[seq] += 1
                        if retries[seq] >= MAX_RETRIES:
                            pending.discard(seq)
                        continue
                    pending.discard(seq)
                    if outcome == SETTLED:
                        continue
                held.append(msg)
            if repeats_since_new > len(seen):
                break
    finally:
        for msg in held:
            try:
                receiver.abandon_message(msg)
            except Exception:  # noqa: BLE001 - a lost lock releases the message just the same
                pass
    return pending | {seq for seq, n in retries.items() if n >= MAX_RETRIES}
