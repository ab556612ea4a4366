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


def test_created_needs_six_calls_in_a_row_and_twelve_in_all():
    latency = {s: 40 for s in ("auth0", "keyvault", "apim", "ledger")}
    floor, chain = longest_chain(CREATED, latency)
    # read -> the reservation's read and transaction (beside the claim) -> the application -> any step after it
    # -> commit
    assert floor == 240 and len(chain) == 6
    assert chain[:4] == ["ledger.get_customer", "ledger.get_slot", "ledger.reserve_slot", "auth0.create_application"]
    assert chain[-1] == "ledger.commit"
    assert minimum_calls(CREATED) == {"ledger": 6, "apim": 2, "auth0": 2, "keyvault": 1}
    assert "apim.list_authorization_servers" not in {c.name for c in CREATED}  # never a listing per customer
    # Without latency on the ledger: the application, then the slowest step after it.
    assert longest_chain(CREATED, {"auth0": 40, "keyvault": 40, "apim": 40})[0] == 80


def test_the_subscription_waits_for_the_application_as_the_service_layer_runs_it():
    by_name = {c.name: c for c in CREATED}
    assert by_name["apim.set_subscription"].after == ("auth0.create_application",)
    lat = {"ledger": 1.0, "auth0": 10.0, "keyvault": 10.0, "apim": 100.0}
    floor, chain = longest_chain(CREATED, lat)
    assert floor == 1 + 2 + 10 + 100 + 1 and "auth0.create_application" in chain


def test_removed_needs_six_calls_in_a_row_and_ten_in_all():
    latency = {s: 40 for s in ("auth0", "keyvault", "apim", "ledger")}
    floor, chain = longest_chain(REMOVED, latency)
    assert floor == 240 and len(chain) == 6
    assert chain[2:5] == ["apim.delete_authorization_server", "ledger.get_slot", "ledger.release_slot"]
    assert minimum_calls(REMOVED) == {"ledger": 5, "apim": 2, "keyvault": 1, "auth0": 2}
    assert "keyvault.get_deleted_secret" not in {c.name for c in REMOVED}  # the soft delete is not waited for
    assert longest_chain(REMOVED, {"auth0": 40, "keyvault": 40, "apim": 40})[0] == 80


def test_phases_make_every_call_wait_for_the_whole_previous_phase():
    from bench import critical_path as cp
    calls = (Call("a", "x"), Call("b", "y", ("a",)), Call("c", "z", ("a",)), Call("d", "x", ("c",)),
             Call("e", "x", ("b", "d")))
    as_run = cp.phased(calls, (("a",), ("b", "c"), ("d",), ("e",)))
    by_name = {c.name: c for c in as_run}
    assert set(by_name["d"].after) == {"b", "c"}
    assert cp.minimum_calls(as_run) == cp.minimum_calls(calls)
    lat = {"x": 1.0, "y": 100.0, "z": 10.0}
    assert cp.longest_chain(as_run, lat)[0] > cp.longest_chain(calls, lat)[0]


def test_phases_must_name_every_call():
    import pytest

    from bench import critical_path as cp
    with pytest.raises(ValueError):
        cp.phased(cp.CREATED, (("ledger.get_customer",),))
