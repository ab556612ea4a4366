"""Failures: recorded as last_error, audited, the claim released, and the next delivery finishes the work.
Also: what is logged, and that no secret ever leaks into a log, a ledger row or an error."""
from __future__ import annotations

import logging

import pytest

from shared.domain.errors import LedgerConflict, PermanentError, TransientError, UnknownProfile
from shared.domain.records import APPLIED, DUPLICATE, FAILED, PROVISIONING, REJECTED, REMOVING
from shared.service_layer.provisioning import UNPARSED_PARTITION
from tests.unit.world import World, created, removed

CREATE_STEPS = [
    ("ledger", "get_customer"), ("ledger", "create_customer"), ("gateway", "get_authorization_server_capacity"),
    ("identity", "create_application"), ("gateway", "set_subscription"), ("identity", "create_client_grant"),
    ("secrets", "set_secret"), ("gateway", "set_authorization_server"),
]
REMOVE_STEPS = [
    ("ledger", "get_customer"), ("gateway", "delete_subscription"), ("gateway", "delete_authorization_server"),
    ("secrets", "delete_secret"), ("identity", "get_client_grant"), ("identity", "delete_client_grant"),
    ("identity", "delete_application"),
]


@pytest.mark.parametrize("after", [False, True], ids=["lost-request", "lost-answer"])
@pytest.mark.parametrize("fake,method", CREATE_STEPS, ids=[m for _, m in CREATE_STEPS])
def test_transient_failure_while_creating_is_recorded_then_retried(fake, method, after):
    w = World()
    getattr(w, fake).fail(method, "transient", after=after)

    with pytest.raises(TransientError) as err:
        w.service().handle(created(), message_id="m1")

    assert method in err.value.reason
    rec = w.ledger.record("acme")
    if method not in ("get_customer", "create_customer"):  # failed while holding the claim
        assert rec.status == PROVISIONING and method in rec.last_error and rec.claim_owner is None
        audit = w.ledger.audit("acme", "e-created")
        assert (audit.outcome, audit.attempts) == (FAILED, 1) and method in audit.reason
    elif method == "create_customer" and after:  # claimed without knowing it: the claim stays until it expires
        assert rec.claim_owner == "w1" and w.ledger.audit("acme", "e-created") is None
    else:
        assert rec is None and w.ledger.audits == {}

    w.expire_claims()
    outcome = w.service().handle(created(), message_id="m2")

    assert outcome.result == APPLIED
    rec = w.ledger.record("acme")
    assert rec.last_error is None and rec.claim_owner is None
    assert len(w.identity.apps) == 1 and w.orphans() == []


@pytest.mark.parametrize("status,refused", [(429, True), (400, True), (503, False), (408, False), (None, False)],
                         ids=["429", "400", "503", "408", "dropped"])
def test_a_refused_create_drops_the_intent_so_the_retry_does_not_search(status, refused):
    w = World()
    kind = PermanentError if status == 400 else TransientError
    w.identity.fail("create_application", kind("Auth0 said no", service="auth0", operation="create_application",
                                               status=status))
    with pytest.raises(kind):
        w.service().handle(created(), message_id="m1")
    # A 429 or a 400 is an answer to a create Auth0 did not apply; a 5xx, 408 or a dropped connection may hide one.
    assert (w.ledger.record("acme").auth0_create_intent is None) is refused

    w.service().handle(created(), message_id="m2")
    assert (w.identity.calls["find_applications"] == 0) is refused
    assert len(w.identity.apps) == 1 and w.orphans() == []


def test_a_failure_before_the_create_drops_the_intent_so_the_retry_does_not_search():
    """The reservation (or any step before the create) failing leaves nothing in Auth0: the retry creates directly
    instead of spending a tenant-wide search on it, which under a backlog would cost the shared Auth0 budget."""
    w = World()
    w.ledger.fail("reserve_slot", LedgerConflict("the pool kept changing", service="ledger",
                                                 operation="reserve_slot"))
    with pytest.raises(LedgerConflict):
        w.service().handle(created(), message_id="m1")
    assert w.ledger.record("acme").auth0_create_intent is None and w.identity.calls["create_application"] == 0

    assert w.service().handle(created(), message_id="m2").result == APPLIED
    assert w.identity.calls["find_applications"] == 0
    assert len(w.identity.apps) == 1 and w.orphans() == []


def test_an_earlier_intent_is_kept_when_this_attempt_fails_before_searching_for_it():
    w = World()
    w.identity.fail("create_application", "transient")  # a 503: the create may have happened
    with pytest.raises(TransientError):
        w.service().handle(created(), message_id="m1")
    w.ledger.fail("reserve_slot", "transient")
    with pytest.raises(TransientError):
        w.service().handle(created(), message_id="m2")
    assert w.ledger.record("acme").auth0_create_intent is not None  # still to be searched for
    w.service().handle(created(), message_id="m3")
    assert w.identity.calls["find_applications"] == 1 and len(w.identity.apps) == 1 and w.orphans() == []


def test_failed_audit_counts_attempts():
    w = World()
    w.identity.fail("create_application", "transient", times=2)
    for _ in range(2):
        with pytest.raises(TransientError):
            w.service().handle(created())
    assert w.ledger.audit("acme", "e-created").attempts == 2
    w.service().handle(created())
    audit = w.ledger.audit("acme", "e-created")
    assert (audit.outcome, audit.attempts, audit.reason) == (APPLIED, 3, None)


@pytest.mark.parametrize("fake,method", REMOVE_STEPS, ids=[m for _, m in REMOVE_STEPS])
def test_transient_failure_while_removing_is_recorded_then_retried(fake, method):
    w = World()
    w.service().handle(created())
    if method == "get_client_grant":  # only looked up when the grant id was not recorded
        w.ledger.customers["acme"] = w.ledger.customers["acme"].copy(auth0_client_grant_id=None)
    getattr(w, fake).fail(method, "transient")

    with pytest.raises(TransientError):
        w.service().handle(removed())

    rec = w.ledger.record("acme")
    if method != "get_customer":
        assert rec.status == REMOVING and method in rec.last_error and rec.claim_owner is None
        assert w.ledger.audit("acme", "e-removed").outcome == FAILED
    assert w.service().handle(removed()).result == APPLIED
    assert w.leftovers() == [] and w.orphans() == []


def test_other_steps_still_run_when_one_fails():
    """Independent steps are not abandoned half-way: the next attempt has less to do, and nothing runs on."""
    w = World(max_parallel=4)
    w.secrets.fail("set_secret", "permanent")
    with pytest.raises(PermanentError):
        w.service().handle(created())
    [client_id] = w.identity.apps_of("acme")
    assert w.identity.grants_of(client_id) and "auth0-acme" in w.gateway.servers
    # The client id was recorded too, so the retry does not have to search.
    assert w.ledger.record("acme").auth0_client_id == client_id
    w.service().handle(created())
    assert w.identity.calls["find_applications"] == 0 and w.orphans() == []


def test_client_id_is_recorded_with_the_failure_when_its_own_write_failed():
    w = World()
    w.ledger.fail("update_customer", "transient", skip=0)  # the client id write (claim was an insert)
    with pytest.raises(TransientError):
        w.service().handle(created())
    [client_id] = w.identity.apps_of("acme")
    assert w.ledger.record("acme").auth0_client_id == client_id
    w.service().handle(created())
    assert w.identity.calls["find_applications"] == 0 and len(w.identity.apps) == 1


def test_final_write_applied_but_answer_lost_then_redelivery_is_a_duplicate():
    w = World()
    w.ledger.fail("update_customer", "transient", skip=1, after=True)  # the commit
    with pytest.raises(TransientError):
        w.service().handle(created())
    assert w.ledger.audit("acme", "e-created").outcome == APPLIED  # the failure record did not overwrite it
    assert w.ledger.record("acme").last_error is None
    assert w.service().handle(created()).result == DUPLICATE
    assert w.orphans() == []


def test_permanent_failure_is_recorded_and_raised():
    w = World()
    w.gateway.fail("set_subscription", "permanent")
    with pytest.raises(PermanentError):
        w.service().handle(created())
    rec = w.ledger.record("acme")
    assert "set_subscription" in rec.last_error and rec.claim_owner is None
    assert w.ledger.audit("acme", "e-created").outcome == FAILED


def test_unexpected_exception_is_recorded_by_type_only():
    w = World()
    w.identity.fail("create_client_grant", RuntimeError("boom with details"))
    with pytest.raises(RuntimeError):
        w.service().handle(created())
    assert w.ledger.record("acme").last_error == "internal error: RuntimeError"


def test_ledger_down_while_recording_a_failure_keeps_the_original_error():
    w = World()
    w.identity.fail("create_application", "permanent")
    w.ledger.fail("update_customer", "transient", times=5)
    w.ledger.fail("get_customer", "transient", skip=1)
    with pytest.raises(PermanentError) as err:
        w.service().handle(created())
    assert err.value.operation == "create_application"


# ---- record_rejection -----------------------------------------------------------------------------------------
def test_rejection_with_a_customer_id_is_audited_under_the_customer():
    w = World()
    w.service().record_rejection(reason="data.profile: unknown profile 'x'", message_id="m1", customer_id="acme",
                                 event_id="e1", event_type="customer.created")
    audit = w.ledger.audit("acme", "e1")
    assert (audit.outcome, audit.reason, audit.message_id, audit.event_type) == (
        REJECTED, "data.profile: unknown profile 'x'", "m1", "customer.created")


def test_rejection_without_a_customer_id_is_audited_under_unparsed_by_message_id():
    w = World()
    w.service().record_rejection(reason="$: body is not valid JSON", message_id="m7")
    audit = w.ledger.audit(UNPARSED_PARTITION, "m7")
    assert audit.outcome == REJECTED and audit.reason == "$: body is not valid JSON"


def test_rejection_without_any_id_is_still_recorded():
    w = World()
    w.service().record_rejection(reason="$: empty", message_id=None)
    [(partition, key)] = list(w.ledger.audits)
    assert partition == UNPARSED_PARTITION and key.startswith("unidentified-")


def test_rejection_raises_transient_when_the_ledger_is_unreachable():
    w = World()
    w.ledger.fail("set_audit", "transient")
    with pytest.raises(TransientError):
        w.service().record_rejection(reason="x", message_id="m1")


def test_rejection_swallows_a_permanent_ledger_error():
    w = World()
    w.ledger.fail("set_audit", "permanent")
    w.service().record_rejection(reason="x", message_id="m1")  # no exception: logged instead


def test_rejected_event_redelivered_is_rejected_again():
    # Not a duplicate: the message must keep failing until the dead-letter queue takes it.
    w = World()
    w.service().record_rejection(reason="x", message_id="m1", customer_id="acme", event_id="e-created")
    del w.profiles["oem"]  # still invalid
    with pytest.raises(UnknownProfile):
        w.service().handle(created())
    assert w.ledger.audit("acme", "e-created").outcome == REJECTED
    assert w.ledger.record("acme") is None and w.leftovers() == []


# ---- logging ------------------------------------------------------------------------------------------------------
def test_one_structured_and_readable_line_per_step(caplog):
    w = World()
    with caplog.at_level(logging.INFO, logger="customer_provisioning"):
        w.service().handle(created(), message_id="m1")
    steps = [r for r in caplog.records if getattr(r, "step", None)]
    names = [r.step for r in steps]
    for expected in ("ledger.get_customer", "ledger.claim", "apim.get_authorization_server_capacity",
                     "auth0.create_application", "apim.set_subscription", "ledger.record_client_id",
                     "auth0.create_client_grant", "keyvault.set_secret", "apim.set_authorization_server",
                     "ledger.commit"):
        assert names.count(expected) == 1, expected
    assert "event" not in names  # the outcome is the message handler's line (tests/unit/test_messages.py)
    for r in steps:
        assert r.name == "customer_provisioning"
        assert (r.customer_id, r.event_id, r.message_id) == ("acme", "e-created", "m1")
        assert isinstance(r.duration_ms, int) and r.outcome
        text = r.getMessage()
        assert text.startswith(f"customer=acme event=e-created step={r.step} outcome={r.outcome} "
                               f"duration_ms={r.duration_ms}")


def test_failed_step_is_logged_with_its_reason(caplog):
    w = World()
    w.identity.fail("create_application", "transient")
    with caplog.at_level(logging.INFO, logger="customer_provisioning"), pytest.raises(TransientError):
        w.service().handle(created())
    [line] = [r for r in caplog.records if getattr(r, "step", "") == "auth0.create_application"]
    assert line.levelno == logging.WARNING and line.outcome == "error"
    assert "error=TransientError" in line.getMessage() and "503" in line.getMessage()


# ---- secrets never leak -----------------------------------------------------------------------------------------
def _everything_written(w: World, caplog, errors) -> str:
    parts = []
    for r in caplog.records:
        parts.append(r.getMessage())
        parts.append(repr(r.__dict__))
    for rec in w.ledger.customers.values():
        parts.append(repr(rec))
    for audit in w.ledger.audits.values():
        parts.append(repr(audit))
    for exc in errors:
        parts += [str(exc), repr(exc), repr(getattr(exc, "__dict__", {}))]
    return "\n".join(parts)


def test_no_secret_in_logs_ledger_rows_or_errors(caplog):
    w = World(max_parallel=4)
    errors = []
    with caplog.at_level(logging.DEBUG):
        svc = w.service()
        svc.handle(created(profile="partner-web", redirect_uris=["https://p.example/cb"]))
        svc.handle(created(profile="partner-web", redirect_uris=["https://p.example/cb"], event_id="e2", at=1))
        # Failures in the very calls that carry the secret.
        for fake, method in (("secrets", "set_secret"), ("gateway", "set_authorization_server")):
            getattr(w, fake).fail(method, "permanent")
            try:
                svc.handle(created(profile="partner-web", event_id=f"e-{method}", at=2))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        w.secrets.fail("set_secret", RuntimeError("unexpected"))
        try:
            svc.handle(created(customer="beta", profile="oem"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        svc.handle(removed(at=30))
        svc.handle(created(event_id="e-back", at=40, profile="oem"))  # re-provisioning: recover path
    assert len(errors) == 3
    assert w.identity.issued_secrets
    written = _everything_written(w, caplog, errors)
    for secret in w.identity.issued_secrets:
        assert secret not in written
