"""Output for people (aligned tables, truncated cells, a progress line) and for scripts (JSON Lines), and the
redaction every displayed property and body goes through."""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TextIO

REDACTED = "***redacted***"
#: a property or JSON field whose name looks like one of these holds a secret and is never displayed
SENSITIVE_NAME = re.compile(r"secret|passw|pwd|key|token|credential|signature|connection_?string", re.IGNORECASE)
ELLIPSIS = "…"


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with every field whose name looks sensitive replaced by ``***redacted***``."""
    if isinstance(value, dict):
        return {k: REDACTED if SENSITIVE_NAME.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redact_body_text(text: str) -> tuple[str, bool]:
    """(pretty-printed, is_json): a JSON body redacted and indented; anything else as it is."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text, False
    return json.dumps(redact(doc), indent=2, ensure_ascii=False), True


def clip(text: str | None, width: int | None) -> str:
    text = "" if text is None else " ".join(str(text).split())  # one line per row, whatever the value holds
    if width is None or len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Any], Any]
    width: int | None = None      # longest cell shown without --wide; None: never truncated
    align_right: bool = False


def render_table(rows: Sequence[Any], columns: Sequence[Column], *, wide: bool = False) -> str:
    cells = [[clip(None if (v := c.value(row)) is None else str(v), None if wide else c.width) for c in columns]
             for row in rows]
    widths = [max([len(c.header)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if c.align_right else v.ljust(w) for v, w, c in zip(values, widths, columns)]
        return "  ".join(parts).rstrip()

    return "\n".join([line([c.header for c in columns])] + [line(r) for r in cells])


def write_json_line(obj: Any, out: TextIO = sys.stdout) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, sort_keys=False) + "\n")
    out.flush()


class Progress:
    """``replay: 37/50`` on stderr. On a terminal one line rewritten in place (cleared before each result line the
    command prints, then drawn again); on a pipe or file a line every 10 messages and at the end. Only for runs of
    10 messages or more: short runs need no progress."""

    def __init__(self, verb: str, total: int, stream: TextIO = sys.stderr, every: int = 10):
        self.verb, self.total, self.stream, self.every = verb, total, stream, every
        self.done = 0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.enabled = total >= every
        self._visible = False

    def clear(self) -> None:
        """Before other output to the same terminal."""
        if self._visible:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._visible = False

    def step(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.tty:
            self.stream.write(f"\r\033[K{self.verb} {self.done}/{self.total}")
            self.stream.flush()
            self._visible = True
        elif self.done % self.every == 0 or self.done == self.total:
            self.stream.write(f"{self.verb} {self.done}/{self.total}\n")
            self.stream.flush()

    def close(self) -> None:
        if self._visible:
            self.stream.write("\n")  # leave the last count on screen
            self.stream.flush()
            self._visible = False
