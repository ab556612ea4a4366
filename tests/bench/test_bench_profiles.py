"""Latency profiles: parsing, one rule per stand-in operation, the lognormal fit, and the floor of a profile."""
from __future__ import annotations

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


def test_the_floor_of_a_profile_sums_the_medians_on_the_longest_chain():
    p = profiles.parse("t", '[auth0]\n"*" = [100]\n[apim]\n"*.create_or_update" = [1000]\n"*" = [10]\n'
                            '[keyvault]\n"*" = [10]\n[ledger]\n"*" = [1]\n')
    floor, chain = critical_path.profile_floor(critical_path.CREATED, p)
    # get + the reservation's read and transaction + create (100) + an ARM PUT (1000) + commit
    assert floor == pytest.approx(1 + 1 + 1 + 100 + 1000 + 1)
    assert chain[-1] == "ledger.commit"
    assert chain[-2] in ("apim.set_authorization_server", "apim.set_subscription")


def test_the_simulated_graph_is_the_floor_without_spread_and_above_it_with():
    flat = profiles.parse("t", '[auth0]\n"*" = [100]\n[apim]\n"*" = [100]\n[keyvault]\n"*" = [100]\n'
                               '[ledger]\n"*" = [100]\n')
    floor, _ = critical_path.profile_floor(critical_path.CREATED, flat)
    p50, p95 = critical_path.simulated_latency(critical_path.CREATED, flat, samples=50)
    assert p50 == pytest.approx(floor) and p95 == pytest.approx(floor)
    spread = profiles.load("realistic")
    floor, _ = critical_path.profile_floor(critical_path.CREATED, spread)
    p50, p95 = critical_path.simulated_latency(critical_path.CREATED, spread, samples=500)
    assert floor < p50 < p95
