"""Fixtures of the offline infrastructure checks: infra/ parsed once per session (pycep-parser in .venv-iac)."""
from __future__ import annotations

from pathlib import Path

import pytest

import iac_checks


@pytest.fixture(scope="session")
def templates() -> dict[Path, iac_checks.Template]:
    return iac_checks.load_templates(iac_checks.parse_bicep(iac_checks.bicep_files()))


@pytest.fixture(scope="session")
def main_template(templates) -> iac_checks.Template:
    return templates[iac_checks.INFRA / "main.bicep"]


@pytest.fixture
def mutated(tmp_path):
    """mutated(file, old, new, ...): a copy of infra/ with `old` replaced by `new` in `file` (each must occur),
    parsed; returns (templates, infra copy)."""
    def make(file: str, *replacements: str):
        infra = iac_checks.copy_infra(tmp_path)
        path = infra / file
        text = path.read_text(encoding="utf-8")
        pairs = list(zip(replacements[::2], replacements[1::2]))
        for old, new in pairs:
            assert old in text, f"{file}: the mutation's anchor {old!r} is gone; update the test"
            text = text.replace(old, new, 1)
        path.write_text(text, encoding="utf-8")
        return iac_checks.load_templates(iac_checks.parse_bicep(iac_checks.bicep_files(infra))), infra
    return make
