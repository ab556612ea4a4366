"""``make bench`` / ``python -m bench``: measure the app on the local stack, print one table, write docs/BENCHMARKS.md.

    python -m bench [--customers 50] [--backfill 500] [--latency-ms 40] [--auth0-rate 10] [--auth0-burst 20]
                    [--repetitions 5] [--import-repetitions 9] [--no-pacing] [--no-write] [--keep] [--json FILE]

Runs, in order: latency and calls per customer of the service call (in this process), end-to-end latency through
Service Bus and the local Functions host (a subprocess), a backfill under Auth0's rate limit (a fresh host
subprocess, whose peak memory is read before it stops), then cold-start figures in fresh processes. The local stack
runs in a process of its own; its folder is removed at the end unless --keep.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import report, scenarios
from .delay_proxy import DelayProxy, proxied_connection_string
from .machine import describe_machine
from .processes import ROOT, CpuSampler, HostProcess, StackProcess

DOC = ROOT / "docs" / "BENCHMARKS.md"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=50, help="customers per latency measurement (default 50)")
    p.add_argument("--backfill", type=int, default=500, help="customers in the backfill (default 500)")
    p.add_argument("--latency-ms", type=float, default=40.0, help="injected latency per external call (default 40)")
    p.add_argument("--auth0-rate", type=float, default=10.0, help="Auth0 rate limit during the backfill, per s")
    p.add_argument("--auth0-burst", type=int, default=20, help="Auth0 bucket size during the backfill")
    p.add_argument("--repetitions", type=int, default=5,
                   help="fresh host processes for the time to the first event (default 5)")
    p.add_argument("--import-repetitions", type=int, default=9,
                   help="fresh interpreters per import timing (default 9)")
    p.add_argument("--backfill-timeout", type=float, default=360.0)
    p.add_argument("--no-pacing", action="store_true",
                   help="backfill without AUTH0_RATE_LIMIT (the app's client-side pacing off), to see what it is for")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    p.add_argument("--json", help="also write the raw results to this file")
    p.add_argument("--keep", action="store_true", help="keep the stack folder (logs) after the run")
    return p.parse_args(argv)


def _phase(name: str) -> None:
    print(f"-- {name}", file=sys.stderr, flush=True)


def run(args) -> dict:
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    machine = describe_machine()
    sampler = CpuSampler().start()
    marks = {"start": sampler.mark()}
    results: dict = {"machine": machine, "args": vars(args), "folder": str(folder)}
    stack = proxy = None
    hosts: list[HostProcess] = []
    try:
        _phase(f"starting the local stack in {folder}")
        # Generous limits outside the backfill, so that only the backfill meets Auth0's rate limit; the Isolated
        # tier has no cap on authorization servers (the others stop at 10 or 500, below this run's customer count).
        stack = StackProcess(folder / "stack", auth0_rate=1000, auth0_burst=1000, apim_sku="Isolated").start()
        table = stack.settings["LEDGER_CONNECTION"]
        table_port = int(table.split("TableEndpoint=")[1].split("/")[2].rsplit(":", 1)[1])
        proxy = DelayProxy("127.0.0.1", table_port, args.latency_ms / 1000.0).start()
        settings = dict(stack.settings)
        settings["LEDGER_CONNECTION"] = proxied_connection_string(table, proxy.port)
        scenarios.set_latency(stack, args.latency_ms)
        results["floors"] = scenarios.floors(args.latency_ms, ("auth0", "keyvault", "apim", "ledger"))

        _phase(f"service call: {args.customers} customers created, then removed, one at a time")
        marks["service"] = sampler.mark()
        results["service"] = scenarios.service_call_latency(stack, settings, args.customers)

        _phase(f"end to end through Service Bus and the local host: {args.customers} customers")
        marks["e2e"] = sampler.mark()
        host = HostProcess(settings, folder, name="host-e2e").start()
        hosts.append(host)
        host.wait_for(lambda h: h.started_at, 120, "the host to start")
        results["e2e"] = scenarios.end_to_end_latency(host, settings, args.customers)
        host.stop()

        _phase(f"backfill: {args.backfill} customers at once, Auth0 limited to {args.auth0_rate:g}/s "
               f"(burst {args.auth0_burst})")
        marks["backfill"] = sampler.mark()
        fill_settings = dict(settings)
        if not args.no_pacing:
            # The app's pacing set to the tenant's published rate (the burst left at its default, one second's
            # worth), as the README tells operators to do.
            fill_settings["AUTH0_RATE_LIMIT"] = f"{args.auth0_rate:g}"
        host = HostProcess(fill_settings, folder, name="host-backfill").start()
        hosts.append(host)
        host.wait_for(lambda h: h.started_at, 120, "the host to start")
        results["backfill"] = scenarios.backfill(stack, host, settings, args.backfill, rate=args.auth0_rate,
                                                 burst=args.auth0_burst, timeout=args.backfill_timeout)
        marks["backfill_end"] = sampler.mark()
        host.stop()

        _phase(f"cold start: {args.repetitions} fresh processes each")
        marks["cold"] = sampler.mark()
        results["imports"] = scenarios.import_times(settings, args.import_repetitions)
        results["first_event"] = scenarios.first_event_times(settings, folder, args.repetitions)
    finally:
        marks["end"] = sampler.mark()
        sampler.stop()
        for host in hosts:
            host.stop()
        if proxy is not None:
            proxy.stop()
        if stack is not None:
            stack.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    results["load"] = {
        "loadavg_start": machine["loadavg"], "loadavg_end": list(os.getloadavg()),
        "run": CpuSampler.others(marks["start"], marks["end"]),
        "backfill": CpuSampler.others(marks["backfill"], marks["backfill_end"]),
        "top_others": sampler.top_others(),
    }
    results["duration_s"] = time.monotonic() - started
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results = run(args)
    rows = report.rows(results)
    print()
    print(report.console_table(rows, results))
    if args.json:
        Path(args.json).write_text(json.dumps(report.jsonable(results), indent=1))
    if not args.no_write:
        DOC.write_text(report.markdown(rows, results))
        print(f"\nwritten to {DOC.relative_to(ROOT)}")
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
