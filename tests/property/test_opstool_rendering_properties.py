"""The ops tool's output layer, fed whatever a dead-lettered message can hold (no Service Bus: the rendering is
called directly): it never raises, no printed line holds a character that is not printable (no ESC, CSI, bidi
override, lone surrogate, line separator...), no line is unbounded, and every --json line is valid ASCII JSON."""
from __future__ import annotations

import datetime as dt
import io
import json
import types

from hypothesis import given, strategies as st

from opstool.dead_letters import DeadLetter, read_event_fields
from opstool.export_file import export_record, read_export, write_export
from opstool.inspection import print_list, print_show
from opstool.ledger_view import LedgerView
from opstool.output import MAX_LINE, emit, safe_text
from opstool.repair import Reporter
from opstool.results import Result
from opstool.safe_json import dumps_line
from shared.domain.records import AuditEntry, CustomerRecord

from strategies import any_text, dumps, json_values, odd_bodies, times

property_values = st.one_of(any_text, st.binary(max_size=40), st.integers(), st.booleans(), st.none(),
                            st.floats(allow_nan=True, allow_infinity=True), times)
bodies = st.one_of(odd_bodies, json_values.map(dumps),
                   st.dictionaries(st.sampled_from(["id", "type", "time", "data", "x"]), json_values).map(dumps))


@st.composite
def dead_letters(draw, seq=st.integers(1, 2 ** 40)):
    body = draw(st.one_of(bodies, st.none()))
    maybe_text = st.one_of(st.none(), any_text)
    return DeadLetter(
        sequence_number=draw(seq), message_id=draw(st.one_of(any_text, st.binary(max_size=20))),
        body=body, body_type="data" if body is not None else "value",
        body_value=None if body is not None else draw(json_values),
        correlation_id=draw(maybe_text), content_type=draw(maybe_text), subject=draw(maybe_text),
        session_id=draw(maybe_text), reply_to=draw(maybe_text), to=draw(maybe_text),
        time_to_live=draw(st.one_of(st.none(), st.timedeltas(min_value=dt.timedelta(0)))),
        enqueued_time=draw(st.one_of(st.none(), times)), expires_at=draw(st.one_of(st.none(), times)),
        delivery_count=draw(st.one_of(st.none(), st.integers(0, 100))),
        dead_letter_reason=draw(maybe_text), dead_letter_description=draw(maybe_text),
        dead_letter_source=draw(maybe_text),
        application_properties=draw(st.dictionaries(st.one_of(any_text, st.sampled_from(["replay-count",
                                                                                          "clientSecret"])),
                                                    property_values, max_size=5)),
        annotations=draw(st.dictionaries(any_text, property_values, max_size=3)),
        event=read_event_fields(body),
    )


class FakeLedger:
    """The ledger adapter's read side, answering with whatever reasons the app (or an older version) wrote."""

    def __init__(self, reason: str, customer_id: str):
        now = dt.datetime.now(dt.timezone.utc)
        self.entry = AuditEntry(customer_id=customer_id, event_id=reason[:20] or "e", event_type=reason,
                                event_time=dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc), outcome="rejected",
                                reason=reason, attempts=1, message_id=reason, recorded_at=now)
        self.record = CustomerRecord(customer_id=customer_id, status="provisioning", last_error=reason,
                                     pending_event_id=reason, updated_at=now)

    def get_customer(self, partition, key=None):
        return self.record, self.entry

    def list_audit(self, partition):
        return [self.entry, self.entry]


def fake_ctx(*, json_out: bool, wide: bool = False, ledger=None):
    return types.SimpleNamespace(out=io.StringIO(), err=io.StringIO(), json=json_out, ledger=LedgerView(ledger),
                                 where="sbemulatorns/q/$DeadLetterQueue", why_no_ledger="--no-ledger",
                                 args=types.SimpleNamespace(wide=wide),
                                 target=types.SimpleNamespace(queue="q", namespace="sbemulatorns"))


def assert_safe(text: str, *, as_json: bool) -> None:
    for line in text.splitlines():
        assert line.isprintable(), repr(line)
        if not as_json:  # a JSON line holds its values in full, for scripts; lines for people are bounded
            assert len(line) <= MAX_LINE
        else:
            assert line.isascii()
            json.loads(line)


ledgers = st.one_of(st.none(), st.builds(FakeLedger, any_text, st.sampled_from(["acme", "~unparsed"])))


@given(st.lists(dead_letters(), max_size=4), st.booleans(), st.booleans(), ledgers)
def test_list(messages, json_out, wide, ledger):
    ctx = fake_ctx(json_out=json_out, wide=wide, ledger=ledger)
    print_list(ctx, messages)
    assert_safe(ctx.out.getvalue(), as_json=json_out)
    assert_safe(ctx.err.getvalue(), as_json=False)


@given(dead_letters(), st.booleans(), ledgers)
def test_show(dl, json_out, ledger):
    ctx = fake_ctx(json_out=json_out, ledger=ledger)
    record, trail = ctx.ledger.audit_trail(dl)
    print_show(ctx, dl, record, trail)
    assert_safe(ctx.out.getvalue(), as_json=json_out)


@given(dead_letters(), st.booleans())
def test_export_lines_are_json_and_round_trip(dl, redacted):
    record = export_record(dl, queue="q", namespace="n", exported_at=dt.datetime.now(dt.timezone.utc),
                           redacted=redacted)
    out = io.StringIO()
    line = dumps_line(record, ascii_only=False)
    line.encode("utf-8")  # strict: the file is UTF-8
    assert json.loads(line)["sequence_number"] == dl.sequence_number
    out.write(dumps_line(record))
    assert_safe(out.getvalue(), as_json=True)


def test_write_export_round_trips_hostile_messages(tmp_path):
    messages = [DeadLetter(sequence_number=i, message_id=f"m\x1b{i}\ud800", body=b, body_type="data",
                           subject="\x1b]0;x\x07", application_properties={"t": dt.datetime(1, 1, 1, tzinfo=dt.timezone(
                               dt.timedelta(hours=1))), "n": float("nan"), "b": b"\xff"}, event=read_event_fields(b))
                for i, b in enumerate([b"[" * 30000, b"\xff\xfe", b"", b'{"id": "\\ud800", "a": NaN}'], 1)]
    path = tmp_path / "export.jsonl"
    assert write_export(path, messages, queue="q", namespace="n") == 4
    back = read_export(path)
    assert [r["sequence_number"] for r in back] == [1, 2, 3, 4]
    assert back[0]["message_id"] == "m\x1b1\ud800" and back[1]["body_encoding"] == "base64"


@given(st.builds(Result, st.integers(0, 2 ** 40), st.one_of(st.none(), any_text),
                 st.sampled_from(["replayed", "purged", "skipped", "failed", "would-replay"]),
                 st.one_of(st.none(), any_text), st.one_of(st.none(), any_text), st.one_of(st.none(), st.integers()),
                 st.one_of(st.none(), any_text), st.one_of(st.none(), any_text)),
       st.booleans())
def test_replay_and_purge_report_lines(result, json_out):
    ctx = fake_ctx(json_out=json_out)
    ctx.args.yes = True
    report = Reporter(ctx, "replay:", 1)
    report(result)
    report.finish("replay")
    assert_safe(ctx.out.getvalue(), as_json=json_out)


@given(st.one_of(any_text, property_values, json_values), st.one_of(st.none(), st.integers(1, 300)))
def test_safe_text(value, limit):
    text = safe_text(value, limit)
    assert text.isprintable()
    if limit is not None:
        assert len(text) <= limit
    if isinstance(value, str) and value.isprintable() and (limit is None or len(value) <= limit):
        assert text == value  # printable text is shown as it is


@given(any_text)
def test_emit(text):
    out = io.StringIO()
    emit(out, text)
    assert_safe(out.getvalue(), as_json=False)
