"""infra/deploy.sh --code-only finds the Function App whoever deployed main.bicep (itself, `azd up`), against a
stand-in `az` that answers from recorded resources and runs each --query as az does (JMESPath, from .venv-iac)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

import iac_checks

FAKE_AZ = """#!{python}
import json, sys
import jmespath
args = sys.argv[1:]
state = json.load(open({state!r}))
with open({calls!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
def opt(name):
    return args[args.index(name) + 1] if name in args else None
if args[:3] == ["deployment", "group", "list"]:
    data = state["deployments"]
elif args[:2] == ["functionapp", "list"]:
    data = state["apps"]
else:
    sys.exit(0)
result = jmespath.search(opt("--query"), data) if opt("--query") else data
if result is None:
    sys.exit(0)
for item in result if isinstance(result, list) else [result]:
    print(item)
"""


def deployment(name: str, when: str, app: str | None, state: str = "Succeeded") -> dict:
    outputs = {"FUNCTION_APP_NAME": {"type": "String", "value": app}} if app else {}
    return {"name": name, "properties": {"provisioningState": state, "timestamp": when, "outputs": outputs}}


@pytest.fixture
def az(tmp_path):
    """az(deployments, apps) -> a function running deploy.sh with that az; returns (result, the publish target)."""
    iac_checks.require_iac_venv()
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()

    def run(deployments: list[dict], apps: list[dict], *argv: str):
        state = tmp_path / "state.json"
        state.write_text(json.dumps({"deployments": deployments, "apps": apps}))
        script = bin_dir / "az"
        script.write_text(FAKE_AZ.format(python=iac_checks.IAC_PYTHON, state=str(state), calls=str(calls)))
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        calls.write_text("")
        out = subprocess.run(["bash", str(iac_checks.INFRA / "deploy.sh"), "-g", "rg-cp", "--code-only", *argv],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
        published = [c for c in map(json.loads, calls.read_text().splitlines()) if c[:2] == ["functionapp", "deployment"]]
        target = published[0][published[0].index("--name") + 1] if published else None
        return out, target
    return run


def test_a_deployment_made_by_azd_is_found(az):
    out, target = az([deployment("prod-1733600000", "2026-12-01T10:00:00Z", "func-cprov-azd")], [])
    assert out.returncode == 0, out.stderr
    assert target == "func-cprov-azd" and "done: func-cprov-azd" in out.stdout


def test_the_latest_successful_deployment_wins_whoever_named_it(az):
    out, target = az([deployment("customer-provisioning-20261130", "2026-11-30T10:00:00Z", "func-old"),
                      deployment("prod-1733600000", "2026-12-01T10:00:00Z", "func-new"),
                      deployment("prod-1733700000", "2026-12-02T10:00:00Z", "func-broken", state="Failed"),
                      deployment("unrelated-storage", "2026-12-03T10:00:00Z", None)], [])
    assert out.returncode == 0, out.stderr
    assert target == "func-new"


def test_without_deployment_history_the_tagged_app_is_used(az):
    apps = [{"name": "func-cprov-tagged", "tags": {"azd-service-name": "app", "azd-env-name": "prod"}},
            {"name": "func-something-else", "tags": {}}]
    out, target = az([], apps)
    assert out.returncode == 0, out.stderr
    assert target == "func-cprov-tagged"


def test_two_tagged_apps_or_none_stop_with_what_to_do(az):
    tagged = [{"name": n, "tags": {"azd-service-name": "app"}} for n in ("func-a", "func-b")]
    out, target = az([], tagged)
    assert out.returncode == 1 and target is None
    assert "several Function Apps" in out.stderr and "func-a func-b" in out.stderr and "-n" in out.stderr
    out, target = az([], [])
    assert out.returncode == 1 and target is None and "deploy the infrastructure first" in out.stderr
    out, target = az([], [], "-n", "func-named")
    assert out.returncode == 0 and target == "func-named", out.stderr
