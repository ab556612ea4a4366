"""``python -m shared.settings [--check]``: the settings reference, or a check of the current ones.

Without arguments prints every setting (name, default, what it is); ``--check`` loads them from the environment
and local.settings.json as the app would and lists every problem (exit 1) or says they are valid (exit 0).
"""
from __future__ import annotations

import argparse
import sys

from . import AppSettings, SettingsError, describe_settings, tool_values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.settings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="validate the settings the app would read here")
    parser.add_argument("--settings", metavar="PATH", help="local.settings.json to read (default: the repository's)")
    args = parser.parse_args(argv)
    if args.check:
        try:
            AppSettings.load(tool_values(args.settings))
        except (SettingsError, ValueError) as exc:
            print(exc, file=sys.stderr)
            return 1
        print("settings are valid")
        return 0
    for s in describe_settings():
        flags = ", ".join(f for f in ("required" if s.required else f"default {s.default!r}" if s.default else "",
                                      s.scope if s.scope != "app" else "", "secret" if s.secret else "") if f)
        print(f"{s.name}  ({flags})\n    {s.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
