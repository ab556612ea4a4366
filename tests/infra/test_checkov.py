"""checkov's Azure policies over infra/: nothing fails, and every skipped check says why in the template.

One checkov run per test session (about 10 s); the fixture is module-scoped and only this module uses it.
"""
from __future__ import annotations

import pytest

import iac_checks


@pytest.fixture(scope="module")
def report():
    return iac_checks.run_checkov()


def test_checkov_parsed_every_file(report):
    assert report["summary"]["parsing_errors"] == 0
    scanned = {r["file_path"].lstrip("/") for key in ("passed_checks", "failed_checks", "skipped_checks")
               for r in report["results"].get(key, [])}
    # The modules with resource types checkov has Azure policies for (it has none for a Standard Service Bus
    # namespace, a managed identity or Application Insights).
    for name in ("storage.bicep", "vault.bicep", "keyvault-secret.bicep", "functionapp.bicep"):
        assert any(f.endswith(name) for f in scanned), f"checkov did not scan {name}: {sorted(scanned)}"


def test_no_check_fails(report):
    failed = [f"{r['check_id']} {r['file_path']} {r['resource']}: {r['check_name']}"
              for r in report["results"].get("failed_checks", [])]
    assert not failed, "fix these in infra/, or skip one with `// checkov:skip=ID: reason` in the resource:\n" + \
        "\n".join(failed)


def test_every_skip_has_a_written_reason(report):
    skipped = report["results"].get("skipped_checks", [])
    assert skipped, "expected the documented skips (public endpoints without a virtual network)"
    for r in skipped:
        reason = (r.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason.strip()) >= 20, f"{r['check_id']} in {r['file_path']}: skipped without a reason"
