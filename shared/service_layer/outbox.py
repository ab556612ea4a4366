"""Result events through the ledger's outbox: written with the state change they report, published after it.

Why an outbox: publishing to the topic and writing the ledger cannot be one transaction. Publishing first could
announce a change that then fails to commit (an invented event); committing first and publishing in the same breath
loses the event when the worker dies in between. So the event is a row in the customer's partition, written in the
entity-group transaction of the state change (``Ledger.update_customer(..., outbox=...)``), then sent, then
deleted. A row that is still there was not sent, or not known to be: it is sent again, with the same message id,
so the topic's duplicate detection drops the second copy.

Who sends a row left behind (decided, see docs/DESIGN.md "Result events"):
- the attempt that wrote it, right after the commit; if that send fails the attempt raises a TransientError, so
  the message handler schedules a retry copy;
- the next delivery of the same event (the host redelivers a message whose invocation died, or the retry copy):
  it finds the event applied (a duplicate) and sends what the customer's outbox holds;
- :func:`sweep` for anything older than a grace period, whatever the partition (``publish_pending``): for the
  rare row whose event will never be delivered again (its retry budget spent while Service Bus was down).
Several instances may send one row at once; the message id makes that harmless.
"""
from __future__ import annotations

import datetime as dt
import logging

from ..domain.errors import TransientError
from ..domain.records import OutboxEntry
from ..domain.results import ResultEvent
from .ports import Ledger, ResultPublisher
from .step_log import StepLog

#: rows younger than this are left to the attempt that wrote them (it sends right after its commit)
SWEEP_GRACE_SECONDS = 60.0
#: the outbox partition of result events about no known customer (an orphan application without a customer id)
UNATTRIBUTED_PARTITION = "~unattributed"
#: messages per send: a Service Bus batch holds at most 256 KiB on the Standard tier; a result event is < 2 KiB
PUBLISH_BATCH = 50


class ResultsPending(TransientError):
    """The state change is committed but its result event could not be sent yet: a later delivery sends it."""


def outbox_entry(result: ResultEvent, *, partition: str | None = None, type_prefix: str = "",
                 now: dt.datetime | None = None) -> OutboxEntry:
    return OutboxEntry(customer_id=partition or result.customer_id or UNATTRIBUTED_PARTITION,
                       message_id=result.message_id, event_type=result.type, body=result.body(type_prefix),
                       created_at=now or result.time)


def publish(publisher: ResultPublisher | None, ledger: Ledger, entries: list[OutboxEntry], log: StepLog) -> int:
    """Send ``entries``, then delete their rows. Raises ResultsPending when the topic cannot take them (the rows
    stay for a later delivery or the sweep)."""
    if publisher is None or not entries:
        return 0
    for start in range(0, len(entries), PUBLISH_BATCH):
        _send(publisher, ledger, entries[start:start + PUBLISH_BATCH], log)
    return len(entries)


def _send(publisher: ResultPublisher, ledger: Ledger, entries: list[OutboxEntry], log: StepLog) -> None:
    try:
        with log.step("servicebus.publish_results") as s:
            s.detail = "types=" + ",".join(sorted({e.event_type for e in entries}))
            publisher.publish(entries)
    except TransientError as exc:
        raise ResultsPending(f"the result events are committed but not sent yet ({exc.reason})",
                             service="servicebus", operation="publish_results", retry_after=exc.retry_after) from None
    for entry in entries:
        try:
            with log.step("ledger.delete_outbox"):
                ledger.delete_outbox(entry)
        except Exception:  # noqa: BLE001 - sent already: a row left behind is sent again under the same id, dropped
            pass


def publish_pending(publisher: ResultPublisher | None, ledger: Ledger, customer_id: str, log: StepLog) -> int:
    """Send what the customer's outbox holds (a delivery of an event already applied: its own may be there)."""
    if publisher is None:
        return 0
    with log.step("ledger.list_outbox") as s:
        entries = ledger.list_outbox(customer_id)
        s.detail = f"pending={len(entries)}"
    return publish(publisher, ledger, entries, log)


def sweep(publisher: ResultPublisher | None, ledger: Ledger, *, now: dt.datetime,
          grace_seconds: float = SWEEP_GRACE_SECONDS) -> int:
    """Send every outbox row older than ``grace_seconds``, of every customer. Returns how many were sent."""
    if publisher is None:
        return 0
    log = StepLog(None, None, None)
    cutoff = now - dt.timedelta(seconds=grace_seconds)
    entries = [e for e in ledger.list_outbox(None) if e.created_at is None or e.created_at <= cutoff]
    sent = 0
    for partition in sorted({e.customer_id for e in entries}):
        sent += publish(publisher, ledger, [e for e in entries if e.customer_id == partition], log)
    if sent:
        log.emit("outbox.sweep", "published", level=logging.WARNING,
                 detail=f"count={sent}: result events left behind by an attempt that did not send them")
    return sent
