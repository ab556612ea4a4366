"""The measurements of one benchmark run; each returns plain data for the report (bench/report.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .processes import ROOT, HostProcess, StackProcess, clean_environment
from .stats import median, percentile

HTTP_SERVICES = ("auth0", "keyvault", "apim", "identity")
#: the services whose every operation gets the injected latency through the stand-ins' control API
LATENCY_SERVICES = ("auth0", "keyvault", "apim")


@dataclass
class Latency:
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)

    def as_dict(self) -> dict:
        return {"n": len(self.samples_ms), "p50_ms": round(self.p50, 1), "p95_ms": round(self.p95, 1),
                "min_ms": round(min(self.samples_ms), 1), "max_ms": round(max(self.samples_ms), 1)}


@dataclass
class CallCounts:
    """Calls per customer by service (and by operation), over ``customers`` customers."""
    customers: int
    by_operation: dict[str, Counter] = field(default_factory=dict)  # service -> Counter(op -> calls)
    keyvault_challenges: int = 0  # of the Key Vault calls, requests answered with the 401 challenge

    def per_customer(self, service: str) -> float:
        return sum(self.by_operation.get(service, Counter()).values()) / max(1, self.customers)

    def total_per_customer(self) -> float:
        return sum(self.per_customer(s) for s in self.by_operation)

    def as_dict(self) -> dict:
        return {"customers": self.customers, "keyvault_challenges": self.keyvault_challenges,
                "per_customer": {s: round(self.per_customer(s), 2) for s in self.by_operation},
                "operations": {s: dict(sorted(c.items())) for s, c in self.by_operation.items()}}


def server_counters(stack: StackProcess) -> dict[str, Counter]:
    return {name: Counter(stack.control(name).calls()["calls"]) for name in HTTP_SERVICES}


def counter_delta(after: dict[str, Counter], before: dict[str, Counter]) -> dict[str, Counter]:
    out = {}
    for name in after:
        delta = Counter(after[name])
        delta.subtract(before.get(name, Counter()))
        out[name] = Counter({k: v for k, v in delta.items() if v})
    return out


def set_profile(stack: StackProcess, proxy, profile) -> None:
    """Apply a latency profile (``bench.profiles.Profile``) to the stand-ins and the ledger's delay proxy; None
    removes every latency."""
    for name in LATENCY_SERVICES:
        stack.control(name).set_faults(profile.rules(name) if profile is not None else [])
    if proxy is not None:
        proxy.set_delay(profile.distribution("ledger") if profile is not None else 0.0)


def created_event(customer: str) -> dict:
    from devtools.send import build_event
    return build_event("created", customer, profile="oem", display_name=f"Bench {customer}")


def removed_event(customer: str) -> dict:
    from devtools.send import build_event
    return build_event("removed", customer)


def sb_message(event: dict):
    from azure.servicebus import ServiceBusMessage
    return ServiceBusMessage(json.dumps(event), message_id=event["id"], session_id=event["data"]["customerId"],
                             content_type="application/cloudevents+json", subject=event["type"])


# -- latency of the service call, and calls per customer ------------------------------------------------------------
def service_call_latency(stack: StackProcess, settings: dict[str, str], customers: int, *, repetitions: int = 1,
                         prefix: str = "bench-svc", sequential: bool = False) -> dict:
    """The service layer called in this process (``ProvisioningService.handle``), one customer at a time: per
    repetition, ``customers`` created, then the same removed. ``sequential``: every step of an event one after
    another (``max_parallel_steps`` 1), the baseline the parallel steps are measured against."""
    from shared.settings import AppSettings
    from shared.bootstrap import build_service
    from shared.domain.events import parse_event

    from shared.adapters.credentials import get_credential
    from shared.adapters.keyvault_secrets import KeyVaultSecretStore
    from shared.adapters.table_ledger import TableLedger

    os.environ.update(settings)  # DefaultAzureCredential reads the managed-identity endpoint from the environment
    app_settings = AppSettings.load(settings)
    service = build_service(app_settings, worker_id=f"{prefix}-worker")
    if sequential:
        import dataclasses
        object.__setattr__(service.core, "options", dataclasses.replace(service.core.options, max_parallel_steps=1))
    # Counted from outside the app: azure-core's response hook sees every HTTP answer of these two clients (the
    # other services count their own requests in the stand-ins).
    answers: Counter = Counter()

    def counting(service_name: str):
        def hook(response) -> None:
            request = response.http_request
            answers[(service_name, request.method, response.http_response.status_code)] += 1
        return hook

    service.core.ledger.close()
    service.core.secrets.close()
    service.core.ledger = TableLedger.from_settings(app_settings, raw_response_hook=counting("ledger"))
    service.core.secrets = KeyVaultSecretStore.from_settings(app_settings, get_credential(None),
                                                            raw_response_hook=counting("keyvault"))

    def handle(event: dict) -> float:
        parsed = parse_event(json.dumps(event).encode())
        started = time.perf_counter()
        outcome = service.handle(parsed, message_id=event["id"])
        elapsed = (time.perf_counter() - started) * 1000
        if outcome.result != "applied":
            raise RuntimeError(f"{event['type']} for {parsed.customer_id}: {outcome.result} {outcome.detail}")
        return elapsed

    def snapshot():
        return server_counters(stack), Counter(answers)

    def calls_between(a, b, n) -> CallCounts:
        delta = counter_delta(b[0], a[0])
        seen = Counter(b[1])
        seen.subtract(a[1])
        delta["ledger"] = Counter({f"{method} {status}": v for (svc, method, status), v in seen.items()
                                   if svc == "ledger" and v})
        # Key Vault's stand-in counts every request; the unauthenticated first request of the challenge is the
        # one answered 401.
        challenges = sum(v for (svc, _, status), v in seen.items() if svc == "keyvault" and status == 401)
        return CallCounts(n, delta, keyvault_challenges=challenges)

    # The first customer of a process pays for the tokens, Key Vault's challenge and the APIM tier lookup.
    s0 = snapshot()
    cold_created = handle(created_event(f"{prefix}-warm"))
    s1 = snapshot()
    cold_removed = handle(removed_event(f"{prefix}-warm"))
    s2 = snapshot()
    reps_created, reps_removed = [], []
    s3 = s4 = None
    for rep in range(repetitions):
        ids = [f"{prefix}-{rep}-{i:03d}" for i in range(customers)]
        before = snapshot()
        reps_created.append(Latency([handle(created_event(c)) for c in ids]))
        middle = snapshot()
        reps_removed.append(Latency([handle(removed_event(c)) for c in ids]))
        if rep == 0:
            s2, s3, s4 = before, middle, snapshot()
    for part in (service.identity, service.secrets, service.gateway, service.ledger):
        part.close()
    return {
        "created": Latency([v for r in reps_created for v in r.samples_ms]),
        "removed": Latency([v for r in reps_removed for v in r.samples_ms]),
        "reps_created": reps_created, "reps_removed": reps_removed,
        "cold_created_ms": cold_created, "cold_removed_ms": cold_removed,
        "calls_created": calls_between(s2, s3, customers), "calls_removed": calls_between(s3, s4, customers),
        "calls_first_created": calls_between(s0, s1, 1), "calls_first_removed": calls_between(s1, s2, 1),
    }


def dead_letter_count(settings: dict[str, str]) -> int:
    from azure.servicebus import ServiceBusClient, ServiceBusSubQueue
    with ServiceBusClient.from_connection_string(settings["ServiceBusConnection"]) as client, \
            client.get_queue_receiver(settings["CUSTOMER_EVENTS_QUEUE"], sub_queue=ServiceBusSubQueue.DEAD_LETTER,
                                      max_wait_time=2) as receiver:
        count, seq = 0, 0
        while True:
            batch = receiver.peek_messages(max_message_count=250, sequence_number=seq)
            if not batch:
                return count
            count += len(batch)
            seq = batch[-1].sequence_number + 1


def ledger_provisioned(settings: dict[str, str], customers: set[str]) -> int:
    from shared.settings import LedgerSettings
    from shared.adapters.table_ledger import TableLedger
    ledger = TableLedger.from_settings(LedgerSettings.load(settings))
    try:
        return sum(1 for r in ledger.list_customers() if r.customer_id in customers and r.status == "provisioned")
    finally:
        ledger.close()


# -- cold start -------------------------------------------------------------------------------------------------------
IMPORT_SNIPPET = ("import time; t = time.perf_counter(); import {module}; "
                  "print(round((time.perf_counter() - t) * 1000, 3))")


def import_times(settings: dict[str, str], repetitions: int) -> dict:
    """``import function_app`` and a bare ``import azure.functions``, each in a fresh interpreter, interleaved;
    the first of each is left out (it may compile .pyc files or fill the page cache)."""
    env = clean_environment()
    env.update(settings)
    samples: dict[str, list[float]] = {"function_app": [], "azure.functions": []}
    for i in range(repetitions + 1):
        for module in samples:
            out = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET.format(module=module)], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise RuntimeError(f"import {module} failed: {out.stderr[-500:]}")
            if i:
                samples[module].append(float(out.stdout.strip().splitlines()[-1]))
    return {m: {"median_ms": median(v), "samples_ms": v} for m, v in samples.items()}


def first_event_times(settings: dict[str, str], folder: Path, repetitions: int) -> dict:
    """A fresh host process with one created event waiting in the queue: process start -> host ready -> the
    event applied (the app's first event builds the SDK clients and fetches its tokens)."""
    from azure.servicebus import ServiceBusClient
    ready, first = [], []
    for i in range(repetitions):
        cid = f"bench-cold-{i:02d}"
        with ServiceBusClient.from_connection_string(settings["ServiceBusConnection"]) as client, \
                client.get_queue_sender(settings["CUSTOMER_EVENTS_QUEUE"]) as sender:
            sender.send_messages(sb_message(created_event(cid)))
        host = HostProcess(settings, folder, name=f"host-cold-{i:02d}").start()
        try:
            done = host.wait_for(lambda h: h.applied_at(cid), 120, f"cold start {i}")
            ready.append((host.started_at - host.spawned_at) * 1000)
            first.append((done - host.spawned_at) * 1000)
        finally:
            host.stop()
    return {"ready_ms": median(ready), "first_event_ms": median(first), "ready_samples_ms": ready,
            "first_event_samples_ms": first}

