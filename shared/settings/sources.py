"""Where settings come from. The only module of the app that reads the process environment.

In Azure the Functions host hands the worker its app settings as environment variables. Locally, Core Tools
(``func start``) and the local host copy ``local.settings.json`` ``Values`` into the environment, skipping any name
that already has a non-empty value, so the environment wins. The ops tool and the developer tools read the same two
places with the same rule (:func:`tool_values`), so they see what the app sees.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

#: the folder that holds function_app.py: relative paths in the settings are relative to it
APP_ROOT = Path(__file__).resolve().parents[2]
LOCAL_SETTINGS_FILE = APP_ROOT / "local.settings.json"


class LocalSettingsError(ValueError):
    """local.settings.json cannot be used as it is."""


def process_environment() -> dict[str, str]:
    """A copy of the environment the Functions host gave this process."""
    return dict(os.environ)


def _as_setting(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def read_local_settings(path: str | os.PathLike) -> dict[str, str]:
    """``Values`` of a local.settings.json, as strings (Core Tools stringifies them the same way)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise LocalSettingsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise LocalSettingsError(f"{path}: must hold a JSON object with a Values object")
    if data.get("IsEncrypted"):
        raise LocalSettingsError(f"{path}: IsEncrypted is true; decrypt it with 'func settings decrypt' first")
    values = data.get("Values") or {}
    if not isinstance(values, dict):
        raise LocalSettingsError(f"{path}: Values must be a JSON object")
    return {str(k): _as_setting(v) for k, v in values.items()}


def overlay(file_values: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """Core Tools' rule: a variable already set to a non-empty value wins over the file's."""
    merged = dict(file_values)
    merged.update({k: v for k, v in environ.items() if v})
    return merged


def tool_values(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the app would see when started from ``path`` (default: the repository's local.settings.json) in this
    environment. A missing file is no error: the environment alone is used, as in Azure."""
    file = Path(path) if path else LOCAL_SETTINGS_FILE
    file_values = read_local_settings(file) if file.is_file() else {}
    return overlay(file_values, process_environment() if environ is None else environ)
