"""The Customer API's template applies the files the local gateway runs: every policy the API definition names is
loaded by infra/modules/apim-api.bicep, the named values it sets are the ones the policies use, and main.bicep
passes it the same Auth0 domain and audience as the app's settings."""
from __future__ import annotations

import json
import re
from pathlib import Path

from iac_checks import INFRA, named

API = json.loads((INFRA / "apim" / "customer-api.json").read_text())


def test_every_policy_file_the_api_names_is_loaded_by_the_template(templates):
    module = named(templates, "apim-api.bicep")
    loaded = module.variables["policies"]["value"]
    files = {k.strip("'"): v["function"]["parameters"]["file_path"] for k, v in loaded.items()}
    named_by_api = {API["policy"]} | {op["policy"] for op in API["operations"]}
    assert named_by_api <= set(files)
    assert all(path == f"../policies/{name}" and (INFRA / "policies" / name).is_file() for name, path in files.items())


def test_the_named_values_set_are_those_the_policies_use(templates):
    module = named(templates, "apim-api.bicep")
    set_by_template = {k.strip("'") for k in module.variables["namedValues"]["value"]}
    used = set()
    for policy in (INFRA / "policies").glob("*.xml"):
        used |= set(re.findall(r"\{\{([A-Za-z0-9._-]+)\}\}", policy.read_text()))
    assert used == set_by_template


def test_main_passes_the_apps_auth0_domain_and_audience(main_template):
    params = main_template.modules["customerApi"]["config"]["params"]
    assert params["auth0Domain"] == "auth0Domain" and params["apiAudience"] == "apiAudience"


def test_the_local_gateway_loads_the_same_definition():
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from emulators.apim_gateway.api import load_api

    values = {"auth0-domain": "t.example", "api-audience": "https://api/", "customer-rate-limit-calls": "1",
              "customer-rate-limit-period": "1"}
    api = load_api(values)
    assert [o.id for o in api.operations] == [o["id"] for o in API["operations"]]
