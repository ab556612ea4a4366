"""``python -m devtools.runbook [--write]``: play the runbook's incident on a private local stack and compare every
generated block of docs/RUNBOOK.md with what the tools print now (exit 1 and a diff per stale block), or, with
--write, write the fresh outputs into the runbook. tests/e2e/test_runbook.py runs the check, so a change that alters
an output fails until the runbook follows. About two minutes (half a minute of it waits for Service Bus locks)."""
from __future__ import annotations

import argparse
import sys

from .blocks import RUNBOOK, differences, write_blocks
from .drills import capture


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.runbook", description=__doc__)
    p.add_argument("--write", action="store_true", help="write the fresh outputs into docs/RUNBOOK.md")
    args = p.parse_args(argv)
    print("playing the runbook's incident on a private local stack (about two minutes) ...", file=sys.stderr,
          flush=True)
    captured = capture()
    text = RUNBOOK.read_text(encoding="utf-8")
    if args.write:
        RUNBOOK.write_text(write_blocks(text, captured), encoding="utf-8")
        print(f"wrote {len(captured)} block(s) into {RUNBOOK}")
        return 0
    problems = differences(text, captured)
    for problem in problems:
        print(problem + "\n", file=sys.stderr)
    print(f"{len(captured) - len(problems)} of {len(captured)} block(s) match" if problems else
          f"every block ({len(captured)}) shows what the tools print")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
