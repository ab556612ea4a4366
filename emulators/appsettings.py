"""A deleted ``local.settings.json`` comes back without restarting the stack.

``python -m emulators serve`` writes the settings file the app reads (``local.settings.json``) and the same values
to ``<folder>/env`` (mode 600, for a shell to source). ``make up`` on a running stack, and ``make run`` / ``make
host`` before they start the app, write ``local.settings.json`` again from the running stack's env file when it is
missing (an existing file, edited or not, is left as it is). :func:`missing_settings_hint` is the sentence the tools
add when they find no settings: what runs, and the command that repairs it.
"""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path


def read_env_file(path: Path) -> dict[str, str]:
    """The values of an env file written by :func:`emulators.stack.write_env_file` (``export NAME=quoted``)."""
    values = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            values[name] = value
    return values


def running_stack(folder: Path) -> dict | None:
    """stack.json of the stack running from ``folder``, or None (none, or its process has gone)."""
    from .runlock import pid_alive
    try:
        info = json.loads((folder / "stack.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return info if pid_alive(info.get("pid") or 0, expect="emulators") else None


def restore_settings(folder: Path, path: str | os.PathLike) -> str | None:
    """Write ``path`` again from the running stack's copy when it is missing. Returns what was done, in a sentence
    (None: the file exists, nothing to do); raises FileNotFoundError with the fix when it cannot be done."""
    path = Path(path)
    if path.exists():
        return None
    if running_stack(folder) is None:
        raise FileNotFoundError(f"{path} is missing and no local stack is running from {folder}: "
                                "`make up` (or `make run`) starts it and writes the file")
    from .stack import write_local_settings
    try:
        values = read_env_file(folder / "env")
    except (OSError, ValueError):
        values = {}
    if not values:
        raise FileNotFoundError(f"{path} is missing and the running stack's {folder / 'env'} cannot be read: "
                                "`make down && make up` writes both again, with the state kept")
    write_local_settings(values, path)
    return f"{path} was missing: written again from the running local stack's settings ({folder / 'env'})"


def missing_settings_hint(path: str | os.PathLike | None = None, folder: str | os.PathLike | None = None) -> str:
    """Why the tools found no settings, and what to run; "" away from the local stack (no stack was ever started
    from this checkout, as in production), where the caller's own advice stands alone."""
    from .stack import ROOT
    path = Path(path) if path else ROOT / "local.settings.json"
    folder = Path(folder) if folder else ROOT / ".localstack"
    if path.exists() or not folder.is_dir():
        return ""
    info = running_stack(folder)
    if info is None:
        return (f"{path} is missing and the local stack is not running: `make up` (or `make run`) starts it and "
                "writes the file")
    return (f"the local stack is running (pid {info['pid']}) but {path} is missing: `make up` writes it again "
            "(nothing restarts, the stack's state stays)")


def tool_advice(path: str | os.PathLike | None = None) -> str:
    """The advice of devtools when it finds no usable settings."""
    return missing_settings_hint(path) or ("start the local stack (`make up` or `make run`), or set "
                                           "ServiceBusConnection")
