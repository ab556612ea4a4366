"""The report renders a run's results into one table with the targets beside the figures."""
from __future__ import annotations

import re
from collections import Counter

from bench import report, scenarios
from bench.scenarios import CallCounts, Latency


def results(per_second: float = 5.0, dead: int = 0, import_ms: float = 120.0) -> dict:
    created = CallCounts(50, {"auth0": Counter({"clients.create": 50, "client_grants.create": 50}),
                              "keyvault": Counter({"secrets.set": 50}), "identity": Counter(),
                              "apim": Counter({"authorization_servers.list": 50, "subscriptions.create_or_update": 50,
                                               "authorization_servers.create_or_update": 50}),
                              "ledger": Counter({"get_customer": 50, "create_customer": 50, "update_customer": 100})})
    return {
        "machine": {"cpu": "CPU", "cores": 2, "memory_gib": 4.0, "python": "3.11", "platform": "Linux",
                    "loadavg": [0.1, 0.1, 0.1], "date": "today", "commit": "abc"},
        "args": {"latency_ms": 40.0, "customers": 50, "backfill": 500, "auth0_rate": 10.0, "auth0_burst": 20,
                 "repetitions": 5, "no_pacing": False},
        "floors": scenarios.floors(40.0, ("auth0", "keyvault", "apim", "ledger")),
        "service": {"created": Latency([240.0] * 50), "removed": Latency([230.0] * 50),
                    "calls_created": created, "calls_removed": created, "calls_first_created": created},
        "e2e": {"created": Latency([250.0]), "removed": Latency([240.0]),
                "created_handler": Latency([245.0]), "removed_handler": Latency([235.0])},
        "backfill": {"customers": 500, "applied": 500, "complete": True, "seconds": 500 / per_second,
                     "per_second": per_second, "auth0_calls": {"clients.create": 500},
                     "auth0_calls_per_customer": 2.0, "http_429": 0, "paced_holds": 0, "failed_on_429": 0,
                     "retries_scheduled": 0, "dead_lettered": dead, "duplicates": {}, "unattributed": [],
                     "incomplete": [], "ledger_provisioned": 500, "memory_kib": {"VmHWM": 110000, "VmRSS": 100000}},
        "imports": {"function_app": {"median_ms": import_ms, "samples_ms": [import_ms] * 9},
                    "azure.functions": {"median_ms": 100.0, "samples_ms": [100.0] * 9}},
        "first_event": {"ready_ms": 300.0, "first_event_ms": 1900.0, "ready_samples_ms": [300.0],
                        "first_event_samples_ms": [1900.0]},
        "load": {"loadavg_start": [0.1], "loadavg_end": [0.2],
                 "run": {"other_cores": 0.05, "ours_cores": 0.4}, "backfill": {"other_cores": 0.0}},
        "duration_s": 180.0,
    }


def verdicts(r) -> dict[str, bool]:
    return {row.measure.split(":")[0].split(" (")[0]: row.passed for row in report.rows(r) if row.passed is not None}


def test_every_target_is_judged_from_the_runs_own_figures():
    v = verdicts(results())
    assert v == {"Latency per created customer, service call": True,
                 "Latency per removed customer, service call": True,
                 "External calls per created customer": True, "Backfill throughput": True, "Backfill": True,
                 "Cold start": True}


def test_missed_targets_fail():
    v = verdicts(results(per_second=4.0, dead=1, import_ms=151.0))
    assert v["Backfill throughput"] is False  # 80% of the 5/s ceiling
    assert v["Backfill"] is False  # a dead letter
    assert v["Cold start"] is False  # 1.51 x the bare import


def test_the_table_and_the_document_render():
    r = results()
    rows = report.rows(r)
    table = report.console_table(rows, r)
    assert table.count("\n|") == len(rows) + 2 and "**" not in table  # header, rule, one line per row
    doc = report.markdown(rows, r)
    assert doc.startswith("# Benchmarks") and "| Backfill throughput" in doc
    assert "`ledger.get_customer` -> `ledger.claim`" in doc
    assert not re.search(r"\{[a-z_]+(:[^}]*)?\}", doc)  # every placeholder filled
