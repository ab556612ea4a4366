"""``make bench`` / ``python -m bench``: measure the app on the local stack, print one table, write docs/BENCHMARKS.md.

    python -m bench [--profiles realistic,uniform] [--customers 30] [--repetitions 3] [--hosts 1,2,4]
                    [--scale-customers 150] [--existing 100,500,2000] [--existing-customers 80]
                    [--auth0-rate 10] [--auth0-burst 20] [--quick] [--no-write] [--keep] [--json FILE]

Runs, in order, on one local stack (its own process) with a ledger delay proxy in front of Azurite:

1. per latency profile (``bench/profiles/*.toml``): the service call in this process, one customer at a time,
   ``--repetitions`` x ``--customers`` created then removed; calls per customer; and two baselines in the same run:
   the same app with every step of an event forced sequential, and a plain script (SDK calls one after another,
   no pacing);
2. on the first profile: 1, 2 and 4 host processes (``python -m funchost``) sharing one Auth0 tenant limit and one
   ARM principal limit, ``--scale-customers`` created at once;
3. throughput with 100, 500 and 2,000 customers' authorization servers already in API Management (one host);
4. cold start: imports, and a fresh host process to its first applied event.
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

from . import critical_path, plain_script, profiles, report, scaleout, scenarios
from .delay_proxy import DelayProxyProcess, proxied_connection_string
from .machine import describe_machine
from .processes import ROOT, CpuSampler, StackProcess

DOC = ROOT / "docs" / "BENCHMARKS.md"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--profiles", default="realistic,uniform",
                   help="latency profiles (bench/profiles/NAME.toml), the first also for scale-out and cold start")
    p.add_argument("--customers", type=int, default=30, help="customers per repetition of the latency runs")
    p.add_argument("--repetitions", type=int, default=3, help="repetitions of the latency runs (default 3)")
    p.add_argument("--baseline-customers", type=int, default=10, help="customers per baseline (default 10)")
    p.add_argument("--hosts", type=_ints, default=[1, 2, 4], help="host processes per scale-out run")
    p.add_argument("--scale-customers", type=int, default=150, help="customers per scale-out run")
    p.add_argument("--existing", type=_ints, default=[100, 500, 2000],
                   help="existing customers' authorization servers for the throughput runs")
    p.add_argument("--existing-customers", type=int, default=80,
                   help="customers per existing-customers run (80: ten rounds of one host's 8 concurrent events)")
    p.add_argument("--auth0-rate", type=float, default=10.0, help="the tenant's Auth0 limit in the throughput runs")
    p.add_argument("--auth0-burst", type=int, default=20, help="its bucket size")
    p.add_argument("--arm-writes", default="10/200", help="ARM's writes (and deletes) limit per principal, RATE/BURST")
    p.add_argument("--arm-reads", default="25/250", help="ARM's reads limit per principal, RATE/BURST")
    p.add_argument("--cold-repetitions", type=int, default=5, help="fresh host processes for the first event")
    p.add_argument("--import-repetitions", type=int, default=5, help="fresh interpreters per import timing")
    p.add_argument("--run-timeout", type=float, default=240.0, help="seconds a throughput run may take")
    p.add_argument("--quick", action="store_true", help="a smoke run with small numbers (implies --no-write)")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    p.add_argument("--json", help="also write the raw results to this file")
    p.add_argument("--keep", action="store_true", help="keep the stack folder (logs) after the run")
    args = p.parse_args(argv)
    if args.quick:
        args.customers, args.repetitions, args.baseline_customers = 3, 2, 2
        args.hosts, args.scale_customers = [1, 2], 20
        args.existing, args.existing_customers = [20, 60], 8
        args.cold_repetitions, args.import_repetitions = 1, 1
        args.no_write = True
    return args


def _phase(name: str) -> None:
    print(f"-- [{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)


def _rate_burst(text: str) -> list:
    rate, burst = text.split("/")
    return [float(rate), int(burst)]


def run(args) -> dict:
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    machine = describe_machine()
    sampler = CpuSampler().start()
    marks = {"start": sampler.mark()}
    names = [n.strip() for n in args.profiles.split(",") if n.strip()]
    loaded = {n: profiles.load(n) for n in names}
    arm_limits = {"reads": _rate_burst(args.arm_reads), "writes": _rate_burst(args.arm_writes),
                  "deletes": _rate_burst(args.arm_writes)}
    results: dict = {"machine": machine, "args": vars(args), "folder": str(folder), "profiles": {},
                     "arm_limits": arm_limits}
    stack = proxy = None
    try:
        _phase(f"starting the local stack in {folder}")
        # Generous Auth0 limits outside the throughput runs; ARM's documented per-principal limits throughout. The
        # Premium tier caps authorization servers at 500, so every creation reserves a slot in the ledger, as on any
        # capped tier; the latency and scale-out runs create fewer than that.
        stack = StackProcess(folder / "stack", auth0_rate=1000, auth0_burst=1000, apim_sku="Premium",
                             extra_args=("--arm-reads", args.arm_reads, "--arm-writes", args.arm_writes,
                                         "--arm-deletes", args.arm_writes)).start()
        table = stack.settings["LEDGER_CONNECTION"]
        table_port = int(table.split("TableEndpoint=")[1].split("/")[2].rsplit(":", 1)[1])
        proxy = DelayProxyProcess("127.0.0.1", table_port, 0.0, seed=13).start()
        settings = dict(stack.settings)
        settings["LEDGER_CONNECTION"] = proxied_connection_string(table, proxy.port)
        os.environ.update(settings)  # the SDK baselines' credentials read the managed-identity endpoint from here

        for name, profile in loaded.items():
            scenarios.set_profile(stack, proxy, profile)
            floors = {}
            for flow, calls in critical_path.FLOWS.items():
                floor = critical_path.profile_floor(calls, profile)
                medians, chain = critical_path.median_chain(calls, profile)
                floors[flow] = {"floor_ms": floor.p50, "floor_p95_ms": floor.p95, "sum_of_medians_ms": medians,
                                "chain": chain, "minimum": dict(critical_path.minimum_calls(calls))}
                if flow in critical_path.PHASES:
                    as_run = critical_path.phased(calls, critical_path.PHASES[flow])
                    floors[flow]["phased_p50_ms"] = critical_path.profile_floor(as_run, profile).p50
            out = {"description": profile.description, "floors": floors,
                   "token_ms": profile.median("auth0", "oauth.token")}
            _phase(f"{name}: service call, {args.repetitions} x {args.customers} customers created, then removed")
            out["service"] = scenarios.service_call_latency(stack, settings, args.customers,
                                                            repetitions=args.repetitions, prefix=f"svc-{name}")
            _phase(f"{name}: baseline, every step sequential, {args.baseline_customers} customers")
            out["sequential"] = scenarios.service_call_latency(stack, settings, args.baseline_customers,
                                                               prefix=f"seq-{name}", sequential=True)
            _phase(f"{name}: baseline, a plain SDK script, {args.baseline_customers} customers")
            out["plain"] = plain_script.run(settings, args.baseline_customers, prefix=f"plain-{name}")
            results["profiles"][name] = out

        main = names[0]
        scenarios.set_profile(stack, proxy, loaded[main])
        results["scale"] = []
        marks["scale"] = sampler.mark()
        for n in args.hosts:
            _phase(f"{main}: scale-out, {n} host(s), {args.scale_customers} customers, Auth0 {args.auth0_rate:g}/s "
                   f"(burst {args.auth0_burst}) for the tenant, ARM writes {args.arm_writes} for the principal")
            results["scale"].append(scaleout.run_hosts(
                stack, settings, folder, hosts=n, customers=args.scale_customers, prefix=f"scale{n}",
                auth0_rate=args.auth0_rate, auth0_burst=args.auth0_burst, arm_limits=arm_limits,
                timeout=args.run_timeout))
        marks["scale_end"] = sampler.mark()

        # Start the existing-customers runs from an empty API Management instance: the scale-out runs left
        # hundreds of authorization servers. On the Isolated tier, which has no cap: 2,000 would not fit Premium's
        # 500 (a capped tier lists the entries once per deployment, to seed its reservation counter, never again).
        apim = stack.control("apim")
        apim.reset()
        apim.config(arm_limits=arm_limits, sku="Isolated")
        scenarios.set_profile(stack, proxy, loaded[main])
        results["existing"] = []
        for level in args.existing:
            _phase(f"{main}: {level} existing customers' authorization servers, then {args.existing_customers} "
                   f"created through one host")
            added = scaleout.seed_authorization_servers(stack, settings, level, prefix=f"existing{level}")
            count = scaleout.authorization_server_count(stack)
            run_ = scaleout.run_hosts(stack, settings, folder, hosts=1, customers=args.existing_customers,
                                      prefix=f"exist{level}", auth0_rate=args.auth0_rate,
                                      auth0_burst=args.auth0_burst, arm_limits=arm_limits,
                                      timeout=args.run_timeout)
            run_.update(existing=count, seeded=added)
            results["existing"].append(run_)

        _phase(f"{main}: cold start, {args.cold_repetitions} fresh host processes; imports x {args.import_repetitions}")
        # From an empty API Management instance again (the last existing-customers level left thousands of
        # authorization servers).
        apim.reset()
        apim.config(arm_limits=arm_limits)
        scenarios.set_profile(stack, proxy, loaded[main])
        stack.control("auth0").config(rate=1000, burst=1000)
        marks["cold"] = sampler.mark()
        results["imports"] = scenarios.import_times(settings, args.import_repetitions)
        results["first_event"] = scenarios.first_event_times(settings, folder, args.cold_repetitions)
    finally:
        marks["end"] = sampler.mark()
        sampler.stop()
        if proxy is not None:
            proxy.stop()
        if stack is not None:
            stack.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    results["load"] = {
        "loadavg_start": machine["loadavg"], "loadavg_end": list(os.getloadavg()),
        "run": CpuSampler.others(marks["start"], marks["end"]),
        "scale": CpuSampler.others(marks["scale"], marks["scale_end"]) if "scale_end" in marks else None,
        "top_others": sampler.top_others(),
    }
    results["duration_s"] = time.monotonic() - started
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results = run(args)
    print()
    print(report.console(results))
    if args.json:
        Path(args.json).write_text(json.dumps(report.jsonable(results), indent=1))
    if not args.no_write:
        DOC.write_text(report.markdown(results))
        print(f"\nwritten to {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
