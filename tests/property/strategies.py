"""Hostile inputs, shared by the property tests: the strings, JSON values and bodies a careless or hostile sender
puts on the queue."""
from __future__ import annotations

import datetime as dt
import json

from hypothesis import strategies as st

#: characters that have hurt before: C0 and C1 controls (ESC, BEL, CSI), bidirectional overrides and isolates, line
#: and paragraph separators, a zero-width joiner, lone surrogates, a private-use and a non-BMP character
NASTY_CHARS = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b", "\u202e", "\u2066", "\u200f", "\u2028", "\u2029",
               "\u200d", "\ud800", "\udfff", "\ue000", "\U0001f600", "\\", '"', "\n", "\r", "\t", "<", "[", "{"]
ESCAPE_SEQUENCES = ["\x1b[31m", "\x1b[2J", "\x1b]0;owned\x07", "\x1b]8;;https://evil.example\x1b\\", "\x9b1m"]

nasty_text = st.lists(st.one_of(st.sampled_from(NASTY_CHARS + ESCAPE_SEQUENCES), st.text(max_size=8)),
                      max_size=12).map("".join)
#: any text at all, lone surrogates included (st.characters() leaves category Cs out unless it is named)
ALL_CATEGORIES = ["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Cs", "Co", "Cn"]
any_text = st.one_of(st.text(alphabet=st.one_of(st.characters(categories=ALL_CATEGORIES), st.sampled_from(NASTY_CHARS)),
                             max_size=40), nasty_text)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                         any_text)
json_values = st.recursive(json_scalars,
                           lambda children: st.one_of(st.lists(children, max_size=5),
                                                      st.dictionaries(any_text, children, max_size=5)),
                           max_leaves=30)

offsets = st.builds(dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59),
                                               max_value=dt.timedelta(hours=23, minutes=59)))
#: any aware time, year 1 to 9999, with any offset: the edges of the calendar included
times = st.datetimes(timezones=st.one_of(st.just(dt.timezone.utc), offsets))
#: RFC 3339-looking strings, many of them at the edges of the calendar
time_texts = st.one_of(
    times.map(lambda t: t.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z",
                     "9999-12-31T23:59:59.999999999Z", "2026-02-30T00:00:00Z", "2026-11-26T11:59:00+24:00"]))


def dumps(value) -> bytes:
    """JSON text as a sender's library might write it: lone surrogates as \\ud800 escapes, NaN as NaN."""
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def _nested(depth: int, opener: bytes) -> bytes:
    return opener * depth


#: bodies no JSON library would write
odd_bodies = st.one_of(
    st.binary(max_size=512),
    st.builds(_nested, st.integers(0, 40_000), st.sampled_from([b"[", b"{", b'{"a":', b'[{"a":[', b"[1,"])),
    st.integers(1, 6000).map(lambda n: b'{"data": {"plan": ' + b"9" * n + b"}}"),
    st.sampled_from([b"", b" ", b"null", b"NaN", b'{"a": -Infinity}', b"1e999", b'"\\ud800"', b"\xef\xbb\xbf{}",
                     b"\xed\xa0\x80", b'{"id": "\\ud800"}']),
    any_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
)
