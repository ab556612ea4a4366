"""Read app settings the way the Functions host does: the environment first, then local.settings.json Values."""
from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_settings(path: str | os.PathLike | None = None) -> dict[str, str]:
    path = Path(path) if path else ROOT / "local.settings.json"
    values: dict[str, str] = {}
    if path.exists():
        values.update({k: str(v) for k, v in json.loads(path.read_text()).get("Values", {}).items()})
    for key in list(values):
        if key in os.environ:
            values[key] = os.environ[key]
    return values
