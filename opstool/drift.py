"""``opstool drift``: the timer's drift check on demand (``shared/service_layer/drift.py``), as a table or JSON.

Report only by default; ``--repair`` repairs through the app's use cases, like the timer with DRIFT_REPAIR=true,
once the operator has said yes: on a terminal the findings are shown and the question asked, without one the
command refuses before it connects anywhere unless ``--yes`` is given (a repair deletes applications and rewrites
secrets, like ``replay`` and ``purge`` change the queue).
"""
from __future__ import annotations

import argparse
import sys
from typing import TextIO

from shared.domain.drift import Finding
from shared.service_layer.drift import reconcile, repair_findings
from shared.service_layer.ports import DriftReport

from .context import ask
from .errors import EXIT_FAILED, EXIT_OK
from .output import Column, emit, render_table, safe_text, write_json_line
from .services import app_service, app_settings

HOW_TO_CHECK = "Check what it would do with `opstool drift` and `opstool plan --customer ID`"


class TableReport(DriftReport):
    """Findings for the table (or JSON Lines) the command prints once the check is done."""

    def __init__(self):
        self.findings: list[Finding] = []

    def report(self, finding: Finding) -> None:
        self.findings.append(finding)


def cmd_drift(args: argparse.Namespace, out: TextIO, err: TextIO, stdin=None) -> int:
    stdin = stdin or sys.stdin
    if args.repair and not args.yes and not stdin.isatty():
        ask(err, "repair", yes=False, how=HOW_TO_CHECK, stdin=stdin)  # refuses before connecting anywhere
    service = app_service(app_settings(args.settings), err, role="drift")
    report = TableReport()
    result = reconcile(service, report, customer_id=args.customer)
    if args.repair:
        customers = result.to_repair
        if customers and not args.yes:
            _print(args, out, err, result, repairing=False)
            shown = ", ".join(customers[:5]) + (f" and {len(customers) - 5} more" if len(customers) > 5 else "")
            ask(err, f"repair {len(customers)} customer(s) ({safe_text(shown, 300)}): applications may be deleted "
                     "and secrets and entries rewritten", yes=False, how=HOW_TO_CHECK, stdin=stdin)
        repair_findings(service, result)
    return _print(args, out, err, result, repairing=args.repair)


def _print(args, out: TextIO, err: TextIO, result, *, repairing: bool) -> int:
    findings = result.findings
    if args.json:
        for f in findings:
            write_json_line({**f.as_dict(), "repair": _repair_state(result, f)}, out)
        write_json_line({"summary": {"findings": len(findings), "repaired": sorted(result.repaired),
                                     "failed": result.failed}}, out)
        return EXIT_FAILED if result.failed else EXIT_OK
    if not findings:
        emit(out, "no drift: every provisioned customer has what its profile wants, and nothing is left over")
        return EXIT_OK
    cols = [Column("CUSTOMER", lambda f: f.customer_id, 24), Column("KIND", lambda f: f.kind),
            Column("SERVICE", lambda f: f.service), Column("RESOURCE", lambda f: f.resource),
            Column("ID", lambda f: f.resource_id, 40), Column("DETAIL", lambda f: f.detail, 70)]
    if repairing:
        cols.append(Column("REPAIR", lambda f: _repair_state(result, f)))
    emit(out, render_table(findings, cols, wide=args.wide))
    tail = f"\n{len(findings)} finding(s)"
    if repairing:
        tail += f"; {len(result.repaired)} customer(s) repaired, {len(result.failed)} failed"
        for cid, reason in sorted(result.failed.items()):
            emit(err, f"repair of {cid} failed: {reason}")
    elif args.repair:
        tail += "; nothing changed yet"
    else:
        tail += "; nothing changed (--repair repairs)"
    emit(out, tail)
    return EXIT_FAILED if result.failed else EXIT_OK


def _repair_state(result, f: Finding) -> str:
    if not result.repair:
        return "not asked"
    if not f.repairable:
        return "not repairable"
    if f.customer_id in result.failed:
        return "failed"
    outcome = result.repaired.get(f.customer_id, "")
    return "repaired" if outcome == "applied" else outcome
