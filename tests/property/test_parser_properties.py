"""The parser's contract is total: whatever the body, parse_event returns an event whose every string is valid
UTF-8, or raises InvalidEvent naming a printable, bounded field; peek_identity returns ledger-safe values or None.
Nothing else escapes: not RecursionError, OverflowError, ValueError, AttributeError nor UnicodeError."""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path

from hypothesis import given, strategies as st

from shared.domain.errors import InvalidEvent
from shared.domain.events import CUSTOMER_ID, MAX_PATH_CHARS, CustomerEvent, parse_event, peek_identity

from strategies import any_text, dumps, json_values, odd_bodies, time_texts

NOW = dt.datetime(2026, 11, 26, 19, 0, tzinfo=dt.timezone.utc)  # after every sample's time
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "schemas" / "samples"
VALID_SAMPLES = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(SAMPLES_DIR.glob("customer-*.json"))
                 if not p.name.startswith("invalid-")]


def check_total(body) -> CustomerEvent | None:
    """Parse; the only exception allowed is InvalidEvent, and whatever comes out is writable UTF-8."""
    try:
        event = parse_event(body, now=NOW)
    except InvalidEvent as exc:
        assert exc.field and exc.field.isprintable() and len(exc.field) <= MAX_PATH_CHARS, exc.field
        assert exc.rule.isprintable(), exc.rule
        str(exc).encode("utf-8")  # strict
        event = None
    else:
        for f in dataclasses.fields(event):
            value = getattr(event, f.name)
            for text in (value if isinstance(value, tuple) else (value,)):
                if isinstance(text, str):
                    text.encode("utf-8")  # strict: no lone surrogate left the parser
        assert event.time.tzinfo is not None
        event.time_iso  # noqa: B018 - must not raise either
    check_peek(body)
    return event


def check_peek(body) -> None:
    customer_id, event_id, event_type = peek_identity(body)
    if customer_id is not None:
        assert CUSTOMER_ID.fullmatch(customer_id)
    for value, limit in ((customer_id, 64), (event_id, 128), (event_type, 200)):
        if value is not None:
            assert 0 < len(value) <= limit and value.isprintable()
            value.encode("utf-8")


def test_the_samples_are_valid():
    assert VALID_SAMPLES and all(check_total(json.dumps(s)) is not None for s in VALID_SAMPLES)


@given(st.binary(max_size=4096))
def test_any_bytes(body):
    check_total(body)


@given(odd_bodies)
def test_odd_bodies(body):
    check_total(body)


@given(any_text)
def test_any_str_body(body):
    check_total(body)


@given(json_values)
def test_any_json_document(value):
    check_total(dumps(value))


CONTEXT_KEYS = ["specversion", "id", "source", "type", "time", "datacontenttype", "data", "data_base64", "ext"]


@given(st.dictionaries(st.one_of(st.sampled_from(CONTEXT_KEYS), any_text), json_values, max_size=6))
def test_any_json_object(value):
    check_total(dumps(value))


# ---- mutations of the valid samples --------------------------------------------------------------------------------
def _paths(value, prefix=()):
    """Every path to a member or element of the document (a tuple of keys and indexes)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _parent(doc, path):
    for step in path[:-1]:
        doc = doc[step]
    return doc


replacements = st.one_of(json_values, any_text, time_texts,
                         st.integers(0, 40).map(lambda n: json.loads("[" * n + "]" * n) if n else []),
                         st.integers(300, 5000).map(lambda n: int("7" * n) if n < 4300 else float("inf")))


@st.composite
def mutated_samples(draw):
    doc = copy.deepcopy(draw(st.sampled_from(VALID_SAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _parent(doc, path), path[-1]
        action = draw(st.sampled_from(["replace", "delete", "add", "append-text"]))
        if action == "replace":
            parent[last] = draw(replacements)
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(any_text)] = draw(replacements)
        elif action == "append-text" and isinstance(parent[last], str):
            parent[last] = parent[last] + draw(any_text)
    return doc


@given(mutated_samples())
def test_mutated_samples(doc):
    try:
        body = dumps(doc)
    except (ValueError, OverflowError):  # an integer too long for json.dumps itself: nothing a sender could send
        return
    check_total(body)


@given(mutated_samples(), st.sampled_from(["strict", "surrogatepass"]))
def test_mutated_samples_written_raw(doc, errors):
    """Written with ensure_ascii=False: lone surrogates as raw code points, which no UTF-8 body can carry."""
    try:
        text = json.dumps(doc, ensure_ascii=False)
    except (ValueError, OverflowError):
        return
    try:
        body = text.encode("utf-8", errors)
    except UnicodeEncodeError:
        body = text  # the str itself: parse_event takes str too
    check_total(body)
