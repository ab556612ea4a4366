"""The dead-letter queue holds what the app refused, so the tool must survive it (issue 12): bodies of nested
brackets, not UTF-8, empty, large, with lone surrogates and year-1 times; escape sequences in message ids,
subjects, properties, dead-letter reasons and the ledger's reasons. list, list --json, show, export --all, replay
of the valid ones and purge --all --export all succeed, print no control character and write valid JSON; a
closed stdout ends the tool quietly."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

from azure.servicebus import ServiceBusMessage

from shared.domain.records import REJECTED, AuditEntry

from dlq_helpers import ROOT, cloud_event, dead_letter_all, message_for, peek, send

ESC_ID = "nest-\x1b]0;owned\x07-1"
HOSTILE_REASON = "hostile \x1b[31mred\x1b[0m"


def _hostile_messages() -> list[ServiceBusMessage]:
    year_one = cloud_event("year-one")
    year_one["time"] = "0001-01-01T00:00:00+01:00"
    surrogate = (b'{"specversion": "1.0", "id": "evt-\\ud800", "source": "/crm", "type": "customer.created", '
                 b'"time": "2026-11-26T11:59:00Z", "data": {"customerId": "acme", "displayName": "A\\ud800", '
                 b'"profile": "oem"}}')
    return [
        ServiceBusMessage(b"[" * 30000, message_id=ESC_ID, subject="\x1b[2J\x1b[H", content_type="\x1b[5m",
                          application_properties={"k\x1b[31m": "v\x1b]0;t\x07", "\u202eevil": "\u2066x"}),
        ServiceBusMessage(b"\xff\xfe\x1b[31m not UTF-8", message_id="bin-\x1b[1m", correlation_id="\x9b31m"),
        ServiceBusMessage(b"", message_id="empty-1"),
        ServiceBusMessage(b'{"pad": "' + b"x\\u001b" * 20000 + b'"}', message_id="big-1"),
        ServiceBusMessage(surrogate, message_id="surrogate-1", subject="customer.created"),
        message_for(year_one, message_id="year-one-1"),
        ServiceBusMessage(b'{"a": ' + b"9" * 5000 + b', "b": NaN}', message_id="digits-1"),
    ]


def _printable(text: str) -> None:
    for line in text.splitlines():
        assert line.isprintable(), repr(line)


def _ok(run) -> str:
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    _printable(run.stdout)
    _printable(run.stderr)
    return run.stdout


def test_every_command_survives_hostile_dead_letters(servicebus, queue, tool, ledger, azurite, tmp_path):
    cs = servicebus.connection_string
    valid = cloud_event("acme")
    send(cs, queue, message_for(valid))
    dead_letter_all(cs, queue, "replay-me", "Auth0 was down", expected=1)
    hostile = _hostile_messages()
    send(cs, queue, *hostile)
    dead_letter_all(cs, queue, HOSTILE_REASON, "\x1b]0;title\x07 description", expected=len(hostile))
    # What an older version of the app wrote to the ledger for a body with an escape-coded field name.
    ledger.set_audit(AuditEntry(customer_id="~unparsed", event_id=ESC_ID, event_type="unknown", event_time=None,
                                outcome=REJECTED, reason="data.\x1b]0;owned\x07: is not part of customer.created",
                                message_id=ESC_ID, recorded_at=dt.datetime.now(dt.timezone.utc)))
    tool.use_ledger(ledger, azurite)
    total = 1 + len(hostile)

    table = _ok(tool.run("list", "--queue", queue))
    assert f"{total} message(s)" in table and "\\x1b" in table and "by reason:" in table
    assert _ok(tool.run("list", "--queue", queue, "--wide")).count("\\x1b]0;owned\\x07") >= 2  # id and ledger

    rows = [json.loads(line) for line in _ok(tool.run("list", "--queue", queue, "--json")).splitlines()]
    assert len(rows) == total and all(line.isascii() for line in tool.run("list", "--queue", queue,
                                                                           "--json").stdout.splitlines())
    by_id = {r["message_id"]: r for r in rows}
    assert by_id[ESC_ID]["body_problem"] == "not shown as JSON: arrays and objects nest 30000 deep"
    assert by_id[ESC_ID]["ledger_error"].startswith("rejected: data.\x1b]0;owned")  # JSON keeps it, escaped
    assert by_id["bin-\x1b[1m"]["body_problem"] == "not UTF-8 (byte 0)"
    assert by_id["empty-1"]["body_problem"] == "empty" and by_id["empty-1"]["body_size"] == 0
    assert by_id["year-one-1"]["event_time"] == "0001-01-01T00:00:00+01:00"

    shown = {}
    for row in rows:
        seq = str(row["sequence_number"])
        shown[row["message_id"]] = _ok(tool.run("show", seq, "--queue", queue))
        json.loads(_ok(tool.run("show", seq, "--queue", queue, "--json")))
    assert "30000 bytes): not shown as JSON: arrays and objects nest 30000 deep" in shown[ESC_ID]
    assert "\\x1b[2J\\x1b[H" in shown[ESC_ID] and "k\\x1b[31m" in shown[ESC_ID]
    assert "not UTF-8 (byte 0)" in shown["bin-\x1b[1m"] and "\\xff\\xfe\\x1b[31m not UTF-8" in shown["bin-\x1b[1m"]
    assert "(empty)" in shown["empty-1"]
    assert '"displayName": "A\\ud800"' in shown["surrogate-1"]

    export = tmp_path / "all.jsonl"
    assert f"exported {total} message(s)" in _ok(tool.run("export", "--queue", queue, "--all", "-o", str(export)))
    records = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    assert [r["message_id"] for r in records] == [r["message_id"] for r in rows]

    replay = _ok(tool.run("replay", "--queue", queue, "--reason", "replay-me", "--yes"))
    assert "replay summary: 1 replayed" in replay
    assert [m.message_id for m in peek(cs, queue)] != []  # the copy is back on the queue

    purge_file = tmp_path / "purged.jsonl"
    purge = _ok(tool.run("purge", "--queue", queue, "--all", "--export", str(purge_file), "--yes"))
    assert f"purge summary: {len(hostile)} purged" in purge
    assert len(purge_file.read_text(encoding="utf-8").splitlines()) == len(hostile)
    assert peek(cs, queue, dead_letter=True) == []


def test_a_closed_stdout_ends_quietly(servicebus, queue, tool):
    cs = servicebus.connection_string
    send(cs, queue, *[message_for(cloud_event(f"c{i}")) for i in range(3)])
    dead_letter_all(cs, queue, "x", "y", expected=3)
    for args in (["list"], ["list", "--json"], ["export", "--all", "-o", "-"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first line, as `| head` is after its lines
        try:
            argv = [sys.executable, "-m", "opstool", args[0], "--settings", str(tool.settings_file), "--no-ledger",
                    "--queue", queue, *args[1:]]
            run = subprocess.run(argv, cwd=tool.cwd, env=tool.env, stdin=subprocess.DEVNULL, stdout=write_end,
                                 stderr=subprocess.PIPE, text=True, timeout=90)
        finally:
            os.close(write_end)
        assert run.returncode == 141, (args, run.stderr)
        assert run.stderr == "", (args, run.stderr)
    assert str(ROOT)  # the tool ran from the repository (PYTHONPATH), not an installed copy
