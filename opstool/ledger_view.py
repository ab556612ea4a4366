"""What the app's ledger says about a dead-lettered event: the reason it gave up, and the customer's audit trail.

The app dead-letters with a reason code and the rule (see docs/DESIGN.md), or, after a crash on every delivery,
the broker does with ``MaxDeliveryCountExceeded``; the app's full record is in the ledger: an audit row per
handled event (outcome and reason), filed under the customer, or under ``~unparsed`` keyed by message id when no
customer id could be read. The ledger is read only; a ledger that cannot be reached costs the LEDGER column, not
the command.
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, TextIO

from shared.domain.events import CUSTOMER_ID
from shared.domain.records import AuditEntry

from .dead_letters import DeadLetter
from .output import emit, safe_text

UNPARSED_PARTITION = "~unparsed"  # as shared/service_layer/provisioning.py files rejections without a customer id


@dataclass(frozen=True)
class LedgerNote:
    outcome: str
    reason: str | None
    recorded_at: Any = None
    attempts: int | None = None

    def __str__(self) -> str:
        return f"{self.outcome}: {self.reason}" if self.reason else self.outcome


def audit_partition(dl: DeadLetter) -> tuple[str, str | None]:
    """(partition, audit key) under which the app audits this message, as ``handle_message`` does."""
    cid = dl.event.customer_id
    if cid and CUSTOMER_ID.fullmatch(cid):
        return cid, dl.event.event_id or dl.message_id
    return UNPARSED_PARTITION, dl.message_id or dl.event.event_id


class LedgerView:
    def __init__(self, ledger: Any | None, *, warn: TextIO = sys.stderr, workers: int = 8):
        self.ledger = ledger
        self._warn = warn
        self._warned = False
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str | None], LedgerNote | None] = {}
        self._workers = workers
        self.failure: str | None = None

    @property
    def available(self) -> bool:
        return self.ledger is not None and self.failure is None

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = safe_text(f"{type(exc).__name__}: {exc}", 300)
            if not self._warned:
                self._warned = True
                emit(self._warn, f"warning: the ledger cannot be read ({self.failure}); ledger columns stay empty")

    def note(self, dl: DeadLetter) -> LedgerNote | None:
        """The audit row of this message's event (the last outcome and reason the app recorded), if any."""
        if not self.available:
            return None
        partition, key = audit_partition(dl)
        if key is None:
            return None
        cache_key = (partition, key)
        if cache_key in self._cache:
            return self._cache[cache_key]
        try:
            record, audit = self.ledger.get_customer(partition, key)
            if audit is None and partition != UNPARSED_PARTITION and dl.message_id and dl.message_id != key:
                _, audit = self.ledger.get_customer(partition, dl.message_id)
        except Exception as exc:  # noqa: BLE001 - any ledger failure: say so once, keep going without it
            self._failed(exc)
            return None
        note = None
        if audit is not None:
            note = LedgerNote(audit.outcome, audit.reason, audit.recorded_at, audit.attempts)
        elif record is not None and record.last_error and record.pending_event_id == key:
            note = LedgerNote(record.status, record.last_error, record.updated_at)
        with self._lock:
            self._cache[cache_key] = note
        return note

    def last_error(self, dl: DeadLetter) -> str | None:
        note = self.note(dl)
        return str(note) if note else None

    def prefetch(self, messages: Iterable[DeadLetter]) -> None:
        """Read the notes of many messages concurrently (one ledger query each)."""
        if not self.available:
            return
        items = list(messages)
        if len(items) > 1:
            with ThreadPoolExecutor(max_workers=self._workers) as pool:
                list(pool.map(self.note, items))

    def audit_trail(self, dl: DeadLetter) -> tuple[Any, list[AuditEntry]]:
        """(state record, every audit row) of the message's customer (or of ``~unparsed``: only this message's)."""
        if not self.available:
            return None, []
        partition, key = audit_partition(dl)
        try:
            if partition == UNPARSED_PARTITION:
                _, audit = self.ledger.get_customer(partition, key) if key else (None, None)
                return None, [audit] if audit else []
            record, _ = self.ledger.get_customer(partition)
            return record, self.ledger.list_audit(partition)
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
            return None, []
