"""Every .bicep file under infra/ parses (pycep-parser), and every module main.bicep uses is there."""
from __future__ import annotations

import iac_checks


def test_every_bicep_file_parses(templates):
    assert len(templates) >= 8, sorted(p.name for p in templates)
    errors = {p.name: t.tree["error"] for p, t in templates.items() if "error" in t.tree}
    assert not errors
    for path, tpl in templates.items():
        assert tpl.resources or tpl.modules, f"{path.name}: neither resources nor modules"


def test_every_module_exists_and_is_parsed(templates):
    parsed = {p.resolve() for p in templates}
    for path, tpl in templates.items():
        for symbol, module in tpl.modules.items():
            target = (path.parent / module["detail"]["path"]).resolve()
            assert target in parsed, f"{path.name}: module {symbol} points at {target}, which is not parsed"


def test_main_targets_a_resource_group(main_template):
    assert main_template.tree["globals"]["scope"]["value"] == "resourceGroup"


def test_a_file_that_does_not_parse_is_reported(tmp_path):
    infra = iac_checks.copy_infra(tmp_path)
    (infra / "modules" / "broken.bicep").write_text("resource x 'Microsoft.Foo/bars@2020-01-01' = {\n  name: \n",
                                                      encoding="utf-8")
    parsed = iac_checks.parse_bicep(iac_checks.bicep_files(infra))
    assert "error" in parsed[infra / "modules" / "broken.bicep"]
    assert "error" not in parsed[infra / "main.bicep"]
