"""``python -m chaos``: customer lifecycles under injected faults and worker kills; exits 1 unless nothing was
duplicated, orphaned, lost or leaked, and replaying the dead-letter queue converges to the events' state.

    python -m chaos [--full | --big] [--hosts H] [--customers N] [--fault-rate 0.1] [--kills K] [--stalls S]
                    [--seed S] [--sessions] [--outage-seconds 12] [--json] [--keep] [--folder DIR]

Progress goes to stderr, the figures to stdout. See chaos/run.py for the phases.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .report import render_json, render_text
from .run import ChaosOptions, ChaosRun


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, help="customer lifecycles (default 36; --big 120)")
    p.add_argument("--fault-rate", type=float, help="probability that a call to Auth0, Key Vault or APIM fails "
                                                     "(default 0.1)")
    p.add_argument("--kills", type=int, help="SIGKILLs of the host (default 6; --big 10)")
    p.add_argument("--seed", type=int, help="random seed of the workload, the faults' timing and the kills")
    p.add_argument("--big", action="store_true", help="a bigger run (200 customers, 16 kills)")
    p.add_argument("--full", action="store_true", help="the scale-out run (what make chaos runs): 3 hosts, 100 "
                                                       "customers, 8 kills, 4 stalls longer than a claim")
    p.add_argument("--hosts", type=int, help="host processes on the one queue (default 1; --full 3)")
    p.add_argument("--stalls", type=int, help="SIGSTOPs of a busy host, each longer than a claim (default 0; "
                                              "--full 4)")
    p.add_argument("--sessions", action="store_true", help="a session-enabled queue (SessionId = customer id; "
                                                           "CUSTOMER_EVENTS_SESSIONS=true) instead of the plain one")
    p.add_argument("--outage-seconds", type=float, help="how long Auth0 fails every call mid-run (default 12; 0: "
                                                         "no outage)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--keep", action="store_true", help="keep the run's folder (logs, settings) when it passes")
    p.add_argument("--folder", type=Path, help="where to put the run's stack, logs and settings (kept)")
    args = p.parse_args(argv)
    overrides = {k: v for k, v in (("customers", args.customers), ("fault_rate", args.fault_rate),
                                   ("kills", args.kills), ("seed", args.seed), ("folder", args.folder),
                                   ("outage_seconds", args.outage_seconds), ("hosts", args.hosts),
                                   ("stalls", args.stalls))
                 if v is not None}
    if args.big and args.full:
        p.error("--big and --full are two different runs: choose one")
    options = (ChaosOptions.big(**overrides) if args.big else ChaosOptions.full(**overrides) if args.full
               else ChaosOptions(**overrides))
    options.keep = args.keep
    options.sessions = args.sessions
    if not 0 <= options.fault_rate <= 1 or options.customers < 1 or options.kills < 0 or options.hosts < 1 \
            or options.stalls < 0:
        p.error("--customers and --hosts must be at least 1, --kills and --stalls at least 0, --fault-rate "
                "between 0 and 1")
    report = ChaosRun(options).run()
    print(render_json(report) if args.json else render_text(report), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
