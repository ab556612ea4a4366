"""A small chaos run in CI: two host processes on one queue, 8 customer lifecycles, 10 % faults on every call to
Auth0, Key Vault and APIM, two SIGKILLs and one stall longer than a claim. ``make chaos`` runs the full size."""
from __future__ import annotations

import pytest

from chaos.report import render_text
from chaos.run import ChaosOptions, ChaosRun


@pytest.mark.timeout(240)
def test_small_chaos_run_loses_nothing_duplicates_nothing_and_converges(tmp_path):
    options = ChaosOptions(customers=8, fault_rate=0.1, kills=2, stalls=1, hosts=2, seed=7, round_gap=1.5,
                           kill_gap=(1.0, 2.5), outage_seconds=8, drain_timeout=120, folder=tmp_path / "chaos")
    lines: list[str] = []
    report = ChaosRun(options, progress=lines.append).run()
    text = render_text(report)
    print("\n".join(lines) + text)

    assert report.errors == [] and report.drained, text
    assert len(report.kills) == 2 and len(report.stalls) == 1, text
    assert sum(report.faults_injected.values()) > 0, text  # the faults did happen
    for verdict in (report.before, report.after):
        assert verdict.duplicates == {} and verdict.orphans == [] and verdict.lost == [], text
        assert verdict.unexplained == {}, text
    assert report.after.mismatches == {}, text  # replaying the dead-letter queue converges
    assert report.after.half_provisioned == [], text
    # The invalid event is dead-lettered with its reason, and only it.
    assert report.after.outcomes["rejected"] == report.invalid_events >= 1, text
    assert report.leaks == [] and report.secrets_checked > 0, text
    assert report.ok, text
