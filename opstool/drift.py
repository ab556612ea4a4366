"""``opstool drift``: the timer's drift check on demand (``shared/service_layer/drift.py``), as a table or JSON.

Report only by default; ``--repair`` repairs through the app's use cases, like the timer with DRIFT_REPAIR=true.
"""
from __future__ import annotations

import argparse
from typing import TextIO

from shared.domain.drift import Finding
from shared.service_layer.drift import reconcile
from shared.service_layer.ports import DriftReport

from .errors import EXIT_FAILED, EXIT_OK
from .output import Column, emit, render_table, write_json_line
from .services import app_service, app_settings


class TableReport(DriftReport):
    """Findings for the table (or JSON Lines) the command prints once the check is done."""

    def __init__(self):
        self.findings: list[Finding] = []

    def report(self, finding: Finding) -> None:
        self.findings.append(finding)


def cmd_drift(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    service = app_service(app_settings(args.settings), err, role="drift")
    report = TableReport()
    result = reconcile(service, report, repair=args.repair, customer_id=args.customer)
    if args.json:
        for f in report.findings:
            write_json_line({**f.as_dict(), "repair": _repair_state(result, f)}, out)
        write_json_line({"summary": {"findings": len(result.findings), "repaired": sorted(result.repaired),
                                     "failed": result.failed}}, out)
        return EXIT_FAILED if result.failed else EXIT_OK
    if not report.findings:
        emit(out, "no drift: every provisioned customer has what its profile wants, and nothing is left over")
        return EXIT_OK
    cols = [Column("CUSTOMER", lambda f: f.customer_id, 24), Column("KIND", lambda f: f.kind),
            Column("SERVICE", lambda f: f.service), Column("RESOURCE", lambda f: f.resource),
            Column("ID", lambda f: f.resource_id, 40), Column("DETAIL", lambda f: f.detail, 70)]
    if args.repair:
        cols.append(Column("REPAIR", lambda f: _repair_state(result, f)))
    emit(out, render_table(report.findings, cols, wide=args.wide))
    tail = f"\n{len(report.findings)} finding(s)"
    if args.repair:
        tail += f"; {len(result.repaired)} customer(s) repaired, {len(result.failed)} failed"
        for cid, reason in sorted(result.failed.items()):
            emit(err, f"repair of {cid} failed: {reason}")
    else:
        tail += "; nothing changed (--repair repairs)"
    emit(out, tail)
    return EXIT_FAILED if result.failed else EXIT_OK


def _repair_state(result, f: Finding) -> str:
    if not result.repair:
        return "not asked"
    if not f.repairable:
        return "not in place"
    if f.customer_id in result.failed:
        return "failed"
    outcome = result.repaired.get(f.customer_id, "")
    return "repaired" if outcome == "applied" else outcome
