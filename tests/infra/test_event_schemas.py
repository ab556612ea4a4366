"""The event contract's JSON Schemas (schemas/) accept their samples and refuse the invalid one, validated by
jsonschema (draft 2020-12), which lives in .venv-iac with checkov: the schemas are what the CRM team programs
against, so they are checked like the templates, offline."""
from __future__ import annotations

import json
import subprocess

import iac_checks

SCRIPT = r"""
import json, pathlib, sys, jsonschema
root = pathlib.Path(sys.argv[1])
out = {}
for schema_name, pattern in (("customer-event", "customer-*.json"), ("customer-event", "invalid-*.json"),
                             ("result-event", "result-*.json")):
    schema = json.loads((root / "schemas" / f"{schema_name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for sample in sorted((root / "schemas" / "samples").glob(pattern)):
        out[sample.name] = [e.message for e in validator.iter_errors(json.loads(sample.read_text()))]
print(json.dumps(out))
"""


def test_the_samples_follow_their_schemas():
    iac_checks.require_iac_venv()
    done = subprocess.run([str(iac_checks.IAC_PYTHON), "-c", SCRIPT, str(iac_checks.ROOT)], capture_output=True,
                          text=True, timeout=120, check=True)
    errors = json.loads(done.stdout)
    results = [n for n in errors if n.startswith("result-")]
    assert len(results) == 6 and "customer-updated.json" in errors  # a sample of every result type
    assert {n: e for n, e in errors.items() if e and not n.startswith("invalid-")} == {}
    assert errors["invalid-missing-profile.json"]  # the schema refuses what the app refuses
