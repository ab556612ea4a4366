"""The chaos run's figures, as text for people or as one JSON document for machines."""
from __future__ import annotations

import json
from dataclasses import asdict

from .run import ChaosReport
from .verify import Verdict


def _faults(report: ChaosReport) -> str:
    total = sum(report.faults_injected.values()) - report.outage_faults
    by_kind: dict[str, int] = {}
    for key, n in report.faults_injected.items():
        kind = key.split(":", 1)[1]
        by_kind[kind] = by_kind.get(kind, 0) + n
    by_service: dict[str, int] = {}
    for key, n in report.faults_injected.items():
        by_service[key.split(":", 1)[0]] = by_service.get(key.split(":", 1)[0], 0) + n
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items(), key=lambda kv: -kv[1]))
    services = ", ".join(f"{s} {n}/{report.calls.get(s, 0)} calls" for s, n in sorted(by_service.items()))
    return (f"{total} at random + {report.outage_faults} in the outage (all: {kinds}; {services})"
            if report.outage_faults else f"{total} ({kinds}; {services})")


def _verdict_lines(title: str, v: Verdict, customers: int) -> list[str]:
    lines = [f"{title}:",
             f"  state matches the events:  {customers - len(v.mismatches)}/{customers} customers",
             f"  duplicates:                {len(v.duplicates)}",
             f"  orphans:                   {len(v.orphans)}",
             f"  lost events:               {len(v.lost)}",
             "  outcomes:                  " + ", ".join(f"{k} {n}" for k, n in sorted(v.outcomes.items())),
             f"  dead-lettered events:      {len(v.dead_lettered)}"]
    for item in v.dead_lettered[:10]:
        lines.append(f"    {item}")
    for label, items in (("duplicate", [f"{c}: {apps}" for c, apps in v.duplicates.items()]),
                         ("orphan", v.orphans), ("lost", v.lost), ("half-provisioned", v.half_provisioned),
                         ("differs", [f"{c}: {'; '.join(p)}" for c, p in v.mismatches.items()]),
                         ("UNEXPLAINED", [f"{c}: {'; '.join(p)}" for c, p in v.unexplained.items()])):
        for item in items[:20]:
            lines.append(f"    {label}: {item}")
    return lines


def _both(report: ChaosReport, name: str) -> str:
    """``0`` when both verdicts say 0, else both numbers."""
    counts = [len(getattr(v, name)) if v else None for v in (report.before, report.after)]
    if counts == [0, 0]:
        return "0 (before and after the dead-letter replay)"
    return " / ".join("?" if c is None else str(c) for c in counts) + " (before / after the dead-letter replay)"


def render_text(report: ChaosReport) -> str:
    o = report.options
    mid = sum(1 for n in report.kills if n)
    lines = [
        "",
        "chaos run " + ("PASSED" if report.ok else "FAILED"),
        f"  customers:        {report.customers} ({report.expected_created} end created, "
        f"{report.expected_removed} end removed; profiles oem, partner-web, partner-spa)",
        f"  events:           {report.events} lifecycle events + {report.invalid_events} invalid; "
        f"{report.messages_sent} messages sent ({report.resends} resends under new message ids)",
        f"  fault rate:       {o.fault_rate:.0%} per call on auth0, keyvault, apim (seed {o.seed})",
        f"  faults injected:  {_faults(report)}",
        f"  outage:           {report.outage or 'none'}",
        f"  hosts:            {o.hosts} host process(es) on one queue "
        f"({'session-enabled' if o.sessions else 'no sessions'})",
        f"  kills:            {len(report.kills)} SIGKILLs of a host ({mid} mid-invocation)",
        f"  stalls:           {len(report.stalls)} SIGSTOPs of a busy host for {o.stall_seconds:.0f} s, longer than a "
        f"claim ({sum(1 for n in report.stalls if n)} mid-invocation)",
        f"  claims lost mid-run: {report.claims_lost} (the event went back to the queue; the new holder finished it)",
        f"  fenced writes refused: {report.fenced}; claims renewed before a write: {report.renewals}",
        f"  invocations:      {report.invocations.get('Succeeded', 0)} succeeded, "
        f"{report.invocations.get('Failed', 0)} failed",
        f"  duplicates:       {_both(report, 'duplicates')}",
        f"  orphans:          {_both(report, 'orphans')}",
        f"  lost events:      {_both(report, 'lost')}",
        f"  half-provisioned: {len(report.after.half_provisioned) if report.after else '?'} after the replay "
        f"({len(report.before.half_provisioned) if report.before else '?'} before it, each with a dead-lettered "
        "event)",
        f"  secret leaks:     {len(report.leaks)} ({report.secrets_checked} secrets searched in "
        f"{report.places_scanned} logs, ledger rows, dead-lettered messages and events)",
        "  dead-letter replay converges: "
        + ("yes" if report.after and not report.after.mismatches else "NO")
        + f" ({report.dead_lettered_before_replay} dead-lettered, {report.replayed or 0} replayed; "
          f"{report.dead_lettered_after_replay} back in the dead-letter queue: "
          + ("the invalid events" if not report.valid_dead_lettered_after_replay
             else f"{report.valid_dead_lettered_after_replay} VALID EVENTS") + ")",
        f"  drained:          {'yes' if report.drained else 'NO'}",
        "  durations:        " + ", ".join(f"{k} {v:.0f}s" for k, v in report.durations.items()),
    ]
    if report.before:
        lines += _verdict_lines("before the replay", report.before, report.customers)
    if report.after:
        lines += _verdict_lines("after the replay", report.after, report.customers)
    for leak in report.leaks[:20]:
        lines.append(f"  LEAK: {leak.line()}")
    for err in report.errors:
        lines.append(f"  ERROR: {err}")
    if not report.ok or o.keep:
        lines.append(f"  logs and settings kept in {report.folder}")
    return "\n".join(lines)


def _verdict_json(v: Verdict | None) -> dict | None:
    if v is None:
        return None
    return {"duplicates": v.duplicates, "orphans": v.orphans, "lost": v.lost, "mismatches": v.mismatches,
            "unexplained": v.unexplained, "dead_lettered": v.dead_lettered, "outcomes": dict(v.outcomes),
            "half_provisioned": v.half_provisioned,
            "deliveries": v.deliveries}


def render_json(report: ChaosReport) -> str:
    doc = {k: v for k, v in report.__dict__.items() if k not in ("before", "after", "leaks", "replay_output")}
    doc["options"] = asdict(report.options)
    doc["before"], doc["after"] = _verdict_json(report.before), _verdict_json(report.after)
    doc["ok"] = report.ok
    doc["figures"] = {
        "customers": report.customers, "events": report.events, "invalid_events": report.invalid_events,
        "messages_sent": report.messages_sent, "faults_injected": sum(report.faults_injected.values()),
        "faults_injected_by_the_outage": report.outage_faults,
        "kills": len(report.kills), "stalls": len(report.stalls), "hosts": report.options.hosts,
        "claims_lost_mid_run": report.claims_lost, "fenced_writes_refused": report.fenced,
        "half_provisioned": len(report.after.half_provisioned) if report.after else None,
        "duplicates": sum(len(v.duplicates) for v in (report.before, report.after) if v),
        "orphans": sum(len(v.orphans) for v in (report.before, report.after) if v),
        "lost_events": sum(len(v.lost) for v in (report.before, report.after) if v),
        "secret_leaks": len(report.leaks),
        "replay_converges": bool(report.after and not report.after.mismatches),
    }
    doc["leaks"] = [leak.line() for leak in report.leaks]
    return json.dumps(doc, indent=1, default=str)
