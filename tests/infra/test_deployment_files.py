"""The deployment entry points agree with the template: azd's parameters file and the example for the az route name
only parameters main.bicep has and give every required one; azure.yaml deploys to the app the template tags; the
publish keeps every file the app runs."""
from __future__ import annotations

import json
import re

import pytest

import iac_checks

SECRETS = {"auth0ManagementClientId", "auth0ManagementClientSecret"}


@pytest.mark.parametrize("file", ["main.parameters.json", "parameters.example.json"])
def test_parameter_files_match_main(main_template, file):
    values = json.loads((iac_checks.INFRA / file).read_text(encoding="utf-8"))["parameters"]
    params = main_template.params
    assert not values.keys() - params.keys(), f"{file} sets parameters main.bicep does not have"
    required = {name for name, p in params.items() if p.get("default") is None}
    assert required <= values.keys(), f"{file} lacks required parameters {sorted(required - values.keys())}"
    if file == "parameters.example.json":
        assert not SECRETS & values.keys(), "secrets never go in a parameters file (infra/deploy.sh reads them)"


def test_secret_parameters_are_secure(main_template):
    for name in SECRETS:
        decorators = {d["type"] for d in main_template.params[name]["decorators"]}
        assert "secure" in decorators, name


def test_azure_yaml_deploys_main_bicep_to_the_tagged_app(templates):
    text = (iac_checks.ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert re.search(r"^\s+path: infra$", text, re.M) and re.search(r"^\s+module: main$", text, re.M)
    service = re.search(r"^services:\n\s+(\S+):\n(?:\s+.*\n)*?\s+host: function$", text, re.M)
    assert service, "azure.yaml has no function service"
    app = iac_checks.named(templates, "functionapp.bicep").resource("app")
    assert f"'azd-service-name': '{service.group(1)}'" in (iac_checks.INFRA / "modules" / "functionapp.bicep") \
        .read_text(encoding="utf-8")
    assert app["type"] == "Microsoft.Web/sites"


def test_publish_keeps_what_the_app_runs():
    ignored = {line.strip().rstrip("/") for line in (iac_checks.ROOT / ".funcignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    deploy = (iac_checks.INFRA / "deploy.sh").read_text(encoding="utf-8")
    for needed in ("function_app.py", "host.json", "requirements.txt", "functions", "shared", "config"):
        assert needed not in ignored, f".funcignore drops {needed}, which Azure runs"
        assert f'"{needed}"' in deploy, f"infra/deploy.sh does not package {needed}"
