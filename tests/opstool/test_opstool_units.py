"""The tool's pure parts: durations, filters, redaction, the replayed copy's properties and id, the table."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from opstool.dead_letters import DeadLetter, read_event_fields
from opstool.output import REDACTED, Column, redact, redact_body_text, render_table
from opstool.replay import copy_properties, replay_message_id
from opstool.selection import Selection, parse_duration, parse_time, type_matches

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def dead_letter(seq: int, *, customer="acme", type_="customer.created", reason="MaxDeliveryCountExceeded",
                description="", age=dt.timedelta(minutes=5), props=None, message_id=None) -> DeadLetter:
    body = json.dumps({"id": f"ev-{seq}", "type": type_, "time": "2026-05-01T11:00:00Z",
                       "data": {"customerId": customer}}).encode()
    return DeadLetter(sequence_number=seq, message_id=message_id or f"m-{seq}", body=body, body_type="data",
                      enqueued_time=NOW - age, dead_letter_reason=reason, dead_letter_description=description,
                      application_properties=props or {}, event=read_event_fields(body))


@pytest.mark.parametrize("text,seconds", [("30m", 1800), ("2h", 7200), ("1d", 86400), ("90s", 90),
                                          ("1h30m", 5400), ("1w", 604800), (" 2H ", 7200)])
def test_durations(text, seconds):
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "m", "2 hours", "1h-", "-1h", "1.5h"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_type_filter_accepts_a_prefixed_type_but_not_a_different_one():
    assert type_matches("customer.created", "customer.created")
    assert type_matches("com.contoso.customer.created", "customer.created")
    assert not type_matches("customer.removed", "customer.created")
    assert not type_matches("xcustomer.created", "customer.created")
    assert not type_matches(None, "customer.created")


def test_each_filter_selects_exactly_its_messages():
    messages = [
        dead_letter(1, customer="acme", age=dt.timedelta(hours=3)),
        dead_letter(2, customer="beta", type_="customer.removed", age=dt.timedelta(minutes=10)),
        dead_letter(3, customer="acme", reason="Auth0Unavailable", description="503 from Auth0",
                    age=dt.timedelta(minutes=1)),
        dead_letter(4, customer="gamma", age=dt.timedelta(days=2)),
    ]
    ledger = {4: "failed: Key Vault said 403 Forbidden"}

    def seqs(**kw):
        return [d.sequence_number for d in Selection(**kw).apply(messages, lambda d: ledger.get(d.sequence_number),
                                                                  now=NOW)]

    assert seqs() == [1, 2, 3, 4]
    assert seqs(customers=["acme"]) == [1, 3]
    assert seqs(customers=["acme", "gamma"]) == [1, 3, 4]
    assert seqs(types=["customer.removed"]) == [2]
    assert seqs(reasons=["auth0"]) == [3]                      # the broker's reason or description
    assert seqs(reasons=["forbidden"]) == [4]                  # the ledger's error
    assert seqs(reasons=["nothing like it"]) == []
    assert seqs(older_than=dt.timedelta(hours=1)) == [1, 4]
    assert seqs(newer_than=dt.timedelta(minutes=30)) == [2, 3]
    assert seqs(older_than=dt.timedelta(minutes=5), newer_than=dt.timedelta(days=1)) == [1, 2]
    assert seqs(enqueued_before=NOW - dt.timedelta(hours=1)) == [1, 4]
    assert seqs(enqueued_after=NOW - dt.timedelta(minutes=30)) == [2, 3]
    assert seqs(enqueued_after=NOW - dt.timedelta(days=1), enqueued_before=NOW - dt.timedelta(minutes=5)) == [1, 2]
    assert seqs(sequence_numbers=[2, 4]) == [2, 4]
    assert seqs(sequence_numbers=[1, 2, 3], customers=["acme"]) == [1, 3]   # AND across kinds
    assert seqs(limit=2) == [1, 2]
    assert seqs(customers=["acme", "gamma"], limit=2) == [1, 3]


def test_the_ledger_is_only_consulted_when_a_reason_filter_needs_it():
    calls = []
    list(Selection(customers=["acme"]).apply([dead_letter(1)], lambda d: calls.append(d) or None, now=NOW))
    assert calls == []
    list(Selection(reasons=["x"]).apply([dead_letter(1)], lambda d: calls.append(d) or None, now=NOW))
    assert len(calls) == 1


def test_destructive_selection_must_be_explicit():
    assert Selection().is_empty
    assert not Selection(everything=True).is_empty
    assert not Selection(sequence_numbers=[3]).is_empty
    assert not Selection(older_than=dt.timedelta(hours=1)).is_empty
    assert not Selection(enqueued_after=NOW).is_empty


@pytest.mark.parametrize("text", ["2026-12-02T03:12:00", "yesterday", "2026-13-01T00:00Z", ""])
def test_bad_times_are_refused(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_times_keep_their_zone():
    assert parse_time("2026-12-02T04:12+01:00") == dt.datetime(2026, 12, 2, 3, 12, tzinfo=dt.timezone.utc)


def test_redaction_by_field_name_at_any_depth():
    doc = {"data": {"customerId": "acme", "clientSecret": "s3cr3t", "nested": [{"api_key": "k", "ok": 1}]},
           "password": "p", "accessToken": "t", "keyVaultName": "v", "displayName": "Acme"}
    out = redact(doc)
    assert out["data"]["clientSecret"] == REDACTED
    assert out["data"]["nested"][0] == {"api_key": REDACTED, "ok": 1}
    assert out["password"] == REDACTED and out["accessToken"] == REDACTED and out["keyVaultName"] == REDACTED
    assert out["data"]["customerId"] == "acme" and out["displayName"] == "Acme"
    assert "s3cr3t" not in redact_body_text(json.dumps(doc))[0]
    assert doc["data"]["clientSecret"] == "s3cr3t"  # the original is left alone


def test_copy_properties_drop_the_dead_letter_reason_and_count_replays():
    first = dead_letter(7, props={"DeadLetterReason": "x", "DeadLetterErrorDescription": "y", "tenant": "eu"})
    props = copy_properties(first)
    assert props == {"tenant": "eu", "replay-original-message-id": "m-7", "replay-count": 1}
    again = dead_letter(19, message_id="copy-id", props={**props, "DeadLetterReason": "x"})
    assert copy_properties(again) == {"tenant": "eu", "replay-original-message-id": "m-7", "replay-count": 2}


def test_replay_ids_are_new_stable_per_dead_letter_and_distinct_otherwise():
    a = dead_letter(7)
    assert replay_message_id("q", a) != a.message_id
    assert replay_message_id("q", a) == replay_message_id("q", dead_letter(7))  # a re-run: the same id
    assert replay_message_id("q", a) != replay_message_id("q", dead_letter(8))
    assert replay_message_id("q", a) != replay_message_id("other", a)
    replayed_once = dead_letter(7, props={"replay-count": 1})
    assert replay_message_id("q", a) != replay_message_id("q", replayed_once)


def test_table_truncates_unless_wide():
    rows = [{"seq": 3, "reason": "x" * 50}]
    cols = [Column("SEQ", lambda r: r["seq"], align_right=True), Column("REASON", lambda r: r["reason"], 10)]
    narrow = render_table(rows, cols).splitlines()
    assert narrow[1] == "  3  " + "x" * 9 + "…"
    assert render_table(rows, cols, wide=True).splitlines()[1].endswith("x" * 50)
    assert narrow[0].startswith("SEQ  REASON")


def test_json_export_values_keep_binary_as_base64():
    from opstool.dead_letters import jsonable

    assert jsonable({b"k": b"text", "bin": b"\x01\xfe", "n": 3}) == {"k": "text", "bin": {"base64": "Af4="}, "n": 3}


def test_a_binary_property_fails_the_copy_instead_of_changing_it():
    from opstool.replay import build_copy

    with pytest.raises(ValueError, match="binary"):
        build_copy(dead_letter(1, props={"raw": b"\x01\xfe"}), "q")


class FakeMessage:
    def __init__(self, seq, lock_seconds=30.0):
        self.sequence_number = seq
        self.locked_until_utc = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=lock_seconds)


class FakeReceiver:
    """Hands out the available messages lowest sequence number first, like the broker; locked ones are skipped."""

    def __init__(self, seqs, *, expire_after_receive=False):
        self.available = sorted(seqs)
        self.abandoned, self.renewed = [], []
        self.expire = expire_after_receive
        self.receives = 0

    def receive_messages(self, max_message_count, max_wait_time):
        self.receives += 1
        out, self.available = self.available[:max_message_count], self.available[max_message_count:]
        return [FakeMessage(s, lock_seconds=-1 if self.expire else 30) for s in out]

    def abandon_message(self, msg):
        self.abandoned.append(msg.sequence_number)
        self.available = sorted(self.available + [msg.sequence_number])

    def renew_message_lock(self, msg):
        raise RuntimeError("lock lost")


def test_receive_selected_handles_the_wanted_and_puts_the_rest_back():
    from opstool.locked_receive import SETTLED, receive_selected

    receiver = FakeReceiver([1, 2, 3, 4, 5, 6])
    handled = []
    missing = receive_selected(receiver, [2, 5, 9], lambda m, t: handled.append(m.sequence_number) or SETTLED,
                               batch=2)
    assert handled == [2, 5]
    assert missing == {9}
    assert sorted(receiver.abandoned) == [1, 3, 4, 6]   # held while scanning, then released
    assert receiver.available == [1, 3, 4, 6]


def test_receive_selected_holds_what_the_handler_could_not_do():
    from opstool.locked_receive import HOLD, receive_selected

    receiver = FakeReceiver([1, 2])
    assert receive_selected(receiver, [1], lambda m, t: HOLD) == set()
    assert receiver.abandoned == [1]


def test_receive_selected_gives_up_on_a_message_whose_lock_keeps_running_out():
    from opstool.locked_receive import RETRY, keep_lock, receive_selected

    receiver = FakeReceiver([1], expire_after_receive=True)

    def handle(msg, received_at):
        return RETRY if not keep_lock(receiver, msg, received_at) else "settled"

    receiver.abandon_message = lambda msg: None  # a lost lock: the broker releases it by itself
    original = receiver.receive_messages

    def receive(max_message_count, max_wait_time):
        got = original(max_message_count, max_wait_time)
        receiver.available = [1]  # released again at once
        return got

    receiver.receive_messages = receive
    assert receive_selected(receiver, [1], handle) == {1}
    assert receiver.receives == 3


def test_the_apps_retry_copies_name_the_original_and_start_a_fresh_budget():
    app_props = {"retry-attempt": 8, "retry-first-attempt-utc": "2026-05-01T10:00:00+00:00",
                 "retry-original-message-id": "crm-42", "retry-last-error": "auth0 503"}
    dl = dead_letter(9, message_id="retry-5f0e5c0a0f6d2b7d8d1e0e5b7d4a3c2b1a0f9e8d-8", props=dict(app_props))
    assert dl.original_message_id == "crm-42"
    fresh = copy_properties(dl)
    assert fresh == {"retry-last-error": "auth0 503", "replay-original-message-id": "crm-42", "replay-count": 1}


class _Terminal:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_on_a_terminal_is_one_line_cleared_before_other_output():
    import io

    from opstool.output import Progress

    term = _Terminal()
    progress = Progress("replay:", 12, term)
    for _ in range(12):
        progress.clear()
        progress.step()
    progress.close()
    assert term.text.endswith("\r\x1b[Kreplay: 12/12\n")
    assert term.text.count("\n") == 1
    assert term.text.count("\r\x1b[K") == 12 + 11  # drawn 12 times, cleared before each of the 11 later results

    piped = io.StringIO()
    progress = Progress("replay:", 25, piped)
    for _ in range(25):
        progress.clear()
        progress.step()
    progress.close()
    assert piped.getvalue() == "replay: 10/25\nreplay: 20/25\nreplay: 25/25\n"

    short = io.StringIO()
    progress = Progress("replay:", 3, short)
    for _ in range(3):
        progress.step()
    assert short.getvalue() == ""


def test_namespace_names_become_host_names():
    from opstool.connection import namespace_fqdn

    assert namespace_fqdn("sb-customers-prod") == "sb-customers-prod.servicebus.windows.net"
    assert namespace_fqdn("sb-x.servicebus.chinacloudapi.cn") == "sb-x.servicebus.chinacloudapi.cn"
    assert namespace_fqdn("sb://sb-x.servicebus.windows.net/") == "sb-x.servicebus.windows.net"


def test_settings_come_from_the_environment_before_the_settings_file(tmp_path):
    from opstool.connection import resolve_target
    from shared.settings import tool_values

    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {"ServiceBusConnection": "Endpoint=sb://file-host:5672;SharedAccessKeyName=k;"
                                                                 "SharedAccessKey=secret-value",
                                           "CUSTOMER_EVENTS_QUEUE": "from-file"}}))
    values = tool_values(str(path), environ={"CUSTOMER_EVENTS_QUEUE": "from-env"})
    target = resolve_target(connection_string=None, namespace=None, queue=None, values=values)
    assert (target.queue, target.namespace) == ("from-env", "file-host:5672")
    assert "secret-value" not in repr(target)
    explicit = resolve_target(connection_string=None, namespace="prod-ns", queue="q", values=values)
    assert (explicit.queue, explicit.namespace) == ("q", "prod-ns.servicebus.windows.net")


class _Answer:
    def __init__(self, text: str, tty: bool = True):
        self.text, self.tty = text, tty

    def isatty(self):
        return self.tty

    def readline(self):
        return self.text


def _ctx(yes: bool = False):
    import argparse
    import io

    class Ctx:
        args = argparse.Namespace(yes=yes)
        err = io.StringIO()
    return Ctx()


def test_one_message_is_confirmed_on_a_terminal_too_and_yes_skips_it():
    from opstool.context import Declined, confirm

    ctx = _ctx()
    with pytest.raises(Declined):
        confirm(ctx, "replay 1 dead-lettered messages", 1, stdin=_Answer("n\n"))
    assert "Replay 1 dead-lettered messages? [y/N]" in ctx.err.getvalue()
    confirm(_ctx(), "replay 1 dead-lettered messages", 1, stdin=_Answer("y\n"))
    confirm(_ctx(yes=True), "purge", 1, stdin=_Answer("n\n"))  # --yes: not asked
    confirm(_ctx(), "replay 1", 1, stdin=_Answer("", tty=False))  # a script naming one --seq goes on
    from opstool.errors import UsageError
    with pytest.raises(UsageError, match="without confirmation"):
        confirm(_ctx(), "replay 2", 2, stdin=_Answer("", tty=False))


@pytest.mark.parametrize("value,count", [(2, 2), (-3, 0), (True, 0), (float("inf"), 0), (float("nan"), 0),
                                         (2.7, 2), ("4", 4), ("four", 0), ("9" * 5000, 0), (None, 0), ([1], 0)])
def test_a_replay_count_property_of_any_value_reads_as_a_count(value, count):
    # A dead letter's properties are whatever its sender put there: a double may be infinite, a string anything.
    assert dead_letter(1, props={"replay-count": value}).replay_count == count
