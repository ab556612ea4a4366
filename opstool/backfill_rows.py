"""The backfill's file: its rows read (CSV or JSON Lines, each with its line number) and validated with the app's
own event parser and the client profiles' rules, before anything is sent (``backfill.py`` plans and sends)."""
from __future__ import annotations

import csv
import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.domain.errors import InvalidEvent
from shared.domain.events import CREATED, MAX_NESTING, nesting_depth
from shared.domain.redirect_uris import local_refusal
from shared.settings import APP_ROOT

from .errors import UsageError
from .sending import checked, cloud_event

SOURCE = "/opstool/backfill"
COLUMNS = ("customerId", "displayName", "profile", "plan", "contactEmail", "redirectUris", "existingClientId")
REQUIRED_COLUMNS = ("customerId", "displayName", "profile")

#: the plan of a row
SEND, SENT_BEFORE, EXISTS, WAS_REMOVED, INVALID = "send", "sent-before", "exists", "removed", "invalid"
MISMATCH = "profile-mismatch"  # in the ledger with another profile: a finding, not "already there"


@dataclass
class Row:
    line: int
    data: dict
    event_id: str = ""
    problem: str | None = None
    plan: str = ""
    note: str = ""
    # from the ledger, after sending
    outcome: str | None = None
    reason: str | None = None
    status: str | None = None
    record: Any = None

    @property
    def customer_id(self) -> str:
        value = self.data.get("customerId")
        return value if isinstance(value, str) else ""


# ---- reading and validating --------------------------------------------------------------------------------------
def read_rows(path: Path, fmt: str | None) -> list[Row]:
    """Every row of the file with its line number. Lines end at a line feed only (so a U+2028 or a form feed inside
    a value stays in its row), and each line is decoded on its own: one that is not UTF-8 is an invalid row, not the
    end of the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    lines = _lines(raw.removeprefix(b"\xef\xbb\xbf"))
    first = next((text for text, _ in lines if text is not None and text.strip()), "")
    fmt = fmt or _format_of(path, first)
    return _csv_rows(lines) if fmt == "csv" else _jsonl_rows(lines)


def _lines(raw: bytes) -> list[tuple[str | None, str | None]]:
    """(text, None) per line, or (None, why it is not text)."""
    parts = raw.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()  # the final line's end
    out: list[tuple[str | None, str | None]] = []
    for part in parts:
        try:
            out.append((part.decode("utf-8"), None))
        except UnicodeDecodeError as exc:
            out.append((None, f"$: the line is not valid UTF-8 (byte {exc.start + 1} of the line)"))
    return out


def _format_of(path: Path, first_line: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


def _csv_rows(lines: list[tuple[str | None, str | None]]) -> list[Row]:
    undecodable = {n: why for n, (text, why) in enumerate(lines, 1) if text is None}
    reader = csv.reader([(text or "") + "\n" for text, _ in lines])
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise UsageError("the file is empty: a CSV file needs a header line") from None
    if 1 in undecodable:
        raise UsageError("line 1: the header is not valid UTF-8")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise UsageError(f"line 1: unknown column(s) {', '.join(map(repr, unknown))}; the columns are "
                         f"{', '.join(COLUMNS)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise UsageError(f"line 1: the header lacks the column(s) {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise UsageError("line 1: a column appears twice in the header")
    rows = [Row(n, {}, problem=why) for n, why in undecodable.items()]
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows.append(Row(line, {}, problem=f"$: not a valid CSV line ({exc})"))
            continue
        if line in undecodable or not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            rows.append(Row(line, {}, problem=f"$: {len(cells)} cells where the header has {len(header)}"))
            continue
        data: dict[str, Any] = {}
        for name, cell in zip(header, cells):
            if cell == "":
                continue  # an empty cell is an absent field
            data[name] = cell.split() if name == "redirectUris" else cell
        rows.append(Row(line, data))
    return sorted(rows, key=lambda r: r.line)


def _jsonl_rows(lines: list[tuple[str | None, str | None]]) -> list[Row]:
    rows = []
    for number, (raw, why) in enumerate(lines, 1):
        if raw is None:
            rows.append(Row(number, {}, problem=why))
            continue
        if not raw.strip():
            continue
        data, problem = _json_row(raw)
        rows.append(Row(number, {}, problem=problem) if problem else Row(number, data))
    return rows


def _json_row(raw: str) -> tuple[Any, str | None]:
    """The row's object, or what is wrong with it, under the app's own limits (the nesting is counted before
    ``json.loads``, whose recursion a row of nested brackets would exhaust)."""
    depth = nesting_depth(raw)
    if depth > MAX_NESTING:
        return None, f"$: arrays and objects nest {depth} deep; the limit is {MAX_NESTING}"
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, and a number too long to convert
        return None, f"$: not valid JSON ({exc})"
    except RecursionError:
        return None, "$: not valid JSON (nested too deeply)"
    if not isinstance(data, dict):
        return None, "$: must be a JSON object with the created event's data fields"
    return data, None


def event_id_of(batch: str, data: dict) -> str:
    """Derived from the batch (the file's name), the customer and the row, so the same row of the same file always
    gets the same id, and a row corrected after a refusal gets a new one."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(f"{batch}\n{data.get('customerId')}\n{canonical}".encode("utf-8", "surrogatepass"))
    return f"backfill-{digest.hexdigest()[:40]}"


@dataclass(frozen=True)
class ProfileRules:
    names: frozenset[str] | None  # None: the profiles file could not be read; the app checks the name then
    redirect_required: frozenset[str] = frozenset()
    #: third-party profiles that refuse callbacks on the user's own machine or network (redirect_uris.py)
    local_redirects_refused: frozenset[str] = frozenset()


def profile_rules(values: dict) -> tuple[ProfileRules, str | None]:
    path = Path(values.get("CLIENT_PROFILES_PATH") or "config/client_profiles.toml")
    path = path if path.is_absolute() else APP_ROOT / path
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8")).get("profiles") or {}
    except (OSError, ValueError) as exc:
        return ProfileRules(None), f"the client profiles file {path} cannot be read ({exc}): profile names are not " \
                                   "checked before sending"
    tables = {n: p for n, p in profiles.items() if isinstance(p, dict)}
    required = frozenset(n for n, p in tables.items() if p.get("redirect_uris") == "required")
    local_refused = frozenset(n for n, p in tables.items()
                              if p.get("first_party") is False and p.get("allow_local_redirect_uris") is not True)
    return ProfileRules(frozenset(profiles), required, local_refused), None


def validate(rows: list[Row], batch: str, prefix: str, rules: ProfileRules) -> None:
    """Set each row's event id, or its problem: the field and the rule, as the app would word it."""
    first_line: dict[str, int] = {}
    for row in rows:
        if row.problem:
            row.plan = INVALID
            continue
        row.event_id = event_id_of(batch, row.data)
        try:
            checked(cloud_event(row.event_id, CREATED, SOURCE, row.data, prefix=prefix), prefix=prefix,
                    known_profiles=rules.names)
            if row.data.get("profile") in rules.redirect_required and not row.data.get("redirectUris"):
                raise InvalidEvent("data.redirectUris", f"is required by profile {row.data['profile']!r}")
            local = row.data.get("profile") in rules.local_redirects_refused and local_refusal(
                row.data.get("redirectUris") or (), first_party=False, allow_local=False)
            if local:
                raise InvalidEvent(f"data.redirectUris[{local[0]}]", f"{local[1]} (profile {row.data['profile']!r})")
        except InvalidEvent as exc:
            row.problem, row.plan = exc.message, INVALID
            continue
        earlier = first_line.setdefault(row.customer_id, row.line)
        if earlier != row.line:
            row.problem, row.plan = f"data.customerId: appears again in this file (first at line {earlier})", INVALID
