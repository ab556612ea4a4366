"""Output for people (aligned tables, truncated cells, a progress line) and for scripts (JSON Lines), and the
redaction every displayed property and body goes through.

Everything a dead-lettered message holds came from a sender the app did not trust: ids, subjects, properties and
bodies may carry ESC and OSC sequences (which retitle, recolour or rewrite a terminal), bidirectional overrides,
lone surrogates, megabytes on one line. :func:`safe_text` turns any value into one printable line, escaping the
rest visibly (``\\x1b``, ``\\u202e``, ``\\ud800``); :func:`emit` writes every line for people through it, and
:func:`write_json_line` writes pure-ASCII JSON. No other path reaches the terminal.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TextIO

from .safe_json import dumps_line, load_json

REDACTED = "***redacted***"
#: a property or JSON field whose name looks like one of these holds a secret and is never displayed
SENSITIVE_NAME = re.compile(r"secret|passw|pwd|key|token|credential|signature|connection_?string", re.IGNORECASE)
ELLIPSIS = "…"
#: the longest value shown in one place (a cell with --wide, a property, a line of a body); --json has them in full
MAX_TEXT = 2000
#: the final guard: no line printed is longer
MAX_LINE = 20000
#: how much of a body that is not shown as JSON is previewed
PREVIEW_CHARS = 2000
PREVIEW_LINES = 40


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_text(value: Any, limit: int | None = MAX_TEXT) -> str:
    """``value`` as one printable line: every character that is not printable (controls such as ESC, NEL and CSI,
    format characters such as bidirectional overrides, lone surrogates, line and paragraph separators, private use
    and unassigned code points, any space but the plain one, newlines and tabs too) is escaped visibly, Python
    style (``\\x1b``, ``\\u202e``, ``\\ud800``); at most ``limit`` characters, cut with an ellipsis."""
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except Exception:  # noqa: BLE001 - a value that cannot even say what it is
            text = f"<{type(value).__name__}>"
    if limit is not None and len(text) > limit:
        text = text[:limit]  # escaping grows the text: cut the raw text first, then the escaped one
        cut = True
    else:
        cut = False
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else _escape(ch) for ch in text)
    if limit is not None and (cut or len(text) > limit):
        text = text[: max(0, limit - 1)] + ELLIPSIS
    return text


def safe_lines(text: str, limit: int | None = MAX_LINE) -> list[str]:
    """A block of lines (the tool's own line breaks), each made safe by :func:`safe_text`."""
    return [safe_text(line, limit) for line in str(text).split("\n")]


def emit(stream: TextIO, text: Any = "", *, flush: bool = False) -> None:
    """Print a block of lines for people: every line goes through :func:`safe_text`."""
    stream.write("\n".join(safe_lines(text)) + "\n")
    if flush:
        stream.flush()


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with every field whose name looks sensitive replaced by ``***redacted***``."""
    if isinstance(value, dict):
        return {k: REDACTED if SENSITIVE_NAME.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redact_body_text(text: str) -> tuple[str, bool]:
    """(pretty-printed, is_json): a JSON body redacted and indented; anything else as it is."""
    doc, problem = load_json(text)
    if problem is not None:
        return text, False
    return json.dumps(redact(doc), indent=2, ensure_ascii=False), True


def body_block(body: bytes | None, text: str, encoding: str, content_type: str | None) -> list[str]:
    """The body as ``show`` prints it: a heading with its size, then the body redacted and pretty-printed when it is
    JSON; otherwise what is wrong with it and a preview of its start (bytes that are not UTF-8 as ``\\xff``)."""
    size = f"{len(body)} bytes" if body is not None else "an AMQP value body"
    kind = content_type or "no content type"
    if body is not None and not body:
        return [safe_text(f"Body ({kind}, 0 bytes)"), "  (empty)"]
    doc, problem = load_json(body if body is not None else text)
    if problem is None:
        pretty = json.dumps(redact(doc), indent=2, ensure_ascii=False)
        return [safe_text(f"Body ({kind}, {size})")] + ["  " + line for line in safe_lines(pretty, MAX_TEXT)]
    if body is not None and encoding != "utf-8":
        preview = body[:PREVIEW_CHARS].decode("utf-8", "backslashreplace")
        shown = min(len(body), PREVIEW_CHARS)
        what = f"{problem}; the first {shown} bytes, undecodable ones as \\xNN"
    else:
        preview = text[:PREVIEW_CHARS]
        shown = len(preview)
        what = f"{problem}; the first {shown} of {len(text)} characters"
    lines = preview.splitlines() or [preview]
    block = [safe_text(f"Body ({kind}, {size}): {what}")]
    block += ["  " + safe_text(line, 200) for line in lines[:PREVIEW_LINES]]
    if len(lines) > PREVIEW_LINES or shown < (len(body) if body is not None else len(text)):
        block.append("  " + ELLIPSIS + " (the rest: show --json, or export)")
    return block


def clip(text: str | None, width: int | None) -> str:
    text = "" if text is None else " ".join(str(text).split())  # one line per row, whatever the value holds
    text = safe_text(text, MAX_TEXT if width is None else width + 1)
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
    """One JSON object on one line, pure ASCII: valid JSON whatever the values hold, and nothing a terminal acts on."""
    out.write(dumps_line(obj) + "\n")
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
