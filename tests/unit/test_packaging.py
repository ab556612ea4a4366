"""What deploys: requirements.txt holds the app's own imports, and .funcignore keeps local tooling out."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = {"function_app.py", "host.json", "requirements.txt", "functions", "shared", "config"}
#: import name -> distribution name, for the packages whose two names differ
DISTRIBUTIONS = {"auth0": "auth0-python", "azure.functions": "azure-functions", "azure.identity": "azure-identity",
                 "azure.keyvault": "azure-keyvault-secrets", "azure.mgmt.apimanagement": "azure-mgmt-apimanagement",
                 "azure.data.tables": "azure-data-tables", "azure.servicebus": "azure-servicebus",
                 "azure.core": "azure-core", "httpx": "httpx", "pydantic": "pydantic",
                 "azurefunctions.extensions.bindings.servicebus": "azurefunctions-extensions-bindings-servicebus"}
#: installed with a listed distribution (azure-core comes with every Azure SDK)
TRANSITIVE = {"azure-core"}


def requirement_names() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name = re.split(r"[=<>~!; ]", line, maxsplit=1)[0].lower()
            out[name] = line
    return out


def deployed_imports() -> set[str]:
    found = set()
    files = [ROOT / "function_app.py", *(ROOT / "functions").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def test_every_third_party_import_of_the_deployed_code_is_a_requirement():
    requirements = requirement_names()
    stdlib = set(sys.stdlib_module_names)
    for module in sorted(deployed_imports()):
        top = module.split(".")[0]
        if top in stdlib or top in ("shared", "functions", "function_app"):
            continue
        dist = next((d for prefix, d in DISTRIBUTIONS.items() if module == prefix or module.startswith(prefix + ".")),
                    None)
        assert dist is not None, f"{module}: a package the deployment does not list"
        assert dist in requirements or dist in TRANSITIVE, f"{module}: {dist} is not in requirements.txt"


def test_nothing_in_requirements_is_pinned_for_local_tooling():
    # The Service Bus stand-in needs one exact azure-servicebus (it reuses private modules); the app does not.
    assert "==" not in requirement_names()["azure-servicebus"]
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert re.search(r"^azure-servicebus==", dev, re.MULTILINE)


def test_funcignore_keeps_every_local_tool_out_of_the_package():
    from fnmatch import fnmatch

    patterns = [line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(name: str) -> bool:
        return any(fnmatch(name, pattern) for pattern in patterns)

    for entry in ROOT.iterdir():
        if entry.name in DEPLOYED or entry.name == "__pycache__" or entry.name in (".git", ".gitignore", ".funcignore"):
            continue
        assert ignored(entry.name), f"{entry.name} would be deployed"
    assert not [name for name in DEPLOYED if ignored(name)]
    assert ignored("local.settings.json") and ignored(".venv")
