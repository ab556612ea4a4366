"""Latency profiles: parsing, one rule per stand-in operation, the lognormal fit, and the floor of a profile."""
from __future__ import annotations

import math
import random

import pytest

from bench import critical_path, profiles
from emulators.faults import FaultPlan, lognormal_sigma


def test_both_profiles_load_and_cover_every_service():
    for name in ("realistic", "uniform"):
        p = profiles.load(name)
        for service in ("auth0", "apim", "keyvault"):
            ops = profiles.standin_operations(service)
            assert {r["op"] for r in p.rules(service)} == set(ops), (name, service)
        assert p.distribution("ledger").p50 > 0


def test_the_first_matching_pattern_wins():
    p = profiles.parse("t", '[apim]\n"*.delete" = [900, 2000]\n"*" = [100]\n')
    assert p.median("apim", "subscriptions.delete") == 900
    assert p.median("apim", "subscriptions.get") == 100
    assert p.latency("apim", "subscriptions.get").p95 is None


@pytest.mark.parametrize("text", ['[auth0]\n"*" = [100, 50]\n', '[auth0]\n"*" = []\n', '[auth0]\n"*" = [-1]\n'])
def test_bad_entries_are_refused(text):
    with pytest.raises(ValueError):
        profiles.parse("bad", text)


def test_a_drawn_latency_has_the_median_and_p95_asked_for():
    latency = profiles.Latency(100.0, 300.0)
    rng = random.Random(7)
    values = sorted(latency.draw(rng) for _ in range(20000))
    assert values[10000] == pytest.approx(100, rel=0.05)
    assert values[19000] == pytest.approx(300, rel=0.08)
    assert latency.sigma == pytest.approx(lognormal_sigma(100, 300))


def test_the_stand_ins_draw_from_the_same_distribution():
    plan = FaultPlan(seed=3)
    plan.set_rules([{"op": "clients.create", "latency_ms": 200, "latency_p95_ms": 600}])
    values = sorted(plan.latency_ms("clients.create") for _ in range(20000))
    assert values[10000] == pytest.approx(200, rel=0.05)
    assert values[19000] == pytest.approx(600, rel=0.08)
    assert plan.latency_ms("clients.get") == 0


def test_the_median_chain_of_a_profile_sums_the_medians_on_the_longest_chain():
    p = profiles.parse("t", '[auth0]\n"*" = [100]\n[apim]\n"*.create_or_update" = [1000]\n"*" = [10]\n'
                            '[keyvault]\n"*" = [10]\n[ledger]\n"*" = [1]\n')
    floor, chain = critical_path.median_chain(critical_path.CREATED, p)
    # get + the reservation's read and transaction + create (100) + an ARM PUT (1000) + commit
    assert floor == pytest.approx(1 + 1 + 1 + 100 + 1000 + 1)
    assert chain[-1] == "ledger.commit"
    assert chain[-2] in ("apim.set_authorization_server", "apim.set_subscription")


def test_the_floor_is_the_median_chain_without_spread_and_above_it_with():
    flat = profiles.parse("t", '[auth0]\n"*" = [100]\n[apim]\n"*" = [100]\n[keyvault]\n"*" = [100]\n'
                               '[ledger]\n"*" = [100]\n')
    medians, _ = critical_path.median_chain(critical_path.CREATED, flat)
    floor = critical_path.profile_floor(critical_path.CREATED, flat, samples=50)
    assert floor.p50 == pytest.approx(medians) and floor.p95 == pytest.approx(medians)
    spread = profiles.load("realistic")
    medians, _ = critical_path.median_chain(critical_path.CREATED, spread)
    floor = critical_path.profile_floor(critical_path.CREATED, spread, samples=2000)
    assert medians < floor.p50 < floor.p95
    assert critical_path.profile_floor(critical_path.CREATED, spread, samples=2000) == floor  # seeded


def test_the_floor_of_two_parallel_branches_is_the_median_of_their_maximum():
    # Two independent calls side by side, each lognormal with median 100: the flow ends with the slower one, whose
    # median is where each call is below it with probability 1/sqrt(2), above 100.
    p = profiles.parse("t", '[apim]\n"*" = [100, 300]\n')
    calls = (critical_path.Call("a", "apim", (), "x.get"), critical_path.Call("b", "apim", (), "y.get"))
    floor = critical_path.profile_floor(calls, p, samples=20000)
    sigma = lognormal_sigma(100, 300)
    from statistics import NormalDist
    expected = 100 * math.exp(sigma * NormalDist().inv_cdf(2 ** -0.5))
    assert floor.p50 == pytest.approx(expected, rel=0.03)
