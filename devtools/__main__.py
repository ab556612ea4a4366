"""``python -m devtools send ...``, ``python -m devtools listen ...`` and ``python -m devtools call ...``: the same as
``python -m devtools.send``, ``.listen`` and ``.call`` (sending events as the CRM would, printing the result events
it receives, and calling the API through the gateway as the customer would)."""
from __future__ import annotations

import sys

COMMANDS = ("send", "listen", "call")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m devtools {{{','.join(COMMANDS)}}} ...  (--help after the command for its options)",
              file=sys.stderr)
        return 2
    if argv[0] == "send":
        from devtools.send import main as command
    elif argv[0] == "call":
        from devtools.call import main as command
    else:
        from devtools.listen import main as command
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
