"""Reading an event's body as JSON without ever failing in an unexpected way: size, UTF-8, nesting (checked before
``json.loads``, whose recursion a body of nested brackets would exhaust), numbers no store can hold, lone surrogates.
Every problem is an :class:`InvalidEvent` naming the JSON path and the rule (``shared/domain/events.py`` parses the
event from the document)."""
from __future__ import annotations

import json
import math
import re

from .errors import InvalidEvent

MAX_EVENT_BYTES = 64 * 1024
#: how deeply arrays and objects may nest; an event needs 3 (event, data, redirectUris). Checked before json.loads,
#: whose recursion a body of nested brackets would otherwise exhaust.
MAX_NESTING = 32
#: the longest number literal accepted (Python refuses to convert integers over 4,300 digits; no field needs one)
MAX_NUMBER_CHARS = 1000
#: how long a field path in a rejection may be, and how much of one odd key it shows
MAX_PATH_CHARS = 160
MAX_KEY_CHARS = 40

SIMPLE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A JSON string (possibly unterminated), or one bracket: what the nesting pre-scan looks at.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def fail(path: str, rule: str):
    if len(path) > MAX_PATH_CHARS:
        path = path[: MAX_PATH_CHARS - 1] + "\u2026"
    raise InvalidEvent(path, rule)


def key_path(parent: str, key: str) -> str:
    """The JSON path of ``parent``'s member ``key``: ``data.customerId``; a key that is not plain letters, digits,
    ``_`` and ``-`` is shown quoted and escaped (``data['\\x1b[31m']``), at most MAX_KEY_CHARS of it, so a
    rejection reason never carries a control character, a lone surrogate or a megabyte of key."""
    if SIMPLE_KEY.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    shown = repr(key[:MAX_KEY_CHARS]) + ("\u2026" if len(key) > MAX_KEY_CHARS else "")
    return f"{parent or '$'}[{shown}]"


class _BadNumber:
    """What the number hooks return instead of a number that must not be converted; found by :func:`_check_tree`,
    which names the field it is in."""

    def __init__(self, literal: str, rule: str):
        self.literal, self.rule = literal, rule


def _number(convert):
    def hook(literal: str):
        if len(literal) > MAX_NUMBER_CHARS:
            return _BadNumber(literal, f"is a number of {len(literal)} characters; the limit is {MAX_NUMBER_CHARS}")
        value = convert(literal)
        if value in (math.inf, -math.inf):
            return _BadNumber(literal, "is a number too large for a 64-bit float")
        return value
    return hook


def _constant(literal: str):
    return _BadNumber(literal, f"is {literal}, which JSON does not allow")


class _DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, object]]) -> dict:
    """An object whose keys are unique: with a key twice, JSON readers disagree on which value counts (Python's
    keeps the last, others the first), so a checker upstream could pass what this app then applies differently."""
    found: dict = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _check_tree(doc) -> None:
    """Every key and string in the document is valid Unicode (no lone surrogate: JSON's ``\\ud800`` escapes decode
    to one, and it cannot be written as UTF-8 to a log, the ledger or Auth0), and every number could be read."""
    stack = [("", doc)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                child = key_path(path, key)
                if has_surrogate(key):
                    fail(child, "the name is not valid Unicode (it holds a lone surrogate)")
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((f"{path or '$'}[{i}]", item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, str):
            if has_surrogate(value):
                fail(path or "$", "is not valid Unicode (it holds a lone surrogate)")
        elif isinstance(value, _BadNumber):
            fail(path or "$", value.rule)


def has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def load_body(body, *, check_tree: bool = True) -> object:
    """The JSON document in ``body``, or InvalidEvent at ``$``: size, UTF-8, nesting, syntax, then every string and
    number (see :func:`_check_tree`). Never anything else: this is what makes ``parse_event`` total."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    elif not isinstance(body, bytes):
        fail("$", f"body must be bytes, not {type(body).__name__}")
    if len(body) > MAX_EVENT_BYTES:
        fail("$", f"event is {len(body)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail("$", f"body is not valid UTF-8 (byte {exc.start})")
    if "\ufffd" in text:
        # The Functions host hands the function a string: bytes that were not UTF-8 arrive as U+FFFD, so this is
        # where a non-UTF-8 body shows, not as a decode error.
        fail("$", f"body holds U+FFFD at character {text.index(chr(0xFFFD))}, the mark of bytes that were not "
                  "UTF-8 (the Functions host replaces each invalid sequence with it); send the body as UTF-8")
    depth = nesting_depth(text)
    if depth > MAX_NESTING:
        fail("$", f"arrays and objects nest {depth} deep; the limit is {MAX_NESTING}")
    try:
        doc = json.loads(text, parse_int=_number(int), parse_float=_number(float), parse_constant=_constant,
                         object_pairs_hook=_object)
    except _DuplicateKey as exc:
        fail("$", f"the key {key_path('', str(exc.args[0]))} appears twice in one object; JSON readers disagree "
                  "on which value counts")
    except json.JSONDecodeError as exc:
        fail("$", f"body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
    except (ValueError, RecursionError) as exc:  # the pre-scan should make these impossible; never let one out
        fail("$", f"body is not valid JSON ({type(exc).__name__})")
    if check_tree:
        _check_tree(doc)
    return doc
