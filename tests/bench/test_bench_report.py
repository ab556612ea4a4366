"""The report renders a run's results into tables with the targets beside the figures (printed, never asserted)."""
from __future__ import annotations

from collections import Counter

from bench import critical_path, profiles, report
from bench.scenarios import CallCounts, Latency


def _profile(name: str) -> dict:
    p = profiles.load(name)
    counts = CallCounts(10, {"auth0": Counter({"clients.create": 10, "client_grants.create": 10}),
                             "apim": Counter({"authorization_servers.list": 10})})
    floors = {}
    for flow, calls in critical_path.FLOWS.items():
        floor = critical_path.profile_floor(calls, p, samples=200)
        medians, chain = critical_path.median_chain(calls, p)
        floors[flow] = {"floor_ms": floor.p50, "floor_p95_ms": floor.p95, "sum_of_medians_ms": medians,
                        "chain": chain, "minimum": dict(critical_path.minimum_calls(calls))}
    lat = Latency([floors["created"]["floor_ms"] * 1.05] * 10)
    rem = Latency([floors["removed"]["floor_ms"] * 1.05] * 10)
    return {"description": p.description, "floors": floors, "token_ms": 150.0,
            "service": {"created": lat, "removed": rem, "reps_created": [lat] * 3, "reps_removed": [rem] * 3,
                        "calls_created": counts, "calls_removed": counts},
            "sequential": {"created": lat, "removed": lat}, "plain": {"created": lat, "removed": lat}}


def _scale(hosts: int, per_second: float, auth0_429: int = 0) -> dict:
    return {"hosts": hosts, "customers": 150, "applied": 150, "complete": True, "seconds": 150 / per_second,
            "per_second": per_second, "auth0_calls_per_customer": 2.01, "auth0_429": auth0_429, "arm_429": 0,
            "held_after_429": 0, "retries_scheduled": 0, "dead_lettered": 0, "peak_memory_kib": [100000] * hosts,
            "apim_calls": {"authorization_servers.list": 150}}


def results(per_second_4: float = 4.8, auth0_429: int = 0, existing_last: float = 4.9) -> dict:
    return {
        "machine": {"cpu": "CPU", "cores": 2, "memory_gib": 4.0, "python": "3.11", "platform": "Linux",
                    "loadavg": [0.1, 0.1, 0.1], "date": "today", "commit": "abc"},
        "args": {"customers": 10, "repetitions": 3, "baseline_customers": 5, "hosts": [1, 2, 4],
                 "scale_customers": 150, "existing": [100, 2000], "existing_customers": 40, "auth0_rate": 10.0,
                 "auth0_burst": 20, "arm_writes": "10/200", "arm_reads": "25/250", "cold_repetitions": 3,
                 "import_repetitions": 5},
        "arm_limits": {"reads": [25.0, 250], "writes": [10.0, 200], "deletes": [10.0, 200]},
        "profiles": {"realistic": _profile("realistic"), "uniform": _profile("uniform")},
        "scale": [_scale(1, 3.0), _scale(2, 4.6), _scale(4, per_second_4, auth0_429)],
        "existing": [dict(_scale(1, 5.0), existing=100), dict(_scale(1, existing_last), existing=2000)],
        "imports": {"function_app": {"median_ms": 120.0, "samples_ms": [120.0] * 5},
                    "azure.functions": {"median_ms": 100.0, "samples_ms": [100.0] * 5}},
        "first_event": {"ready_ms": 300.0, "first_event_ms": 2500.0, "ready_samples_ms": [300.0],
                        "first_event_samples_ms": [2500.0]},
        "load": {"loadavg_start": [0.1], "loadavg_end": [0.2], "run": {"other_cores": 0.05, "ours_cores": 0.4},
                 "scale": {"other_cores": 0.0}},
        "duration_s": 900.0,
    }


def verdicts(r) -> list[str]:
    return [cell for t in report.tables(r) for row in t.rows for cell in row if "PASS" in cell or "MISS" in cell]


def test_targets_are_judged_from_the_runs_own_figures():
    v = verdicts(results())
    assert len(v) == 5  # realistic created + removed latency, 4 hosts, existing customers, cold start
    assert all("PASS" in c for c in v)


def test_the_ceiling_is_the_tighter_of_the_two_shared_limits():
    r = results()
    top, text = report.ceiling(r)
    assert top == 5.0
    r["arm_limits"]["writes"] = [6.0, 200]
    assert report.ceiling(r)[0] == 3.0


def test_misses_are_reported():
    v = " ".join(verdicts(results(per_second_4=4.0, auth0_429=5, existing_last=3.0)))
    assert v.count("MISS") >= 2


def test_the_console_and_markdown_render():
    r = results()
    text = report.console(r)
    assert "Scale-out" in text and "**" not in text
    doc = report.markdown(r)
    assert "## Latency profiles" in doc and "| 4 |" in doc
