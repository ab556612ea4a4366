"""Parse .bicep files with pycep-parser and print {path: parsed template} as JSON on stdout.

Run by the infra tests with .venv-iac's Python (pycep-parser and checkov live there, not in the app's .venv):
``.venv-iac/bin/python tests/infra/bicep_to_json.py FILE...``. A file that does not parse maps to
``{"error": "<message>"}``, so one bad file does not hide the others.
"""
from __future__ import annotations

import json
import sys


def main(paths: list[str]) -> int:
    from pycep import BicepParser

    parser = BicepParser()
    out: dict[str, object] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                out[path] = parser.parse(text=f.read())
        except Exception as exc:  # noqa: BLE001 - any parse failure is reported per file
            out[path] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(out, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
