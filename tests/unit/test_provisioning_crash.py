"""A worker killed between any two external calls leaves nothing the next delivery cannot finish.

For each flow the external calls of an undisturbed run are counted; then, for every call index, a run is killed
just before that call reaches its service and just after the service applied it (the answer lost). A fresh worker
then handles the redelivery once the dead worker's claim has expired. The end state must equal the undisturbed
one, with exactly one Auth0 application per provisioned customer and no orphan in any service.
"""
from __future__ import annotations

import pytest

from shared.domain.records import APPLIED, DUPLICATE, REMOVED, STALE
from tests.fakes import Crash
from tests.unit.world import World, created, removed

WHEN = ["before", "after"]


# ---- scenarios: (prepare the world, the event that is interrupted) -----------------------------------------------
def _fresh(profile: str):
    def prepare(w: World):
        return created(profile=profile, plan="gold",
                       redirect_uris=["https://p.example/cb"] if profile.startswith("partner") else None)
    return prepare


def _provisioned(profile: str):
    def prepare(w: World):
        w.service("setup").handle(created(profile=profile))
        return removed()
    return prepare


def _reprovision(w: World):
    w.service("setup").handle(created())
    w.service("setup").handle(removed())
    return created(event_id="e-again", at=20)


CREATE_SCENARIOS = {f"create-{p}": _fresh(p) for p in ("oem", "partner-web", "partner-spa", "m2m-shared")}
REMOVE_SCENARIOS = {f"remove-{p}": _provisioned(p) for p in ("oem", "partner-spa", "m2m-shared")}
ALL_SCENARIOS = {**CREATE_SCENARIOS, **REMOVE_SCENARIOS, "reprovision": _reprovision}
OPTIONS = [False, True]  # purge_deleted_secrets


def _baseline(scenario: str, purge: bool, max_parallel: int = 1):
    w = World(purge=purge, max_parallel=max_parallel)
    event = ALL_SCENARIOS[scenario](w)
    start = len(w.log.calls)
    w.service("w1").handle(event)
    return w.snapshot(), len(w.log.calls) - start


BASELINES = {(s, p): _baseline(s, p) for s in ALL_SCENARIOS for p in OPTIONS}


def _cases(scenarios):
    return [pytest.param(s, p, i, when, id=f"{s}-{'purge' if p else 'soft'}-call{i}-{when}")
            for s in scenarios for p in OPTIONS for i in range(BASELINES[(s, p)][1]) for when in WHEN]


def _crash_then_resume(scenario: str, purge: bool, index: int, when: str, max_parallel: int = 1):
    w = World(purge=purge, max_parallel=max_parallel)
    event = ALL_SCENARIOS[scenario](w)
    w.log.crash_at(index, when=when)
    with pytest.raises(Crash):
        w.service("w1").handle(event)
    assert w.log.crashed_at is not None
    w.expire_claims()
    outcome = w.service("w2").handle(event)
    return w, event, outcome


@pytest.mark.parametrize("scenario,purge,index,when", _cases(ALL_SCENARIOS))
def test_crash_at_every_call_then_redelivery_reaches_the_same_end(scenario, purge, index, when):
    w, event, outcome = _crash_then_resume(scenario, purge, index, when)

    assert outcome.result in (APPLIED, DUPLICATE)
    expected, _ = BASELINES[(scenario, purge)]
    assert w.snapshot() == expected
    if scenario in REMOVE_SCENARIOS:
        assert w.leftovers() == []
    else:
        assert len(w.identity.apps) == 1
    assert w.orphans() == []


@pytest.mark.parametrize("scenario,purge,index,when",
                         _cases(CREATE_SCENARIOS) + _cases(["reprovision"]))
def test_crash_while_creating_then_removal_leaves_nothing(scenario, purge, index, when):
    w = World(purge=purge)
    event = ALL_SCENARIOS[scenario](w)
    w.log.crash_at(index, when=when)
    with pytest.raises(Crash):
        w.service("w1").handle(event)
    w.expire_claims()

    outcome = w.service("w2").handle(removed(event_id="e-remove-late", at=30))

    assert (outcome.result, outcome.status) == (APPLIED, REMOVED)
    assert w.leftovers() == [] and w.orphans() == []
    # The interrupted created, delivered again, is now older than the removal (or was applied before the crash).
    assert w.service("w3").handle(event).result in (STALE, DUPLICATE)
    assert w.leftovers() == [] and w.orphans() == []


@pytest.mark.parametrize("scenario", ["create-oem", "remove-oem", "reprovision"])
def test_crash_at_every_call_with_steps_running_concurrently(scenario):
    """With threads the call order varies between runs; the guarantees must not."""
    _, calls = BASELINES[(scenario, False)]
    for index in range(calls):
        for when in WHEN:
            w, event, outcome = _crash_then_resume(scenario, False, index, when, max_parallel=4)
            assert outcome.result in (APPLIED, DUPLICATE), (index, when)
            assert w.snapshot() == BASELINES[(scenario, False)][0], (index, when, w.log.crashed_at)
            assert w.orphans() == [], (index, when)


@pytest.mark.parametrize("scenario", ["create-oem", "remove-oem"])
def test_crash_twice_then_redelivery_reaches_the_same_end(scenario):
    """The redelivery after a crash can crash too, at any call of its own."""
    expected, calls = BASELINES[(scenario, False)]
    for first in range(calls):
        for second in range(calls + 2):
            w = World()
            event = ALL_SCENARIOS[scenario](w)
            w.log.crash_at(first, when="after")
            with pytest.raises(Crash):
                w.service("w1").handle(event)
            w.expire_claims()
            w.log.crash_at(second, when="after")
            try:
                w.service("w2").handle(event)
            except Crash:
                w.expire_claims()
            w.log.crash_at(10_000)  # disarmed
            w.service("w3").handle(event)
            assert w.snapshot() == expected, (first, second)
            assert w.orphans() == [], (first, second)
