"""export and purge: an export holds everything needed to inspect or re-send a message; purge removes nothing it
has not first written to a durable export file."""
from __future__ import annotations

import base64
import json
import os
import stat

from azure.servicebus import ServiceBusMessage

from dlq_helpers import body, cloud_event, dead_letter_all, dlq_seq, message_for, peek, send, view


def _three(servicebus, queue):
    cs = servicebus.connection_string
    acme, beta = cloud_event("acme"), cloud_event("beta", kind="removed")
    binary = ServiceBusMessage(b"\x00\xffnot text", message_id="bin-1", content_type="application/octet-stream",
                               application_properties={"note": "from the CRM", "attempt": 2})
    send(cs, queue, message_for(acme, correlation_id="c-1", application_properties={"tenant": "eu"}),
         message_for(beta), binary)
    dead_letter_all(cs, queue, "BadRequest", "the CRM batch was malformed", expected=3)
    return acme, beta


def test_export_writes_each_message_in_full_and_removes_nothing(servicebus, queue, tool, tmp_path):
    cs = servicebus.connection_string
    acme, beta = _three(servicebus, queue)
    before = view(servicebus, queue)
    path = tmp_path / "all.jsonl"

    run = tool.run("export", "--queue", queue, "--output", str(path))
    assert run.returncode == 0, run.stderr
    assert "exported 3 message(s)" in run.stdout
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["message_id"] for r in lines] == [acme["id"], beta["id"], "bin-1"]
    first = lines[0]
    assert json.loads(first["body"]) == acme and first["body_encoding"] == "utf-8"
    assert first["properties"]["correlation_id"] == "c-1" and first["properties"]["session_id"] == "acme"
    assert first["properties"]["content_type"] == "application/cloudevents+json"
    assert first["application_properties"]["tenant"] == "eu"
    assert first["annotations"]["sequence_number"] == dlq_seq(cs, queue, acme["id"]) == first["sequence_number"]
    assert first["annotations"]["dead_letter_reason"] == "BadRequest"
    assert first["annotations"]["dead_letter_error_description"] == "the CRM batch was malformed"
    assert first["annotations"]["enqueued_time_utc"].endswith("Z")
    assert first["queue"] == queue and first["event"]["customer_id"] == "acme"
    binary = lines[2]
    assert binary["body_encoding"] == "base64" and base64.b64decode(binary["body"]) == b"\x00\xffnot text"
    assert binary["application_properties"] == {"note": "from the CRM", "attempt": 2,
                                                "DeadLetterReason": "BadRequest",
                                                "DeadLetterErrorDescription": "the CRM batch was malformed"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert view(servicebus, queue) == before

    again = tool.run("export", "--queue", queue, "--output", str(path))
    assert again.returncode == 2 and "never overwrites" in again.stderr
    assert len(path.read_text().splitlines()) == 3

    only = tool.run("export", "--queue", queue, "--customer", "beta", "--output", "-")
    assert [json.loads(line)["message_id"] for line in only.stdout.splitlines()] == [beta["id"]]


def test_purge_writes_the_export_then_removes_exactly_the_selection(servicebus, queue, tool, tmp_path):
    cs = servicebus.connection_string
    acme, beta = _three(servicebus, queue)
    kept = peek(cs, queue, dead_letter=True)[2]
    path = tmp_path / "purged.jsonl"
    seqs = [dlq_seq(cs, queue, acme["id"]), dlq_seq(cs, queue, beta["id"])]

    run = tool.run("purge", "--queue", queue, "--seq", str(seqs[0]), "--seq", str(seqs[1]),
                   "--export", str(path), "--yes")
    assert run.returncode == 0, run.stderr
    assert "purge summary: 2 purged" in run.stdout
    assert f"exported 2 message(s) to {path}" in run.stderr
    exported = [json.loads(line) for line in path.read_text().splitlines()]
    assert [json.loads(r["body"]) for r in exported] == [acme, beta]
    assert [r["sequence_number"] for r in exported] == seqs
    remaining = peek(cs, queue, dead_letter=True)
    assert [m.message_id for m in remaining] == ["bin-1"] and body(remaining[0]) == body(kept)
    assert peek(cs, queue) == []  # purge sends nothing anywhere


def test_purge_removes_nothing_when_the_export_cannot_be_written(servicebus, queue, tool, tmp_path):
    _three(servicebus, queue)
    before = view(servicebus, queue)

    missing_dir = tool.run("purge", "--queue", queue, "--all", "--yes", "--export",
                           str(tmp_path / "no-such-dir" / "x.jsonl"))
    assert missing_dir.returncode == 1
    assert "nothing was removed" in missing_dir.stderr
    existing = tmp_path / "existing.jsonl"
    existing.write_text("an earlier export\n")
    clash = tool.run("purge", "--queue", queue, "--all", "--yes", "--export", str(existing))
    assert clash.returncode == 2 and "never overwrites" in clash.stderr
    assert existing.read_text() == "an earlier export\n"
    assert view(servicebus, queue) == before


def test_purge_writes_a_timestamped_export_by_default(servicebus, queue, tool, tmp_path):
    _three(servicebus, queue)
    run = tool.run("purge", "--queue", queue, "--customer", "acme", "--json")  # one message: no confirmation
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.splitlines()[-1])["summary"]
    assert summary["purged"] == 1
    path = tool.cwd_path(summary["export"])
    try:
        assert path.name.startswith(f"dlq-export-{queue}-") and path.suffix == ".jsonl"
        assert json.loads(json.loads(path.read_text())["body"])["data"]["customerId"] == "acme"
    finally:
        path.unlink()
