"""One worker per customer at a time: the claim, its expiry, and ETag conflicts."""
from __future__ import annotations

import threading

import pytest

from shared.domain.errors import ClaimLost, CustomerBusy, LedgerConflict, TransientError
from shared.domain.records import APPLIED, DUPLICATE, PROVISIONED, PROVISIONING, REMOVED, REMOVING
from tests.unit.world import World, created, removed


def _hold_claim(w: World, event, worker="w1"):
    """Leave ``worker``'s claim in place, as a worker that died after claiming would."""
    w.identity.fail("create_application", "transient")
    w.ledger.fail("update_customer", "transient")  # the failure record, so the claim is not released
    with pytest.raises(TransientError):
        w.service(worker).handle(event)


def test_busy_customer_is_transient_with_retry_after_and_touches_nothing():
    w = World()
    _hold_claim(w, created())
    rec = w.ledger.record("acme")
    assert rec.claim_owner == "w1" and rec.status == PROVISIONING
    w.clock.advance(100)
    before = w.snapshot()
    calls = len(w.log.calls)

    with pytest.raises(CustomerBusy) as err:
        w.service("w2").handle(removed())

    # 200 s of the claim left, plus the clock-skew allowance before another worker may take it over.
    assert err.value.transient and err.value.retry_after == pytest.approx(200 + w.options.clock_skew)
    assert "w1" in str(err.value)
    assert w.log.calls[calls:] == ["ledger.get_customer"]  # no audit row, no claim write, nothing external
    assert w.snapshot() == before


def test_expired_claim_of_a_dead_worker_is_taken_over():
    w = World()
    _hold_claim(w, created())
    w.expire_claims()

    outcome = w.service("w2").handle(created())

    assert outcome.result == APPLIED and w.orphans() == []
    assert len(w.identity.apps) == 1


def test_the_same_worker_may_resume_its_own_live_claim():
    w = World()
    _hold_claim(w, created())
    assert w.service("w1").handle(created()).result == APPLIED


def test_claim_expiry_is_now_plus_ttl():
    w = World(claim_ttl=42)
    w.identity.fail("create_application", "transient")
    w.ledger.fail("update_customer", "transient")
    with pytest.raises(TransientError):
        w.service().handle(created())
    rec = w.ledger.record("acme")
    assert (rec.claim_expires - w.clock()).total_seconds() == 42


@pytest.mark.parametrize("method", ["create_customer", "update_customer"])
def test_ledger_conflict_on_the_claim_is_transient_and_writes_nothing(method):
    w = World()
    if method == "update_customer":
        w.service().handle(created())
    before = w.snapshot()
    w.ledger.fail(method, LedgerConflict("etag mismatch", service="ledger", operation=method, status=412))

    with pytest.raises(LedgerConflict) as err:
        w.service().handle(created(event_id="e2", at=1))

    assert err.value.transient
    assert w.snapshot() == before  # in particular no *failed* audit row over another worker's work
    assert w.service().handle(created(event_id="e2", at=1)).result == APPLIED


def test_a_concurrent_writer_between_read_and_claim_causes_a_conflict():
    w = World()
    w.service().handle(created())
    real = w.ledger.get_customer

    def read_then_someone_writes(customer_id, event_id=None):
        rec, audit = real(customer_id, event_id)
        stored = w.ledger.customers[customer_id]
        w.ledger.customers[customer_id] = stored.copy(etag="changed-by-someone-else")
        return rec, audit

    w.ledger.get_customer = read_then_someone_writes
    with pytest.raises(LedgerConflict):
        w.service("w2").handle(removed())
    assert len(w.identity.apps) == 1  # nothing was deleted without the claim


def test_two_workers_racing_on_the_same_event_create_one_application():
    w = World(max_parallel=4)
    barrier = threading.Barrier(2)
    real = w.ledger.get_customer

    def read_together(customer_id, event_id=None):
        result = real(customer_id, event_id)
        try:
            barrier.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass
        return result

    w.ledger.get_customer = read_together
    results, errors = [], []

    def run(worker):
        try:
            results.append(w.service(worker).handle(created()))
        except TransientError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], LedgerConflict)
    barrier.abort()
    # The loser's redelivery is a duplicate.
    assert w.service("w1").handle(created()).result == DUPLICATE
    assert len(w.identity.apps) == 1 and w.orphans() == []


def test_claim_lost_mid_flight_makes_the_final_write_conflict():
    """A worker slower than the claim TTL loses the customer to another; its late writes must fail."""
    w = World()
    svc1 = w.service("w1")
    real = w.identity.create_application

    def slow_create(spec):
        app = real(spec)
        w.expire_claims()
        # Meanwhile w2 takes over and finishes the event.
        assert w.service("w2").handle(created()).result == APPLIED
        return app

    w.identity.create_application = slow_create
    with pytest.raises(ClaimLost):
        svc1.handle(created())
    # w2 adopted the application w1 created: still one; w1 wrote nothing over w2's result.
    assert len(w.identity.apps) == 1
    assert w.ledger.audit("acme", "e-created").outcome == APPLIED
    assert w.orphans() == []


def test_removal_claim_sets_status_removing_until_done():
    w = World()
    w.service().handle(created())
    seen = []
    real = w.identity.delete_application

    def spy(client_id):
        seen.append(w.ledger.record("acme").status)
        return real(client_id)

    w.identity.delete_application = spy
    w.service().handle(removed())
    assert seen == [REMOVING]


def test_two_invocations_of_one_worker_never_apply_to_one_customer_at_once():
    """A host process runs several invocations at once, all under the process's worker id, so the ledger claim
    cannot tell them apart: a removal must not take the customer while a created of the same process is still
    creating (found by the chaos suite: the removal deleted, then the created wrote its resources after it)."""
    w = World()
    svc = w.service("w1")  # one service per process, as shared.bootstrap builds it
    creating, release = threading.Event(), threading.Event()
    real = w.identity.create_application

    def slow_create(spec):
        creating.set()
        release.wait(5)
        return real(spec)

    w.identity.create_application = slow_create
    results = []
    first = threading.Thread(target=lambda: results.append(svc.handle(created())))
    first.start()
    assert creating.wait(5)
    before = w.snapshot()
    try:
        with pytest.raises(CustomerBusy) as err:
            svc.handle(removed())
        assert err.value.transient
        assert w.snapshot() == before  # the removal wrote and deleted nothing
    finally:
        release.set()
        first.join(5)
    assert [r.result for r in results] == [APPLIED]

    # The removal's retry, once the created is done, removes everything.
    assert svc.handle(removed()).result == APPLIED
    assert w.leftovers() == [] and w.orphans() == []


def _stall_after_the_claim(w: World, during=None, seconds: float | None = None):
    """Stall the worker right after it took its claim, before anything is created (the moment of issue 18,
    case 1): the clock moves on, and ``during`` runs as another worker would meanwhile."""
    real = w.gateway.get_authorization_server_limit

    def stalled():
        w.gateway.get_authorization_server_limit = real  # once: the other worker is not stalled
        w.clock.advance(seconds if seconds is not None else w.options.claim_ttl + w.options.clock_skew + 1)
        if during:
            during()
        return real()

    w.gateway.get_authorization_server_limit = stalled


def test_a_stalled_create_whose_claim_a_removal_took_creates_nothing():
    """Regression (issue 18, case 1): worker 1 claimed acme, stalled past CLAIM_TTL_SECONDS, and went on; a removal
    had taken the claim meanwhile, so every resource it then created was an orphan of a removed customer."""
    w = World()
    _stall_after_the_claim(w, during=lambda: w.service("w2").handle(removed(at=10)))

    with pytest.raises(ClaimLost):
        w.service("w1").handle(created(at=1))

    assert w.ledger.record("acme").status == REMOVED
    assert not w.identity.apps and not w.gateway.subscriptions and not w.gateway.customer_servers()
    assert w.secrets.names() == [] and w.orphans() == []
    assert w.identity.calls["create_application"] == 0  # fenced before the create, not compensated after it


def test_a_stalled_create_whose_claim_a_redelivery_took_leaves_one_application():
    """Regression (issue 18, case 1): the same created event, redelivered while worker 1 stalled, took the claim
    and provisioned; worker 1's late create made a second application."""
    w = World()
    _stall_after_the_claim(w, during=lambda: w.service("w2").handle(created()))

    with pytest.raises(ClaimLost):
        w.service("w1").handle(created())

    assert len(w.identity.apps) == 1 and w.orphans() == []
    assert w.ledger.record("acme").status == PROVISIONED
    assert w.ledger.audit("acme", "e-created").outcome == APPLIED


def test_a_claim_nobody_took_is_renewed_after_a_stall_and_the_event_applies(caplog):
    import logging

    w = World()
    _stall_after_the_claim(w, seconds=w.options.claim_ttl - w.options.fence_guard / 2)  # inside the guard
    with caplog.at_level(logging.INFO, logger="customer_provisioning"):
        assert w.service("w1").handle(created()).result == APPLIED
    renewals = [r for r in caplog.records if getattr(r, "step", "") == "ledger.renew_claim"]
    assert len(renewals) == 1 and "before=auth0.create_application" in renewals[0].getMessage()
    assert len(w.identity.apps) == 1


def test_a_claim_ttl_shorter_than_twice_the_longest_call_is_refused_at_start_up():
    from shared.settings import AppSettings, SettingsError
    from tests.unit.test_settings import base_env

    with pytest.raises(SettingsError, match="CLAIM_TTL_SECONDS: must be at least 248 s"):
        AppSettings.load(base_env(CLAIM_TTL_SECONDS="60"))
    fast = base_env(CLAIM_TTL_SECONDS="30", AUTH0_TIMEOUT_SECONDS="3", PACING_MAX_WAIT_SECONDS="5",
                    AZURE_TIMEOUT_SECONDS="2")
    assert AppSettings.load(fast).fence_guard_seconds == 15.0  # 5 + max(3, 3 x 2 + 2) + 2
