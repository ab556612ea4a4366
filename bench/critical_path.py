"""The external calls each flow needs, and which must wait for which: the critical-path floor and the design minimum.

Each flow of docs/DESIGN.md is written down as a graph of external calls (a warm process: the Auth0 Management API
token, the managed-identity tokens, Key Vault's challenge and the APIM tier are fetched once per process and left
out). A call lists the calls whose results it needs. From the one graph come

- the **design minimum** per service: how many calls a customer costs when nothing goes wrong;
- the **critical-path floor**: the time a customer takes when every call costs its service's latency and nothing
  else costs anything: the largest sum of latencies along a chain of calls that must happen one after another. With
  the same latency L on every service on the path this is (calls on the longest chain) x L.

Each call also names the stand-in operation it is (``op``), so that a latency profile (``bench/profiles``) gives the
floor of that profile. A profile's latencies are distributions, so its floor is one too: :func:`profile_floor`
draws every call of the graph from the profile and gives the p50 and p95 of the longest chain.

The reasons for each dependency are in docs/BENCHMARKS.md ("How the floor is derived"). The graphs follow the service
layer as it is: when a flow changes, edit its tuple below; the floor, the design minimum and the report follow.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping


@dataclass(frozen=True)
class Call:
    name: str
    service: str
    after: tuple[str, ...] = ()
    op: str = "*"  # the stand-in's operation name (the ledger's calls are all "*": one proxy, one distribution)


# customer.created, profile "oem" (confidential, with an APIM authorization server) on a tier that caps authorization
# servers (Developer, Basic, Standard, Premium and their v2 tiers), first delivery. The tier's SKU is read once per
# process and the reservation counter is seeded once per deployment, so neither is here.
CREATED = (
    Call("ledger.get_customer", "ledger"),
    Call("ledger.claim", "ledger", ("ledger.get_customer",)),
    # The reservation, beside the claim: one read of the pool's counter and this customer's row, then the counter
    # and the holder row in one ETag-checked transaction.
    Call("ledger.get_slot", "ledger", ("ledger.get_customer",)),
    Call("ledger.reserve_slot", "ledger", ("ledger.get_slot",)),
    Call("auth0.create_application", "auth0", ("ledger.claim", "ledger.reserve_slot"), "clients.create"),
    # Everything else after the application, by design, not by need of data for the subscription: the application
    # is the one step whose refusal (an entity limit, a validation error) must leave nothing behind.
    Call("ledger.record_client_id", "ledger", ("auth0.create_application",)),
    Call("auth0.create_client_grant", "auth0", ("auth0.create_application",), "client_grants.create"),
    Call("keyvault.set_secret", "keyvault", ("auth0.create_application",), "secrets.set"),
    Call("apim.set_authorization_server", "apim", ("auth0.create_application",),
         "authorization_servers.create_or_update"),
    Call("apim.set_subscription", "apim", ("auth0.create_application",), "subscriptions.create_or_update"),
    Call("ledger.commit", "ledger", ("ledger.record_client_id", "auth0.create_client_grant", "keyvault.set_secret",
                                     "apim.set_authorization_server", "apim.set_subscription")),
)

# customer.removed of a provisioned "oem" customer whose ledger row records every resource id. The secret's soft
# delete is not waited for (no poll of the deleted secret) unless the removal purges it; the grant is deleted before
# its application because Auth0's reference does not say that deleting an application deletes its grants
# (docs/DESIGN.md, "customer.removed").
REMOVED = (
    Call("ledger.get_customer", "ledger"),
    Call("ledger.claim", "ledger", ("ledger.get_customer",)),
    Call("apim.delete_subscription", "apim", ("ledger.claim",), "subscriptions.delete"),
    Call("apim.delete_authorization_server", "apim", ("ledger.claim",), "authorization_servers.delete"),
    # The slot goes back only once the entry is gone: a read of the pool's rows, then one transaction.
    Call("ledger.get_slot", "ledger", ("apim.delete_authorization_server",)),
    Call("ledger.release_slot", "ledger", ("ledger.get_slot",)),
    Call("keyvault.delete_secret", "keyvault", ("ledger.claim",), "secrets.delete"),
    Call("auth0.delete_client_grant", "auth0", ("ledger.claim",), "client_grants.delete"),
    Call("auth0.delete_application", "auth0", ("auth0.delete_client_grant",), "clients.delete"),
    Call("ledger.commit", "ledger", ("apim.delete_subscription", "ledger.release_slot", "keyvault.delete_secret",
                                     "auth0.delete_application")),
)

FLOWS = {"created": CREATED, "removed": REMOVED}

#: How the service layer runs a flow when that differs from its graph: phases, each waiting for the whole previous
#: one (``core.run`` is a barrier). Both flows now run as their graphs say (the reservation beside the claim, the
#: application alone, then every step after it at once, ``max_parallel_steps`` being the widest group), so none is
#: named; a flow added here gets a "phased" figure beside its floor in the report.
PHASES: dict[str, tuple[tuple[str, ...], ...]] = {}


def phased(calls, phases) -> tuple[Call, ...]:
    """The graph in which every call of a phase waits for every call of the phase before."""
    index = _index(calls)
    named = [n for phase in phases for n in phase]
    if sorted(named) != sorted(index):
        raise ValueError("the phases must name every call once")
    out, previous = [], ()
    for phase in phases:
        out.extend(Call(index[n].name, index[n].service, tuple(previous), index[n].op) for n in phase)
        previous = phase
    return tuple(out)


def _index(calls) -> dict[str, Call]:
    index = {c.name: c for c in calls}
    if len(index) != len(calls):
        raise ValueError("call names must be unique")
    for c in calls:
        missing = [d for d in c.after if d not in index]
        if missing:
            raise ValueError(f"{c.name} waits for unknown call(s) {missing}")
    return index


def minimum_calls(calls) -> Counter:
    """Calls per service."""
    _index(calls)
    return Counter(c.service for c in calls)


def longest_chain(calls, latency_ms: Mapping[str, float] | Callable[[Call], float]) -> tuple[float, list[str]]:
    """(floor in ms, the chain of calls that sets it). ``latency_ms``: per service (a service not named costs 0), or
    a function of the call. Raises ValueError on a cycle."""
    cost = latency_ms if callable(latency_ms) else (lambda c: float(latency_ms.get(c.service, 0.0)))
    index = _index(calls)
    memo: dict[str, tuple[float, list[str]]] = {}
    visiting: set[str] = set()

    def finish(name: str) -> tuple[float, list[str]]:
        if name in memo:
            return memo[name]
        if name in visiting:
            raise ValueError(f"cycle through {name}")
        visiting.add(name)
        call = index[name]
        best = (0.0, [])
        for dep in call.after:
            candidate = finish(dep)
            if candidate[0] > best[0] or (candidate[0] == best[0] and len(candidate[1]) > len(best[1])):
                best = candidate
        visiting.discard(name)
        memo[name] = (best[0] + float(cost(call)), best[1] + [name])
        return memo[name]

    results = [finish(c.name) for c in calls]
    return max(results, key=lambda r: (r[0], len(r[1]))) if results else (0.0, [])


def sequential_calls(calls) -> int:
    """Calls on the longest chain when every call counts one."""
    return len(longest_chain(calls, {c.service: 1.0 for c in calls})[1])


def median_chain(calls, profile) -> tuple[float, list[str]]:
    """(the sum of the operations' medians along the longest chain, that chain) under a latency profile
    (``bench.profiles.Profile``). With no spread in the profile this is the floor; with spread it is below it."""
    return longest_chain(calls, lambda c: profile.median(c.service, c.op))


@dataclass(frozen=True)
class Floor:
    p50: float
    p95: float


def profile_floor(calls, profile, samples: int = 10000, seed: int = 1) -> Floor:
    """The critical-path floor of a flow under a latency profile: the p50 and p95 of its longest chain when every
    call's latency is drawn from the profile's distribution and nothing else costs anything, i.e. what an
    implementation of this graph with no overhead at all would measure. The least p50 any implementation can
    have: the sum of the medians along the chain (:func:`median_chain`) is lower still, but no implementation
    reaches it once the profile has a spread, because the slower of two parallel branches sets the pace and the
    median of a sum of skewed latencies is above the sum of their medians. Seeded: the same profile, the same floor."""
    import random

    from .stats import percentile
    rng = random.Random(seed)
    totals = []
    for _ in range(samples):
        drawn = {c.name: profile.latency(c.service, c.op).draw(rng) for c in calls}
        totals.append(longest_chain(calls, lambda c: drawn[c.name])[0])
    return Floor(percentile(totals, 50), percentile(totals, 95))
