"""Ledger over azure-data-tables (Azure Table Storage; Azurite locally).

One partition per customer (PartitionKey = customer id): the state row (RowKey ``state``) and one audit row per
handled event (RowKey ``event-`` + the first 32 hex digits of the event id's SHA-256, because an event id may hold
characters a RowKey cannot; the id itself is kept as a property). Keeping both in one partition gives the two things
the service layer needs: one query reads the state and an event's audit row, and one entity-group transaction
writes them together (ETag-checked), so an "applied" audit row never exists without the state it describes.

Rows hold ids, names, statuses, times and reasons only; the record types have no field for a secret.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import random
import threading
import time
from typing import Any, Callable

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableClient, UpdateMode

from ..domain.errors import LedgerConflict, PermanentError
from ..domain.records import FINAL_OUTCOMES, AuditEntry, CustomerRecord, OutboxEntry
from ..service_layer.ports import Ledger
from .azure_errors import classify, client_kwargs, retry_kwargs
from .telemetry import external_call

SERVICE = "ledger"
STATE_ROW = "state"
AUDIT_PREFIX = "event-"
# Every audit RowKey lies in [AUDIT_PREFIX, AUDIT_END): "." follows "-" in ASCII.
AUDIT_END = "event."
#: result events waiting to be published (the outbox), in the partition of the state change they report
OUTBOX_PREFIX = "outbox-"
OUTBOX_END = "outbox."

_STATE_FIELDS = [f.name for f in dataclasses.fields(CustomerRecord) if f.name not in ("customer_id", "etag")]
_AUDIT_FIELDS = [f.name for f in dataclasses.fields(AuditEntry) if f.name != "customer_id"]


#: partition prefix of the slot pools (capacity reservations); "~" sorts after every customer id
POOL_PREFIX = "~pool-"
POOL_COUNTER = "counter"
#: the partition the warm-up reads: no customer id starts with "~" (events.CUSTOMER_ID), and nothing writes there
WARM_UP_PARTITION = "~warm-up"
#: tries of a slot pool's ETag-checked counter before giving up (transient: the message is retried). Every
#: worker of every instance that takes a slot writes the same row, so a backlog arriving at once makes them collide:
#: each loser waits a random time up to an exponentially growing bound (full jitter) before it reads again, which
#: spreads them out instead of having them collide again in step.
POOL_ATTEMPTS = 30
POOL_BACKOFF_BASE = 0.01  # seconds
POOL_BACKOFF_CAP = 0.5


def _holder_key(holder: str) -> str:
    return "holder-" + hashlib.sha256(holder.encode("utf-8")).hexdigest()[:32]


_pool_locks: dict[tuple[str, str], threading.Lock] = {}
_pool_locks_guard = threading.Lock()


def _pool_lock(table: str, pool: str) -> threading.Lock:
    """One slot-pool write at a time per process and pool: a host's concurrent invocations would only collide on
    the pool's counter row, and each collision costs the losers a read, a refused write and a backoff. Across
    processes the ETag decides, as before; within one, the invocations queue instead of colliding."""
    with _pool_locks_guard:
        return _pool_locks.setdefault((table, pool), threading.Lock())


def _pool_backoff(attempt: int) -> None:
    """Before a pool's retry (none before the first try): a random wait below base x 2^attempt, at most the cap."""
    if attempt:
        time.sleep(random.uniform(0, min(POOL_BACKOFF_CAP, POOL_BACKOFF_BASE * 2 ** attempt)))


def _pool_conflict(exc: HttpResponseError) -> bool:
    # A transaction reports the failed operation's status: 409 (a row exists), 412 (the counter moved), 404 (gone).
    return exc.status_code in (404, 409, 412)


def audit_row_key(event_id: str) -> str:
    return AUDIT_PREFIX + hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:32]


def _to_cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise PermanentError("a naive datetime in a ledger record; the ledger stores UTC times only",
                                 service=SERVICE, operation="write")
        return value.astimezone(dt.timezone.utc)
    return value


def _from_cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        # The SDK's TablesEntityDatetime, as a plain aware datetime (it compares and copies like one).
        return dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                           value.microsecond, tzinfo=dt.timezone.utc)
    return value


def _state_entity(record: CustomerRecord) -> dict[str, Any]:
    entity = {"PartitionKey": record.customer_id, "RowKey": STATE_ROW}
    for name in _STATE_FIELDS:
        value = getattr(record, name)
        if value is not None:  # absent = None; a replace drops what a record no longer has
            entity[name] = _to_cell(value)
    return entity


def _audit_entity(entry: AuditEntry) -> dict[str, Any]:
    entity = {"PartitionKey": entry.customer_id, "RowKey": audit_row_key(entry.event_id)}
    for name in _AUDIT_FIELDS:
        value = getattr(entry, name)
        if value is not None:
            entity[name] = _to_cell(value)
    return entity


def outbox_row_key(message_id: str) -> str:
    return OUTBOX_PREFIX + hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:32]


def _outbox_entity(entry: OutboxEntry) -> dict[str, Any]:
    entity = {"PartitionKey": entry.customer_id, "RowKey": outbox_row_key(entry.message_id),
              "message_id": entry.message_id, "event_type": entry.event_type, "body": entry.body}
    if entry.created_at is not None:
        entity["created_at"] = _to_cell(entry.created_at)
    return entity


def _outbox(entity: Any) -> OutboxEntry:
    return OutboxEntry(customer_id=entity["PartitionKey"], message_id=entity.get("message_id", ""),
                       event_type=entity.get("event_type", ""), body=entity.get("body", ""),
                       created_at=_from_cell(entity.get("created_at")))


def _outbox_ops(entries, partition: str) -> list:
    ops = []
    for entry in entries:
        if entry.customer_id != partition:
            raise PermanentError("an outbox row must be in the partition of the change it reports",
                                 service=SERVICE, operation="outbox")
        ops.append(("upsert", _outbox_entity(entry), {"mode": UpdateMode.REPLACE}))
    return ops


def _record(entity: Any) -> CustomerRecord:
    values = {name: _from_cell(entity[name]) for name in _STATE_FIELDS if entity.get(name) is not None}
    return CustomerRecord(customer_id=entity["PartitionKey"], etag=entity.metadata.get("etag"), **values)


def _audit(entity: Any) -> AuditEntry:
    values = {name: _from_cell(entity[name]) for name in _AUDIT_FIELDS if entity.get(name) is not None}
    values.setdefault("event_id", "")
    values.setdefault("event_type", "")
    values.setdefault("event_time", None)
    values.setdefault("outcome", "")
    return AuditEntry(customer_id=entity["PartitionKey"], **values)


def _error_code(exc: HttpResponseError) -> str:
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code) or ""
    if not code and exc.response is not None:
        code = exc.response.headers.get("x-ms-error-code", "")
    return str(code)


class TableLedger(Ledger):
    def __init__(self, table_name: str, *, connection_string: str | None = None, endpoint: str | None = None,
                 credential: Any = None, ca_bundle: str | None = None, timeout: float = 30.0, **client_options: Any):
        """``client_options`` go to the TableClient as they are (azure-core's, e.g. ``raw_request_hook``)."""
        kwargs = {**retry_kwargs(), **client_kwargs(ca_bundle=ca_bundle, timeout=timeout), **client_options}
        if connection_string:
            self._client = TableClient.from_connection_string(connection_string, table_name, **kwargs)
        elif endpoint and credential is not None:
            self._client = TableClient(endpoint, table_name, credential=credential, **kwargs)
        else:
            raise ValueError("TableLedger needs a connection string, or an endpoint and a credential")
        self.table_name = table_name

    @classmethod
    def from_settings(cls, settings, credential: Any = None, **client_options: Any) -> "TableLedger":
        """The ledger the settings name (``settings.ledger``: the one rule the app and the ops tool share): a
        connection string, or an endpoint reached with the app's identity (``credential``)."""
        where = settings.ledger
        common = dict(ca_bundle=settings.local_stack_ca_bundle, timeout=settings.azure_timeout_seconds,
                      **client_options)
        if where.connection_string:
            return cls(where.table, connection_string=where.connection_string, **common)
        return cls(where.table, endpoint=where.endpoint, credential=credential, **common)

    # -- plumbing ------------------------------------------------------------------------------------------------
    def _write(self, operation: str, fn, *, conflict: Callable[[HttpResponseError], bool] = lambda exc: False):
        """Run one write; "table not found" creates the table (or finds it made) and runs the write once more. That
        holds also once this client made the table: a write sent before a concurrent one created it answers 404 after
        it (first writes of a fresh ledger, several at once). An ETag or existence conflict (``conflict``) is a
        LedgerConflict; everything else is classified once, here. One span per write."""
        with external_call(SERVICE, operation):
            return self._run_write(operation, fn, conflict)

    def _run_write(self, operation: str, fn, conflict: Callable[[HttpResponseError], bool]):
        try:
            try:
                return fn()
            except HttpResponseError as exc:
                if exc.status_code != 404 or _error_code(exc) != "TableNotFound":
                    raise
            self._create_table()
            return fn()
        except HttpResponseError as exc:
            if conflict(exc):
                what = "already exists" if exc.status_code == 409 else "changed since it was read"
                raise LedgerConflict(f"the customer's state row {what}", service=SERVICE, operation=operation,
                                     status=exc.status_code) from None
            raise classify(exc, service=SERVICE, operation=operation) from None
        except Exception as exc:
            raise classify(exc, service=SERVICE, operation=operation) from None

    def _read(self, operation: str, fn) -> list:
        """Run a query; a table that does not exist yet holds no rows. Reads never create it: the ops tool reads
        the ledger with a read-only role. One span per query."""
        with external_call(SERVICE, operation):
            return self._run_read(operation, fn)

    def _run_read(self, operation: str, fn) -> list:
        try:
            return fn()
        except HttpResponseError as exc:
            if exc.status_code == 404 and _error_code(exc) == "TableNotFound":
                return []
            raise classify(exc, service=SERVICE, operation=operation) from None
        except Exception as exc:
            raise classify(exc, service=SERVICE, operation=operation) from None

    def _create_table(self) -> None:
        try:
            self._client.create_table()
        except ResourceExistsError:
            pass  # another worker made it first
        except Exception as exc:
            raise classify(exc, service=SERVICE, operation="create_table") from None

    def warm_up(self) -> None:
        """One read of a partition no customer has (it creates nothing): the connection is open and, with an
        identity, the token fetched."""
        self.get_customer(WARM_UP_PARTITION)

    # -- state and audit -----------------------------------------------------------------------------------------
    def get_customer(self, customer_id: str, event_id: str | None = None
                     ) -> tuple[CustomerRecord | None, AuditEntry | None]:
        if event_id is None:
            query, parameters = "PartitionKey eq @pk and RowKey eq 'state'", {"pk": customer_id}
        else:
            # Spaces around the parameters: the SDK's @name substitution reads up to the next space.
            query = "PartitionKey eq @pk and ( RowKey eq 'state' or RowKey eq @rk )"
            parameters = {"pk": customer_id, "rk": audit_row_key(event_id)}
        rows = self._read("get_customer", lambda: list(self._client.query_entities(query, parameters=parameters)))
        record = audit = None
        for row in rows:
            if row["RowKey"] == STATE_ROW:
                record = _record(row)
            else:
                audit = _audit(row)
        return record, audit

    def create_customer(self, record: CustomerRecord) -> CustomerRecord:
        meta = self._write("create_customer", lambda: self._client.create_entity(_state_entity(record)),
                           conflict=lambda exc: isinstance(exc, ResourceExistsError))
        return record.copy(etag=meta["etag"])

    def update_customer(self, record: CustomerRecord, audit: AuditEntry | None = None,
                        outbox: tuple[OutboxEntry, ...] = ()) -> CustomerRecord:
        if not record.etag:
            raise PermanentError("update_customer needs the record as read (with its etag)", service=SERVICE,
                                 operation="update_customer")
        if_match = {"mode": UpdateMode.REPLACE, "etag": record.etag, "match_condition": MatchConditions.IfNotModified}
        state = _state_entity(record)

        def changed(exc: HttpResponseError) -> bool:
            # Changed (412) or deleted (404) since it was read: read again and decide again.
            return isinstance(exc, ResourceModifiedError) or exc.status_code == 412 or \
                (exc.status_code == 404 and _error_code(exc) != "TableNotFound")

        extra = _outbox_ops(outbox, record.customer_id)
        if audit is not None and audit.customer_id == record.customer_id:
            extra.insert(0, ("upsert", _audit_entity(audit), {"mode": UpdateMode.REPLACE}))
        if extra:
            # One entity-group transaction: the state, the audit row and the result event stand or fall together.
            results = self._write("update_customer", lambda: self._client.submit_transaction(
                [("update", state, if_match), *extra]), conflict=changed)
            etag = results[0]["etag"]
        else:
            etag = self._write("update_customer", lambda: self._client.update_entity(
                state, mode=UpdateMode.REPLACE, etag=record.etag, match_condition=MatchConditions.IfNotModified),
                conflict=changed)["etag"]
        if audit is not None and audit.customer_id != record.customer_id:
            self.set_audit(audit)  # another partition: no transaction can span both
        return record.copy(etag=etag)

    def set_audit(self, entry: AuditEntry, outbox: tuple[OutboxEntry, ...] = ()) -> bool:
        """Append-only for an applied or stale event: read the row, then write only if it may change, with its ETag
        (or as an insert), so a concurrent writer makes us look again rather than overwrite. Outbox rows go in the
        same transaction."""
        entity = _audit_entity(entry)
        extra = _outbox_ops(outbox, entry.customer_id)
        for _ in range(5):
            rows = self._read("set_audit", lambda: list(self._client.query_entities(
                "PartitionKey eq @pk and RowKey eq @rk",
                parameters={"pk": entity["PartitionKey"], "rk": entity["RowKey"]})))
            current = rows[0] if rows else None
            if current is not None and current.get("outcome") in FINAL_OUTCOMES and \
                    current.get("outcome") != entry.outcome:
                return False
            try:
                if extra:
                    op = ("create", entity) if current is None else (
                        "update", entity, {"mode": UpdateMode.REPLACE, "etag": current.metadata["etag"],
                                           "match_condition": MatchConditions.IfNotModified})
                    self._write("set_audit", lambda: self._client.submit_transaction([op, *extra]),
                                conflict=lambda exc: exc.status_code in (404, 409, 412))
                elif current is None:
                    self._write("set_audit", lambda: self._client.create_entity(entity),
                                conflict=lambda exc: isinstance(exc, ResourceExistsError))
                else:
                    self._write("set_audit", lambda: self._client.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified),
                        conflict=lambda exc: isinstance(exc, ResourceModifiedError) or exc.status_code in (404, 412))
                return True
            except LedgerConflict:
                continue  # another writer got there first: read again and decide again
        raise LedgerConflict("the audit row kept changing while it was written", service=SERVICE,
                             operation="set_audit")

    # -- outbox ----------------------------------------------------------------------------------------------------
    def set_outbox(self, entries: tuple[OutboxEntry, ...]) -> None:
        if not entries:
            return
        ops = _outbox_ops(entries, entries[0].customer_id)
        self._write("set_outbox", lambda: self._client.submit_transaction(ops))

    def list_outbox(self, customer_id: str | None = None) -> list[OutboxEntry]:
        if customer_id is None:
            # A scan of every partition: the sweep's query, not the per-event path.
            query, parameters = "RowKey ge @lo and RowKey lt @hi", {"lo": OUTBOX_PREFIX, "hi": OUTBOX_END}
        else:
            query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
            parameters = {"pk": customer_id, "lo": OUTBOX_PREFIX, "hi": OUTBOX_END}
        rows = self._read("list_outbox", lambda: list(self._client.query_entities(query, parameters=parameters)))
        epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        return sorted((_outbox(row) for row in rows), key=lambda e: (e.created_at or epoch, e.message_id))

    def delete_outbox(self, entry: OutboxEntry) -> bool:
        try:
            self._client.delete_entity(entry.customer_id, outbox_row_key(entry.message_id))
        except Exception as exc:
            raise classify(exc, service=SERVICE, operation="delete_outbox") from None
        return True  # Table Storage answers a delete of a missing row with success too: "gone" is not told apart

    # -- slot pools ---------------------------------------------------------------------------------------------
    def _pool_rows(self, pool: str, holder: str):
        key = POOL_PREFIX + pool
        rows = self._read("reserve_slot", lambda: list(self._client.query_entities(
            "PartitionKey eq @pk and ( RowKey eq 'counter' or RowKey eq @rk )",
            parameters={"pk": key, "rk": _holder_key(holder)})))
        counter = next((r for r in rows if r["RowKey"] == POOL_COUNTER), None)
        held = next((r for r in rows if r["RowKey"] != POOL_COUNTER), None)
        return key, counter, held

    def reserve_slot(self, pool: str, holder: str, limit: int, *, seed: Callable[[], int]) -> bool:
        """One partition per pool: a counter row and a row per holder, written together in one entity-group
        transaction, the counter ETag-checked, so two workers never take the last slot both."""
        with _pool_lock(self.table_name, pool):
            return self._reserve_slot(pool, holder, limit, seed)

    def _reserve_slot(self, pool: str, holder: str, limit: int, seed: Callable[[], int]) -> bool:
        for attempt in range(POOL_ATTEMPTS):
            _pool_backoff(attempt)
            key, counter, held = self._pool_rows(pool, holder)
            if held is not None:
                return True
            holder_row = {"PartitionKey": key, "RowKey": _holder_key(holder), "holder": holder}
            if counter is None:
                used = int(seed())
                first = {"PartitionKey": key, "RowKey": POOL_COUNTER, "used": used + (used < limit)}
                ops = [("create", first)] + ([("create", holder_row)] if used < limit else [])
            else:
                used = int(counter.get("used", 0))
                if used >= limit:
                    return False
                ops = [("update", {"PartitionKey": key, "RowKey": POOL_COUNTER, "used": used + 1},
                        {"mode": UpdateMode.REPLACE, "etag": counter.metadata["etag"],
                         "match_condition": MatchConditions.IfNotModified}),
                       ("create", holder_row)]
            try:
                self._write("reserve_slot", lambda: self._client.submit_transaction(ops), conflict=_pool_conflict)
            except LedgerConflict:
                continue  # another worker moved the counter first: read again and decide again
            return used < limit
        raise LedgerConflict(f"the {pool} pool kept changing while a slot was taken", service=SERVICE,
                             operation="reserve_slot")

    def release_slot(self, pool: str, holder: str) -> bool:
        with _pool_lock(self.table_name, pool):
            return self._release_slot(pool, holder)

    def _release_slot(self, pool: str, holder: str) -> bool:
        for attempt in range(POOL_ATTEMPTS):
            _pool_backoff(attempt)
            key, counter, held = self._pool_rows(pool, holder)
            if held is None or counter is None:
                return False
            ops = [("update", {"PartitionKey": key, "RowKey": POOL_COUNTER,
                               "used": max(0, int(counter.get("used", 0)) - 1)},
                    {"mode": UpdateMode.REPLACE, "etag": counter.metadata["etag"],
                     "match_condition": MatchConditions.IfNotModified}),
                   ("delete", {"PartitionKey": key, "RowKey": held["RowKey"]},
                    {"etag": held.metadata["etag"], "match_condition": MatchConditions.IfNotModified})]
            try:
                self._write("release_slot", lambda: self._client.submit_transaction(ops), conflict=_pool_conflict)
            except LedgerConflict:
                continue
            return True
        raise LedgerConflict(f"the {pool} pool kept changing while a slot was given back", service=SERVICE,
                             operation="release_slot")

    def list_audit(self, customer_id: str) -> list[AuditEntry]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        parameters = {"pk": customer_id, "lo": AUDIT_PREFIX, "hi": AUDIT_END}
        rows = self._read("list_audit", lambda: list(self._client.query_entities(query, parameters=parameters)))
        entries = [_audit(row) for row in rows]
        epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        return sorted(entries, key=lambda e: (e.recorded_at or epoch, e.event_time or epoch))

    def list_customers(self) -> list[CustomerRecord]:
        rows = self._read("list_customers", lambda: list(self._client.query_entities(
            "RowKey eq @rk", parameters={"rk": STATE_ROW})))
        return [_record(row) for row in rows]

    def close(self) -> None:
        self._client.close()
