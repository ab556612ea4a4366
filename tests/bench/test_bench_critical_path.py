"""The floor and the design minimum that the benchmark's targets are measured against."""
from __future__ import annotations

import pytest

from bench.critical_path import CREATED, REMOVED, Call, longest_chain, minimum_calls, sequential_calls


def test_longest_chain_follows_the_slowest_dependency():
    calls = (Call("a", "x"), Call("b", "y", ("a",)), Call("c", "z", ("a",)), Call("d", "x", ("b", "c")))
    floor, chain = longest_chain(calls, {"x": 10, "y": 5, "z": 30})
    assert floor == 50 and chain == ["a", "c", "d"]


def test_a_service_without_latency_adds_nothing_to_the_floor():
    calls = (Call("a", "ledger"), Call("b", "auth0", ("a",)), Call("c", "ledger", ("b",)))
    assert longest_chain(calls, {"auth0": 40})[0] == 40
    assert sequential_calls(calls) == 3


def test_a_cycle_or_an_unknown_dependency_is_refused():
    with pytest.raises(ValueError):
        longest_chain((Call("a", "x", ("b",)), Call("b", "x", ("a",))), {"x": 1})
    with pytest.raises(ValueError):
        minimum_calls((Call("a", "x", ("nope",)),))


def test_created_needs_five_calls_in_a_row_and_ten_in_all():
    latency = {s: 40 for s in ("auth0", "keyvault", "apim", "ledger")}
    floor, chain = longest_chain(CREATED, latency)
    assert floor == 200 and len(chain) == 5
    assert chain[0] == "ledger.get_customer" and chain[-1] == "ledger.commit"
    assert "auth0.create_application" in chain
    assert minimum_calls(CREATED) == {"ledger": 4, "apim": 3, "auth0": 2, "keyvault": 1}
    # Without latency on the ledger: capacity check -> create -> the four after it.
    assert longest_chain(CREATED, {"auth0": 40, "keyvault": 40, "apim": 40})[0] == 120


def test_removed_needs_five_calls_in_a_row_and_nine_in_all():
    latency = {s: 40 for s in ("auth0", "keyvault", "apim", "ledger")}
    floor, chain = longest_chain(REMOVED, latency)
    assert floor == 200 and len(chain) == 5
    assert minimum_calls(REMOVED) == {"ledger": 3, "apim": 2, "keyvault": 2, "auth0": 2}
    assert longest_chain(REMOVED, {"auth0": 40, "keyvault": 40, "apim": 40})[0] == 80


def test_phases_make_every_call_wait_for_the_whole_previous_phase():
    from bench import critical_path as cp
    as_run = cp.phased(cp.CREATED, cp.PHASES["created"])
    by_name = {c.name: c for c in as_run}
    assert set(by_name["apim.set_authorization_server"].after) == {"auth0.create_application", "apim.set_subscription"}
    assert cp.minimum_calls(as_run) == cp.minimum_calls(cp.CREATED)
    # with ARM writes dearer than the rest, the phases lengthen the chain by the subscription's write
    lat = {"ledger": 1.0, "auth0": 10.0, "keyvault": 10.0, "apim": 100.0}
    assert cp.longest_chain(as_run, lat)[0] > cp.longest_chain(cp.CREATED, lat)[0]


def test_phases_must_name_every_call():
    import pytest

    from bench import critical_path as cp
    with pytest.raises(ValueError):
        cp.phased(cp.CREATED, (("ledger.get_customer",),))
