"""The bad-input corpus through the real path: SDK send -> local Functions host -> the app.

Every rejected case must end in the dead-letter queue on its first delivery, with its dead-letter reason code and
the rule as description, audited *rejected* with a reason naming its field, without a single call to Auth0, Key
Vault or API Management, and with no traceback in the log; a body over the queue's message size is refused by
Service Bus at send; the host keeps serving; and with all of it in the dead-letter queue the ops tool lists, shows,
exports, replays and purges. Ids that look alike (``Acme``, ``acme``, ``a.cme``...) are valid: each provisions its
own application with its own Key Vault secret name.
"""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from devtools.waiting import wait_until
from emulators.inspect import view_customers
from shared.domain import naming
from tests.conftest import customer_status

from bad_inputs import VALID_LOOKALIKES, created, rejected_cases

SERVICES = ("auth0", "keyvault", "apim")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)


def _send(stack_env, bodies: list[tuple[str, bytes]]) -> None:
    from azure.servicebus import ServiceBusClient, ServiceBusMessage
    with ServiceBusClient.from_connection_string(stack_env["ServiceBusConnection"]) as client:
        with client.get_queue_sender(stack_env["CUSTOMER_EVENTS_QUEUE"]) as sender:
            for message_id, body in bodies:
                sender.send_messages(ServiceBusMessage(body, message_id=message_id,
                                                       content_type="application/cloudevents+json"))


def _dead_lettered(stack_env, message_ids: set[str]) -> dict[str, object]:
    from azure.servicebus import ServiceBusClient, ServiceBusSubQueue
    found = {}
    with ServiceBusClient.from_connection_string(stack_env["ServiceBusConnection"]) as client:
        with client.get_queue_receiver(stack_env["CUSTOMER_EVENTS_QUEUE"],
                                       sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
            seq = 0
            while True:
                page = receiver.peek_messages(max_message_count=250, sequence_number=seq + 1)
                if not page:
                    break
                found.update({m.message_id: m for m in page if m.message_id in message_ids})
                seq = max(m.sequence_number for m in page)
    return found


def _rejections(stack_env) -> dict:
    """message id -> the audit row that rejected it (any partition); ("event", id) -> a row recorded without the
    message id (the sender had overridden it, see MetadataCollision)."""
    from azure.data.tables import TableClient
    with TableClient.from_connection_string(stack_env["LEDGER_CONNECTION"], stack_env["LEDGER_TABLE"]) as table:
        rows = [dict(row) for row in table.query_entities("outcome eq 'rejected'")]
    found: dict = {row["message_id"]: row for row in rows if row.get("message_id")}
    found.update({("event", row["event_id"]): row for row in rows if not row.get("message_id") and row.get("event_id")})
    return found


def _calls(local_stack) -> dict[str, dict[str, int]]:
    return {name: local_stack.control(name).calls()["calls"] for name in SERVICES}


def _delivery_counts(log_text: str, message_ids: set[str]) -> dict[str, list[int]]:
    """message id -> the DeliveryCount of each invocation, from the host's ``Trigger Details`` lines."""
    counts: dict[str, list[int]] = {}
    for mid, count in re.findall(r"Trigger Details: MessageId: (\S+), SequenceNumber: \d+, DeliveryCount: (\d+)",
                                 log_text):
        if mid in message_ids:
            counts.setdefault(mid, []).append(int(count))
    return counts


def test_every_bad_input_is_dead_lettered_at_once_with_its_reason_and_calls_nothing(
        app_host, ledger, stack_env, local_stack, caplog, tmp_path):
    from azure.servicebus import ServiceBusClient, ServiceBusMessage
    from azure.servicebus.exceptions import MessageSizeExceededError

    cases = rejected_cases()
    assert len(cases) >= 70
    run = uuid.uuid4().hex[:8]
    sent = {f"corpus-{run}-{i:02d}": case for i, case in enumerate(cases)}
    before = _calls(local_stack)

    # 300 KB is over the queue's maximum message size (256 KB on the standard tier): Service Bus refuses it at send,
    # so it never reaches the app nor the dead-letter queue.
    with ServiceBusClient.from_connection_string(stack_env["ServiceBusConnection"]) as client:
        with client.get_queue_sender(stack_env["CUSTOMER_EVENTS_QUEUE"]) as sender:
            with pytest.raises(MessageSizeExceededError):
                sender.send_messages(ServiceBusMessage(b'{"pad": "' + b"x" * (300 * 1024) + b'"}',
                                                       message_id=f"corpus-{run}-300kb"))

    with caplog.at_level(logging.INFO):
        _send(stack_env, [(mid, case.encode()) for mid, case in sent.items()])
        deadline = time.monotonic() + 120
        dead = _dead_lettered(stack_env, set(sent))
        while len(dead) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.5)
            dead = _dead_lettered(stack_env, set(sent))
        assert [case.name for mid, case in sent.items() if mid not in dead] == [], "not dead-lettered"
        log_text = caplog.text

    rejections = _rejections(stack_env)
    deliveries = _delivery_counts(log_text, set(sent))
    problems = []
    for mid, case in sent.items():
        msg = dead[mid]
        if msg.dead_letter_reason != case.code:
            problems.append(f"{case.name}: dead-letter reason {msg.dead_letter_reason!r}, not {case.code!r}")
        description = msg.dead_letter_error_description or ""
        if not re.search(rf"(^|: ){re.escape(case.field)}: ", description) or not description.isprintable():
            problems.append(f"{case.name}: dead-letter description {description!r} does not name {case.field}")
        if deliveries.get(mid) != [1]:
            problems.append(f"{case.name}: delivered {deliveries.get(mid)}, not once")
        audit = rejections.get(mid)
        if audit is None and isinstance(case.body, dict):  # recorded without the (overridden) message id
            audit = rejections.get(("event", case.body.get("id")))
        if audit is None:
            problems.append(f"{case.name}: no 'rejected' audit row in the ledger")
        elif not re.search(rf"(^|: ){re.escape(case.field)}: ", str(audit.get("reason", ""))):
            problems.append(f"{case.name}: reason {audit.get('reason')!r} does not name {case.field}")
    assert problems == []
    # One warning line per rejected event, no failed invocation, no traceback.
    assert "(Failed, Id=" not in log_text and "Traceback" not in log_text
    # Not one call to the services: a refused event must not reach them (not even for a token).
    assert _calls(local_stack) == before

    # The host kept serving: a good event sent after the corpus is provisioned.
    good = created("corpus-after", displayName="After The Corpus")
    _send(stack_env, [(good["id"], json.dumps(good).encode())])
    wait_until(lambda: customer_status(ledger, "corpus-after") == "provisioned", timeout=60,
               what="the event after the corpus to be provisioned")
    assert len(view_customers(local_stack, ["corpus-after"]).of("corpus-after").auth0_applications) == 1

    # A valid event Auth0 refused (a 400 no retry can fix) joins them in the dead-letter queue.
    local_stack.control("auth0").fail_next("clients.create", 400, count=1)
    refused = created("corpus-refused", displayName="Refused Once")
    _send(stack_env, [(refused["id"], json.dumps(refused).encode())])
    wait_until(lambda: _dead_lettered(stack_env, {refused["id"]}), timeout=60, what="the refused event dead-lettered")
    assert _dead_lettered(stack_env, {refused["id"]})[refused["id"]].dead_letter_reason == "PermanentFailure"
    _ops_tool_handles_the_corpus(stack_env, ledger, tmp_path, sent, refused)


def _ops_tool_handles_the_corpus(stack_env, ledger, tmp_path, sent: dict, refused: dict) -> None:
    """list, list --json, show, export --all, replay --reason and purge --all --export, with the corpus present."""
    env = {k: v for k, v in stack_env.items()}
    env.update(PYTHONPATH=str(ROOT), PATH="/usr/bin:/bin")

    def tool(*args: str) -> str:
        argv = [sys.executable, "-m", "opstool", args[0], "--settings", str(tmp_path / "none.json"), *args[1:]]
        run = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
        assert run.returncode == 0 and "Traceback" not in run.stderr, (args, run.stderr[-2000:])
        for line in (run.stdout + run.stderr).splitlines():
            assert line.isprintable(), (args, line)
        return run.stdout

    total = len(sent) + 1
    table = tool("list")
    assert f"{total} message(s)" in table and "InvalidEvent" in table and "PermanentFailure" in table
    rows = [json.loads(line) for line in tool("list", "--json").splitlines()]
    by_id = {r["message_id"]: r for r in rows}
    assert set(sent) | {refused["id"]} <= set(by_id) and len(rows) == total
    assert {by_id[mid]["dead_letter_reason"] for mid in sent} == {"InvalidEvent", "UnknownProfile"}

    def message_id_of(name: str) -> str:
        return next(mid for mid, case in sent.items() if case.name == name)

    for name in ("arrays nested 30,000 deep", "non-UTF-8 bytes", "empty body", "a lone surrogate in data.displayName",
                 "escape codes in a data field's name", "a 5,000-digit number", "year 1 at +01:00"):
        shown = tool("show", str(by_id[message_id_of(name)]["sequence_number"]))
        assert message_id_of(name) in shown and "InvalidEvent" in shown, name
    assert "nest 30000 deep" in tool("show", str(by_id[message_id_of("arrays nested 30,000 deep")]["sequence_number"]))

    export = tmp_path / "all.jsonl"
    assert f"exported {total} message(s)" in tool("export", "--all", "-o", str(export))
    assert len([json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]) == total

    # The refusal is over: replay the valid one by its reason; it is provisioned.
    assert "replay summary: 1 replayed" in tool("replay", "--reason", "PermanentFailure", "--yes")
    wait_until(lambda: customer_status(ledger, "corpus-refused") == "provisioned", timeout=60,
               what="the replayed event to be provisioned")

    purged = tmp_path / "purged.jsonl"
    assert f"purge summary: {len(sent)} purged" in tool("purge", "--all", "--export", str(purged), "--yes")
    assert len(purged.read_text(encoding="utf-8").splitlines()) == len(sent)
    assert _dead_lettered(stack_env, set(sent) | {refused["id"]}) == {}


def test_lookalike_ids_are_distinct_customers(app_host, ledger, stack_env, local_stack):
    events = [created(cid, displayName=f"Lookalike {cid}") for cid in VALID_LOOKALIKES]
    _send(stack_env, [(e["id"], json.dumps(e).encode()) for e in events])

    wait_until(lambda: all(customer_status(ledger, c) == "provisioned" for c in VALID_LOOKALIKES), timeout=90,
               what="every lookalike to be provisioned")

    view = view_customers(local_stack, VALID_LOOKALIKES)
    assert view.duplicates() == {} and view.unattributed == []
    apps, secrets = {}, {}
    for cid in VALID_LOOKALIKES:
        res = view.of(cid)
        assert len(res.auth0_applications) == 1, res.line()
        assert res.secrets == [naming.secret_name(cid)], res.line()
        assert res.authorization_servers and list(res.subscriptions.values()) == ["active"], res.line()
        apps[cid], secrets[cid] = res.auth0_applications[0], res.secrets[0]
    # Key Vault names are case-insensitive: distinct means distinct once lower-cased.
    assert len({s.lower() for s in secrets.values()}) == len(VALID_LOOKALIKES), secrets
    assert len(set(apps.values())) == len(VALID_LOOKALIKES)
    for derive in (naming.secret_name, naming.authorization_server_id, naming.subscription_id):
        assert len({derive(c).lower() for c in VALID_LOOKALIKES}) == len(VALID_LOOKALIKES)
