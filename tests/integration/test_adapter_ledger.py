"""TableLedger against Azurite, through the real azure-data-tables TableClient."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid

import pytest
from azure.data.tables import TableClient

from shared.adapters.table_ledger import TableLedger, audit_row_key
from shared.domain.errors import LedgerConflict, PermanentError, TransientError
from shared.domain.records import APPLIED, FAILED, PROVISIONED, PROVISIONING, AuditEntry, CustomerRecord

pytestmark = pytest.mark.timeout(60)

T0 = dt.datetime(2026, 11, 26, 14, 0, 0, 123456, tzinfo=dt.timezone.utc)


class RequestCounter:
    def __init__(self):
        self.requests: list[str] = []

    def __call__(self, request):
        self.requests.append(f"{request.http_request.method} {request.http_request.url}")


@pytest.fixture
def counter():
    return RequestCounter()


@pytest.fixture
def ledger(settings, counter):
    # A table of its own per test: the first call creates it.
    adapter = TableLedger.from_settings(settings.model_copy(update={"ledger_table": "ledger" + uuid.uuid4().hex[:12]}),
                                        raw_request_hook=counter)
    yield adapter
    adapter.close()


def new_customer() -> str:
    return "cust-" + uuid.uuid4().hex[:10]


def record(customer_id: str, **changes) -> CustomerRecord:
    base = CustomerRecord(customer_id=customer_id, status=PROVISIONING, profile="oem", display_name="Acme",
                          auth0_create_intent="evt-1", pending_event_id="evt-1", claim_owner="worker-a",
                          claim_expires=T0 + dt.timedelta(minutes=5), updated_at=T0)
    return dataclasses.replace(base, **changes)


def audit(customer_id: str, event_id: str, outcome: str = APPLIED, **changes) -> AuditEntry:
    base = AuditEntry(customer_id=customer_id, event_id=event_id, event_type="customer.created", event_time=T0,
                      outcome=outcome, reason=None, attempts=1, message_id="msg-1", recorded_at=T0)
    return dataclasses.replace(base, **changes)


def table_client(settings, ledger) -> TableClient:
    return TableClient.from_connection_string(settings.ledger.connection_string, ledger.table_name)


def test_reads_never_create_the_table_and_the_first_write_does(ledger, counter):
    # A read-only reader (the ops tool) must not need the right to create it; a missing table holds no rows.
    def table_creates() -> int:
        return sum(1 for r in counter.requests if r.startswith("POST ") and r.split("?")[0].endswith("/Tables"))

    assert ledger.get_customer(new_customer()) == (None, None)
    assert ledger.list_audit(new_customer()) == [] and ledger.list_customers() == []
    assert table_creates() == 0
    ledger.create_customer(record(new_customer()))
    assert table_creates() == 1
    ledger.create_customer(record(new_customer()))
    assert table_creates() == 1


def test_a_write_that_finds_no_table_after_this_client_made_it_makes_it_again(ledger, settings):
    # What a write sent just before a concurrent one created the table sees (first writes of a fresh ledger, several
    # invocations at once): "table not found" although this client's table is ready. The write must not be lost.
    ledger.create_customer(record(new_customer()))
    table_client(settings, ledger).delete_table()
    customer = new_customer()
    assert ledger.set_audit(audit(customer, "evt-after", outcome="rejected", reason="data.profile: is required"))
    assert [a.event_id for a in ledger.list_audit(customer)] == ["evt-after"]


def test_create_then_read_round_trips_every_field(ledger):
    cid = new_customer()
    created = ledger.create_customer(record(cid))
    assert created.etag
    found, entry = ledger.get_customer(cid)
    assert entry is None
    assert found == record(cid)  # etag is not compared
    assert found.etag == created.etag
    assert found.claim_expires == T0 + dt.timedelta(minutes=5) and found.claim_expires.tzinfo == dt.timezone.utc
    assert type(found.updated_at) is dt.datetime


def test_create_of_an_existing_customer_is_a_conflict(ledger):
    cid = new_customer()
    ledger.create_customer(record(cid))
    with pytest.raises(LedgerConflict) as info:
        ledger.create_customer(record(cid, display_name="Other"))
    assert info.value.transient and info.value.status == 409
    assert ledger.get_customer(cid)[0].display_name == "Acme"


def test_update_with_audit_is_one_transaction_and_one_read_finds_both(ledger, counter):
    cid = new_customer()
    created = ledger.create_customer(record(cid))
    done = created.copy(status=PROVISIONED, auth0_client_id="tpc_abc", claim_owner=None, claim_expires=None,
                        pending_event_id=None, last_event_id="evt-1", last_event_type="customer.created",
                        last_event_time=T0)
    counter.requests.clear()
    updated = ledger.update_customer(done, audit(cid, "evt-1"))
    assert len(counter.requests) == 1 and "$batch" in counter.requests[0]
    assert updated.etag and updated.etag != created.etag

    counter.requests.clear()
    found, entry = ledger.get_customer(cid, "evt-1")
    assert len(counter.requests) == 1  # the state row and the event's audit row in one query
    assert found.status == PROVISIONED and found.auth0_client_id == "tpc_abc"
    assert found.claim_owner is None and found.claim_expires is None  # replaced, not merged
    assert found.etag == updated.etag
    assert entry == audit(cid, "evt-1")


def test_a_stale_etag_is_a_conflict_and_writes_nothing(ledger):
    cid = new_customer()
    created = ledger.create_customer(record(cid))
    ledger.update_customer(created.copy(display_name="First writer"))
    with pytest.raises(LedgerConflict) as info:
        ledger.update_customer(created.copy(display_name="Second writer"), audit(cid, "evt-2"))
    assert info.value.status == 412
    found, entry = ledger.get_customer(cid, "evt-2")
    assert found.display_name == "First writer"
    assert entry is None  # the audit row went down with the state row


def test_a_stale_etag_without_audit_is_a_conflict(ledger):
    cid = new_customer()
    created = ledger.create_customer(record(cid))
    ledger.update_customer(created.copy(status=PROVISIONED))
    with pytest.raises(LedgerConflict):
        ledger.update_customer(created.copy(status=FAILED))


def test_updating_a_deleted_row_is_a_conflict(ledger, settings):
    cid = new_customer()
    created = ledger.create_customer(record(cid))
    table_client(settings, ledger).delete_entity(cid, "state")
    with pytest.raises(LedgerConflict):
        ledger.update_customer(created.copy(status=PROVISIONED), audit(cid, "evt-1"))


def test_audit_rows_are_keyed_by_a_hash_and_keep_the_event_id(ledger, settings):
    cid = new_customer()
    event_id = "crm/2026#11?26\\odd id"  # characters a RowKey may not hold
    ledger.set_audit(audit(cid, event_id, outcome=FAILED, reason="auth0.create_application: 503"))
    key = audit_row_key(event_id)
    assert key == "event-" + hashlib.sha256(event_id.encode()).hexdigest()[:32]
    row = table_client(settings, ledger).get_entity(cid, key)
    assert row["event_id"] == event_id and row["outcome"] == FAILED
    assert ledger.get_customer(cid, event_id) == (None, audit(cid, event_id, outcome=FAILED,
                                                              reason="auth0.create_application: 503"))
    ledger.set_audit(audit(cid, event_id, outcome=APPLIED, attempts=2))  # replaces the row
    assert ledger.get_customer(cid, event_id)[1].attempts == 2


def test_list_audit_and_list_customers(ledger):
    cid, other = new_customer(), new_customer()
    created = ledger.create_customer(record(cid))
    ledger.create_customer(record(other))
    ledger.update_customer(created, audit(cid, "evt-2", recorded_at=T0 + dt.timedelta(seconds=2)))
    ledger.set_audit(audit(cid, "evt-1", recorded_at=T0 + dt.timedelta(seconds=1)))
    ledger.set_audit(audit("~unparsed", "msg-9", outcome="rejected"))
    assert [e.event_id for e in ledger.list_audit(cid)] == ["evt-1", "evt-2"]
    assert [e.event_id for e in ledger.list_audit("~unparsed")] == ["msg-9"]
    assert sorted(r.customer_id for r in ledger.list_customers()) == sorted([cid, other])


def test_a_naive_datetime_is_refused(ledger):
    with pytest.raises(PermanentError):
        ledger.create_customer(record(new_customer(), updated_at=dt.datetime(2026, 1, 1)))


def test_an_unreachable_account_is_transient(settings):
    dead = settings.ledger.connection_string.replace(settings.ledger.connection_string.split("TableEndpoint=")[1].split(";")[0],
                                              "http://127.0.0.1:9/devstoreaccount1")
    ledger = TableLedger("customerledger", connection_string=dead, timeout=2)
    with pytest.raises(TransientError):
        ledger.get_customer("anyone")


def test_the_audit_row_of_an_applied_event_is_append_only(ledger):
    cid = new_customer()
    assert ledger.set_audit(audit(cid, "evt-1", APPLIED)) is True
    assert ledger.set_audit(audit(cid, "evt-1", "rejected", reason="data.profile: is required")) is False
    assert ledger.set_audit(audit(cid, "evt-1", "failed", reason="auth0: 503")) is False
    assert ledger.set_audit(audit(cid, "evt-1", APPLIED, attempts=2)) is True  # a duplicate delivery, counted
    [row] = ledger.list_audit(cid)
    assert (row.outcome, row.attempts, row.reason) == (APPLIED, 2, None)
    assert ledger.set_audit(audit(cid, "evt-2", "rejected")) is True  # not final: may still be applied later
    assert ledger.set_audit(audit(cid, "evt-2", APPLIED)) is True


def test_slot_pool_hands_out_exactly_its_limit_under_contention(ledger):
    from concurrent.futures import ThreadPoolExecutor

    seeds = []
    holders = [f"cust-{i}" for i in range(10)]
    with ThreadPoolExecutor(5) as pool:
        held = list(pool.map(lambda h: ledger.reserve_slot("pool", h, 5, seed=lambda: seeds.append(1) or 2),
                             holders))
    assert sum(held) == 3  # 2 in use before the pool existed, 3 left of 5
    winners = [h for h, ok in zip(holders, held) if ok]
    assert ledger.reserve_slot("pool", winners[0], 5, seed=lambda: 99) is True  # already held: idempotent
    assert ledger.release_slot("pool", winners[0]) is True
    assert ledger.release_slot("pool", winners[0]) is False  # gone: nothing to give back twice
    loser = next(h for h, ok in zip(holders, held) if not ok)
    assert ledger.reserve_slot("pool", loser, 5, seed=lambda: 99) is True
    assert ledger.reserve_slot("pool", "one-more", 5, seed=lambda: 99) is False
