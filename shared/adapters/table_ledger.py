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
import threading
from collections import Counter
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableClient, UpdateMode

from ..domain.errors import LedgerConflict, PermanentError
from ..domain.records import AuditEntry, CustomerRecord
from ..service_layer.ports import Ledger
from .azure_errors import classify, client_kwargs, retry_kwargs

SERVICE = "ledger"
STATE_ROW = "state"
AUDIT_PREFIX = "event-"
# Every audit RowKey lies in [AUDIT_PREFIX, AUDIT_END): "." follows "-" in ASCII.
AUDIT_END = "event."

_STATE_FIELDS = [f.name for f in dataclasses.fields(CustomerRecord) if f.name not in ("customer_id", "etag")]
_AUDIT_FIELDS = [f.name for f in dataclasses.fields(AuditEntry) if f.name != "customer_id"]


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
                 credential: Any = None, ca_bundle: str | None = None, timeout: float = 30.0,
                 client: TableClient | None = None, **client_options: Any):
        """``client_options`` go to the TableClient as they are (e.g. ``raw_request_hook``)."""
        if client is None:
            kwargs = {**retry_kwargs(), **client_kwargs(ca_bundle=ca_bundle, timeout=timeout), **client_options}
            if connection_string:
                client = TableClient.from_connection_string(connection_string, table_name, **kwargs)
            elif endpoint and credential is not None:
                client = TableClient(endpoint, table_name, credential=credential, **kwargs)
            else:
                raise ValueError("TableLedger needs a connection string, or an endpoint and a credential")
        self._client = client
        self.table_name = table_name
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._table_ready = False

    @classmethod
    def from_settings(cls, settings, credential: Any = None, *, table_name: str | None = None,
                      **client_options: Any) -> "TableLedger":
        """A connection string when one is set, else the endpoint with the app's identity (``credential``)."""
        table = table_name or settings.ledger_table
        common = dict(ca_bundle=settings.local_stack_ca_bundle, timeout=settings.azure_timeout_seconds,
                      **client_options)
        if settings.ledger_connection:
            return cls(table, connection_string=settings.ledger_connection, **common)
        return cls(table, endpoint=settings.ledger_table_endpoint, credential=credential, **common)

    # -- plumbing ------------------------------------------------------------------------------------------------
    def _count(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1

    def _run(self, operation: str, fn):
        """Run ``fn``; on the first "table not found" create the table and run it once more."""
        self._count(operation)
        try:
            return fn()
        except HttpResponseError as exc:
            if exc.status_code != 404 or _error_code(exc) != "TableNotFound" or self._table_ready:
                raise
        self._create_table()
        self._count(operation)
        return fn()

    def _read(self, operation: str, fn) -> list:
        """Run a query; a table that does not exist yet holds no rows. Reads never create it: the ops tool reads
        the ledger with a read-only role."""
        self._count(operation)
        try:
            return fn()
        except HttpResponseError as exc:
            if exc.status_code == 404 and _error_code(exc) == "TableNotFound":
                return []
            raise

    def _create_table(self) -> None:
        self._count("create_table")
        try:
            self._client.create_table()
        except ResourceExistsError:
            pass  # another worker made it first
        except Exception as exc:
            raise classify(exc, service=SERVICE, operation="create_table") from None
        self._table_ready = True

    def _error(self, exc: Exception, operation: str):
        return classify(exc, service=SERVICE, operation=operation)

    # -- state and audit -----------------------------------------------------------------------------------------
    def get_customer(self, customer_id: str, event_id: str | None = None
                     ) -> tuple[CustomerRecord | None, AuditEntry | None]:
        if event_id is None:
            query, parameters = "PartitionKey eq @pk and RowKey eq 'state'", {"pk": customer_id}
        else:
            # Spaces around the parameters: the SDK's @name substitution reads up to the next space.
            query = "PartitionKey eq @pk and ( RowKey eq 'state' or RowKey eq @rk )"
            parameters = {"pk": customer_id, "rk": audit_row_key(event_id)}
        try:
            rows = self._read("get_customer", lambda: list(self._client.query_entities(query, parameters=parameters)))
        except Exception as exc:
            raise self._error(exc, "get_customer") from None
        record = audit = None
        for row in rows:
            if row["RowKey"] == STATE_ROW:
                record = _record(row)
            else:
                audit = _audit(row)
        return record, audit

    def create_customer(self, record: CustomerRecord) -> CustomerRecord:
        try:
            meta = self._run("create_customer", lambda: self._client.create_entity(_state_entity(record)))
        except ResourceExistsError:
            raise LedgerConflict("the customer's state row already exists", service=SERVICE,
                                 operation="create_customer", status=409) from None
        except Exception as exc:
            raise self._error(exc, "create_customer") from None
        return record.copy(etag=meta["etag"])

    def update_customer(self, record: CustomerRecord, audit: AuditEntry | None = None) -> CustomerRecord:
        if not record.etag:
            raise PermanentError("update_customer needs the record as read (with its etag)", service=SERVICE,
                                 operation="update_customer")
        if_match = {"mode": UpdateMode.REPLACE, "etag": record.etag, "match_condition": MatchConditions.IfNotModified}
        state = _state_entity(record)
        try:
            if audit is not None and audit.customer_id == record.customer_id:
                results = self._run("update_customer", lambda: self._client.submit_transaction(
                    [("update", state, if_match), ("upsert", _audit_entity(audit), {"mode": UpdateMode.REPLACE})]))
                etag = results[0]["etag"]
            else:
                etag = self._run("update_customer", lambda: self._client.update_entity(
                    state, mode=UpdateMode.REPLACE, etag=record.etag,
                    match_condition=MatchConditions.IfNotModified))["etag"]
        except HttpResponseError as exc:
            if isinstance(exc, ResourceModifiedError) or exc.status_code == 412 or \
                    (exc.status_code == 404 and _error_code(exc) != "TableNotFound"):
                # Changed (412) or deleted (404) since it was read: read again and decide again.
                raise LedgerConflict("the customer's state row changed since it was read", service=SERVICE,
                                     operation="update_customer", status=exc.status_code) from None
            raise self._error(exc, "update_customer") from None
        except Exception as exc:
            raise self._error(exc, "update_customer") from None
        if audit is not None and audit.customer_id != record.customer_id:
            self.set_audit(audit)  # another partition: no transaction can span both
        return record.copy(etag=etag)

    def set_audit(self, entry: AuditEntry) -> None:
        try:
            self._run("set_audit", lambda: self._client.upsert_entity(_audit_entity(entry), mode=UpdateMode.REPLACE))
        except Exception as exc:
            raise self._error(exc, "set_audit") from None

    def list_audit(self, customer_id: str) -> list[AuditEntry]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        parameters = {"pk": customer_id, "lo": AUDIT_PREFIX, "hi": AUDIT_END}
        try:
            rows = self._read("list_audit", lambda: list(self._client.query_entities(query, parameters=parameters)))
        except Exception as exc:
            raise self._error(exc, "list_audit") from None
        entries = [_audit(row) for row in rows]
        epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        return sorted(entries, key=lambda e: (e.recorded_at or epoch, e.event_time or epoch))

    def list_customers(self) -> list[CustomerRecord]:
        try:
            rows = self._read("list_customers", lambda: list(self._client.query_entities(
                "RowKey eq @rk", parameters={"rk": STATE_ROW})))
        except Exception as exc:
            raise self._error(exc, "list_customers") from None
        return [_record(row) for row in rows]

    def close(self) -> None:
        self._client.close()

