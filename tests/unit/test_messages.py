"""The message pipeline: parse, apply, and on a transient failure schedule a later copy within the budget."""
from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from shared.domain import retry_policy as rp
from shared.domain.errors import InvalidEvent, PermanentError, RetryBudgetSpent, TransientError
from shared.domain.records import APPLIED, REJECTED
from shared.service_layer.messages import RETRY_SCHEDULED, InboundMessage, handle_message, retry_copy_id
from shared.service_layer.ports import RetryScheduler
from tests.unit.world import T0, World

NOW = T0 + dt.timedelta(minutes=1)


class RecordingScheduler(RetryScheduler):
    def __init__(self, fail: bool = False):
        self.scheduled: list[dict] = []
        self.fail = fail

    def schedule_retry(self, message, *, delay_seconds, properties, message_id):
        if self.fail:
            raise TransientError("could not schedule the retry", service="servicebus")
        self.scheduled.append(dict(message=message, delay=delay_seconds, properties=properties, id=message_id))


def body(customer="acme", event_id="e1", **data) -> bytes:
    d = {"customerId": customer, "displayName": "Acme", "profile": "oem", **data}
    return json.dumps({"specversion": "1.0", "id": event_id, "source": "/t", "type": "customer.created",
                       "time": T0.isoformat(), "data": d}).encode()


def message(raw: bytes, **kw) -> InboundMessage:
    return InboundMessage(body=raw, message_id=kw.pop("message_id", "m1"), enqueued_time=T0, **kw)


def test_applied_event_returns_the_outcome_and_schedules_nothing():
    world, sched = World(), RecordingScheduler()
    outcome = handle_message(world.service(), message(body()), scheduler=sched, now=NOW)
    assert outcome.result == APPLIED and sched.scheduled == []


def test_invalid_event_is_recorded_as_rejected_and_raised_never_scheduled():
    world, sched = World(), RecordingScheduler()
    with pytest.raises(InvalidEvent) as err:
        handle_message(world.service(), message(body(profile=None)), scheduler=sched, now=NOW)
    assert err.value.field == "data.profile"
    audits = world.ledger.list_audit("acme")
    assert [(a.outcome, a.reason) for a in audits] == [(REJECTED, err.value.message)]
    assert sched.scheduled == [] and world.identity.calls == {}


def test_unparseable_body_is_filed_under_unparsed_by_message_id():
    world = World()
    with pytest.raises(InvalidEvent):
        handle_message(world.service(), message(b"\xff\xfe not json", message_id="m-bad"), now=NOW)
    audits = world.ledger.list_audit("~unparsed")
    assert len(audits) == 1 and audits[0].outcome == REJECTED and "UTF-8" in audits[0].reason


def test_transient_failure_schedules_a_copy_with_attempt_first_time_and_reason():
    world, sched = World(), RecordingScheduler()
    world.identity.fail("create_application", "transient")
    msg = message(body(), session_id="acme", correlation_id="c1")
    result = handle_message(world.service(), msg, scheduler=sched, now=NOW)
    assert result.result == RETRY_SCHEDULED and result.attempt == 1
    [s] = sched.scheduled
    assert s["message"] is msg and s["id"] == retry_copy_id("m1", 1)
    assert 1.0 <= s["delay"] <= 2.0  # first backoff step of the default policy, with jitter
    assert s["properties"][rp.ATTEMPT_PROPERTY] == 1
    assert s["properties"][rp.ORIGINAL_ID_PROPERTY] == "m1"
    assert dt.datetime.fromisoformat(s["properties"][rp.FIRST_ATTEMPT_PROPERTY]) == T0
    assert "503" in s["properties"][rp.LAST_ERROR_PROPERTY]


def test_second_retry_keeps_the_original_id_and_first_attempt_time():
    world, sched = World(), RecordingScheduler()
    world.identity.fail("create_application", "transient")
    first = T0 - dt.timedelta(minutes=3)
    msg = message(body(), message_id=retry_copy_id("m1", 1), application_properties={
        rp.ATTEMPT_PROPERTY: 1, rp.ORIGINAL_ID_PROPERTY: "m1", rp.FIRST_ATTEMPT_PROPERTY: first.isoformat()})
    handle_message(world.service(), msg, scheduler=sched, now=NOW)
    [s] = sched.scheduled
    assert s["id"] == retry_copy_id("m1", 2) and s["properties"][rp.ATTEMPT_PROPERTY] == 2
    assert dt.datetime.fromisoformat(s["properties"][rp.FIRST_ATTEMPT_PROPERTY]) == first
    assert 2.0 <= s["delay"] <= 4.0


def test_429_waits_for_the_reset_time_the_service_gave():
    world, sched = World(), RecordingScheduler()
    world.identity.fail("create_application", "transient", retry_after=17.0)
    handle_message(world.service(), message(body()), scheduler=sched, now=NOW)
    assert 17.0 <= sched.scheduled[0]["delay"] <= 18.0


def test_spent_budget_raises_retry_budget_spent_with_the_last_reason():
    world, sched = World(), RecordingScheduler()
    world.identity.fail("create_application", "transient")
    policy = rp.RetryPolicy(max_attempts=3)
    msg = message(body(), message_id=retry_copy_id("m1", 3), application_properties={
        rp.ATTEMPT_PROPERTY: 3, rp.ORIGINAL_ID_PROPERTY: "m1", rp.FIRST_ATTEMPT_PROPERTY: T0.isoformat()})
    with pytest.raises(RetryBudgetSpent) as err:
        handle_message(world.service(), msg, scheduler=sched, policy=policy, now=NOW)
    assert sched.scheduled == []
    assert not err.value.transient and err.value.attempts == 3
    assert err.value.reason.startswith("retry budget spent after 3 retries; last failure: ")
    assert isinstance(err.value.__cause__, TransientError)


def test_a_retry_that_cannot_be_scheduled_is_raised_not_lost():
    world = World()
    world.identity.fail("create_application", "transient")
    with pytest.raises(TransientError) as err:
        handle_message(world.service(), message(body()), scheduler=RecordingScheduler(fail=True), now=NOW)
    assert err.value.service == "servicebus"


def test_permanent_failure_is_raised_without_scheduling():
    world, sched = World(), RecordingScheduler()
    world.identity.fail("create_application", "permanent")
    with pytest.raises(PermanentError):
        handle_message(world.service(), message(body()), scheduler=sched, now=NOW)
    assert sched.scheduled == []


class TestRetryPolicy:
    def test_delays_grow_exponentially_with_jitter_up_to_the_cap(self):
        policy = rp.RetryPolicy(base_seconds=2, max_delay_seconds=60, max_attempts=20, max_total_seconds=1e9)
        rng = random.Random(7)
        for attempt in range(1, 12):
            ceiling = min(60, 2 * 2 ** (attempt - 1))
            delay = policy.next_delay(attempt, T0, T0, rng=rng)
            assert ceiling / 2 <= delay <= ceiling

    def test_budget_in_attempts_and_in_time(self):
        policy = rp.RetryPolicy(max_attempts=5, max_total_seconds=100, base_seconds=2)
        assert policy.next_delay(6, T0, T0) is None
        assert policy.next_delay(1, T0, T0 + dt.timedelta(seconds=99)) is None
        assert policy.next_delay(1, T0, T0 + dt.timedelta(seconds=10)) is not None

    def test_settings_are_read_and_checked(self):
        from shared.settings import AppSettings, SettingsError
        from tests.unit.test_settings import base_env

        policy = AppSettings.load(base_env(RETRY_MAX_ATTEMPTS="3", RETRY_BASE_SECONDS="0.5")).retry_policy
        assert policy.max_attempts == 3 and policy.base_seconds == 0.5
        with pytest.raises(SettingsError, match="RETRY_MAX_ATTEMPTS"):
            AppSettings.load(base_env(RETRY_MAX_ATTEMPTS="many"))


def test_each_outcome_is_logged_once_by_the_handler(caplog):
    import logging

    world, sched = World(), RecordingScheduler()
    with caplog.at_level(logging.INFO, logger="customer_provisioning"):
        handle_message(world.service(), message(body(event_id="e-ok")), scheduler=sched, now=NOW)
        world.identity.fail("create_application", "transient")
        handle_message(world.service(), message(body(customer="beta", event_id="e-retry")), scheduler=sched,
                       now=NOW)
        with pytest.raises(InvalidEvent):
            handle_message(world.service(), message(body(customer="gamma", event_id="e-bad", profile=None)),
                           scheduler=sched, now=NOW)
    outcomes = [(r.event_id, r.outcome) for r in caplog.records if getattr(r, "step", None) == "event"]
    assert outcomes == [("e-ok", APPLIED), ("e-retry", "failed"), ("e-bad", "rejected")]
    rejected = next(r for r in caplog.records if getattr(r, "step", None) == "event" and r.outcome == "rejected")
    assert not rejected.exc_info  # a rejection is an answer, not a bug: no traceback


def test_retry_copies_of_ids_that_share_a_long_prefix_do_not_collide():
    """Regression (issue 18, case 4): copies were named <first 100 characters>:retry:<n>, so two events whose
    message ids share 100 characters had one copy id, and duplicate detection dropped one of them for good."""
    world, sched = World(), RecordingScheduler()
    prefix = "x" * 100
    for customer, tail in (("acme", "-a"), ("beta", "-b")):
        world.identity.fail("create_application", "transient")
        handle_message(world.service(), message(body(customer=customer, event_id=f"e-{customer}"),
                                                message_id=prefix + tail), scheduler=sched, now=NOW)
    ids = [s["id"] for s in sched.scheduled]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert [s["properties"][rp.ORIGINAL_ID_PROPERTY] for s in sched.scheduled] == [prefix + "-a", prefix + "-b"]


@pytest.mark.parametrize("props", [
    {rp.ATTEMPT_PROPERTY: -10**9, rp.FIRST_ATTEMPT_PROPERTY: "2999-01-01T00:00:00+00:00",
     rp.ORIGINAL_ID_PROPERTY: "m1"},
    {rp.ATTEMPT_PROPERTY: float("inf"), rp.ORIGINAL_ID_PROPERTY: "m1"},
    {rp.ATTEMPT_PROPERTY: 7, rp.ORIGINAL_ID_PROPERTY: "somebody-else", rp.FIRST_ATTEMPT_PROPERTY: T0.isoformat()},
    {rp.ORIGINAL_ID_PROPERTY: "victim-message-id"},
    {rp.ATTEMPT_PROPERTY: "1", rp.FIRST_ATTEMPT_PROPERTY: "\ud800" * 5},
])
def test_retry_properties_the_app_did_not_write_restart_the_budget(props):
    """Regression (issue 18, case 5): a sender's retry-attempt = -10**9 with a far-future first attempt gave about
    a billion retries with no delay, and a float inf raised OverflowError; a forged original id could make a copy
    collide with another message's copies. Untrusted properties now count for nothing."""
    world, sched = World(), RecordingScheduler()
    world.identity.fail("create_application", "transient")
    result = handle_message(world.service(), message(body(), message_id="m-sender", application_properties=props),
                            scheduler=sched, now=NOW)
    [s] = sched.scheduled
    assert result.attempt == 1 and s["properties"][rp.ATTEMPT_PROPERTY] == 1
    assert s["properties"][rp.ORIGINAL_ID_PROPERTY] == "m-sender" and s["id"] == retry_copy_id("m-sender", 1)
    assert dt.datetime.fromisoformat(s["properties"][rp.FIRST_ATTEMPT_PROPERTY]) == T0  # this delivery's
    assert 1.0 <= s["delay"] <= 2.0


def test_a_rejection_never_rewrites_an_applied_events_audit_row():
    """Regression (issue 18, case 6): an invalid event that reused an applied event's id for the same customer
    turned its APPLIED audit row into REJECTED (the rejection was an upsert)."""
    world = World()
    handle_message(world.service(), message(body(event_id="e1")), now=NOW)
    with pytest.raises(InvalidEvent):
        handle_message(world.service(), message(body(event_id="e1", profile=None), message_id="m-evil"), now=NOW)
    [row] = world.ledger.list_audit("acme")
    assert row.outcome == APPLIED and row.reason is None and row.message_id == "m1"
