"""Several local Functions hosts (``python -m funchost``, one process each) sharing one Auth0 tenant limit and one ARM
principal limit, and the same with authorization servers already there (throughput against existing customers).

Each host paces on the services' rate-limit headers only (no AUTH0_RATE_LIMIT): the instances never talk to each
other. A run: start the hosts, warm each up, start new, full buckets on the stand-ins (Auth0 tenant-wide, ARM per
principal), send ``customers`` created events at once and wait until every one is applied by some host.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .processes import HostProcess, StackProcess
from .scenarios import created_event, dead_letter_count, sb_message, server_counters, counter_delta


def _say(text: str) -> None:
    print(f"   {text}", file=sys.stderr, flush=True)


def _send(settings: dict[str, str], events: list[dict]) -> float:
    from azure.servicebus import ServiceBusClient
    with ServiceBusClient.from_connection_string(settings["ServiceBusConnection"]) as client, \
            client.get_queue_sender(settings["CUSTOMER_EVENTS_QUEUE"]) as sender:
        started = time.monotonic()
        for i in range(0, len(events), 100):
            sender.send_messages([sb_message(e) for e in events[i:i + 100]])
    return started


def _applied(hosts: list[HostProcess], wanted: set[str]) -> dict[str, float]:
    seen: dict[str, float] = {}
    for h in hosts:
        with h._cond:
            for c in wanted & h.applied.keys():
                t = h.applied[c]
                seen[c] = min(t, seen.get(c, t))
    return seen


def _wait_applied(hosts: list[HostProcess], wanted: set[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while True:
        seen = _applied(hosts, wanted)
        if len(seen) == len(wanted) or time.monotonic() > deadline:
            return seen
        for h in hosts:
            if h.proc is not None and h.proc.poll() is not None:
                raise RuntimeError(f"a host exited with {h.proc.returncode} (log: {h.log_file})")
        if time.monotonic() - last_report > 15:
            _say(f"{len(seen)}/{len(wanted)} applied")
            last_report = time.monotonic()
        time.sleep(0.2)


def run_hosts(stack: StackProcess, settings: dict[str, str], folder: Path, *, hosts: int, customers: int,
              prefix: str, auth0_rate: float, auth0_burst: int, arm_limits: dict, timeout: float = 300.0) -> dict:
    procs = [HostProcess(settings, folder, name=f"{prefix}-host{i}").start() for i in range(hosts)]
    try:
        for h in procs:
            h.wait_for(lambda x: x.started_at, 120, "the host to start")
        # The shared limits first, then warm-up customers (tokens, clients, and each host's view of the buckets),
        # then an idle moment for the buckets to fill: a backlog arriving at instances that have been serving.
        auth0, apim = stack.control("auth0"), stack.control("apim")
        auth0.config(rate=auth0_rate, burst=auth0_burst)
        apim.config(arm_limits=arm_limits)
        warm = [f"{prefix}-warm-{i}" for i in range(2 * hosts)]
        _send(settings, [created_event(c) for c in warm])
        got = _wait_applied(procs, set(warm), 120)
        if len(got) < len(warm):
            raise RuntimeError(f"{prefix}: warm-up customers not applied")
        time.sleep(auth0_burst / auth0_rate + 1.0)
        before = server_counters(stack)
        throttled_before = apim.config().get("arm_throttled", 0)
        status_before = [Counter(h.auth0_status) for h in procs]
        retries_before = [Counter(h.retries) for h in procs]
        holds_before = [h.paced_holds for h in procs]
        ids = [f"{prefix}-{i:04d}" for i in range(customers)]
        started = _send(settings, [created_event(c) for c in ids])
        seen = _wait_applied(procs, set(ids), timeout)
        complete = len(seen) == len(ids)
        finished = max(seen.values()) if complete else time.monotonic()
        calls = counter_delta(server_counters(stack), before)
        arm_429 = apim.config().get("arm_throttled", 0) - throttled_before
        http_429 = sum(Counter(h.auth0_status).get("429", 0) - b.get("429", 0) for h, b in zip(procs, status_before))
        retries = sum(Counter(h.retries).get("scheduled", 0) - b.get("scheduled", 0)
                      for h, b in zip(procs, retries_before))
        holds = sum(h.paced_holds - b for h, b in zip(procs, holds_before))
        per_host = Counter()
        for h in procs:
            for c in set(ids) & h.applied.keys():
                per_host[h.log_file.stem] += 1
        memory = [h.memory_kib().get("VmHWM", 0) for h in procs]
    finally:
        for h in procs:
            h.stop()
    seconds = finished - started
    auth0_calls = sum(calls["auth0"].values())
    return {
        "hosts": hosts, "customers": customers, "applied": len(seen), "complete": complete, "seconds": seconds,
        "per_second": len(seen) / seconds if seconds > 0 else 0.0,
        "auth0_calls": dict(calls["auth0"]), "auth0_calls_per_customer": auth0_calls / max(1, len(seen)),
        "apim_calls": dict(calls["apim"]),
        "auth0_429": http_429, "arm_429": arm_429, "held_after_429": holds, "retries_scheduled": retries,
        "per_host": dict(per_host), "peak_memory_kib": memory,
        "dead_lettered": dead_letter_count(settings),
    }


def authorization_server_count(stack: StackProcess) -> int:
    return len(stack.control("apim").state().get("authorizationServers", {}))


def seed_authorization_servers(stack: StackProcess, settings: dict[str, str], target: int, prefix: str) -> int:
    """Make the APIM instance hold ``target`` authorization servers (other customers'), straight through the SDK with
    ARM's limits and the latency off meanwhile. Returns how many were added."""
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.apimanagement import ApiManagementClient
    from azure.mgmt.apimanagement.models import AuthorizationServerContract

    have = authorization_server_count(stack)
    missing = max(0, target - have)
    if not missing:
        return 0
    apim = stack.control("apim")
    saved_faults = apim.faults()["rules"]
    saved_limits = apim.config().get("arm_limits")
    apim.set_faults([])
    apim.config(arm_limits=None)
    client = ApiManagementClient(ManagedIdentityCredential(), settings["APIM_SUBSCRIPTION_ID"],
                                 base_url=settings["APIM_MANAGEMENT_ENDPOINT"],
                                 connection_verify=settings["LOCAL_STACK_CA_BUNDLE"])
    rg, svc = settings["APIM_RESOURCE_GROUP"], settings["APIM_SERVICE_NAME"]

    def put(i: int) -> None:
        client.authorization_server.create_or_update(rg, svc, f"{prefix}-{have + i:05d}", AuthorizationServerContract(
            display_name=f"Existing {i}", client_registration_endpoint="https://tenant.example/",
            authorization_endpoint="https://tenant.example/authorize",
            token_endpoint="https://tenant.example/oauth/token", grant_types=["clientCredentials"],
            client_authentication_method=["Body"], bearer_token_sending_methods=["authorizationHeader"],
            client_id=f"existing-{i}", client_secret="existing-secret"))

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, range(missing)))
    finally:
        client.close()
        apim.set_faults(saved_faults)
        apim.config(arm_limits=saved_limits)
    return missing
