"""The bad-input corpus through the real path: SDK send -> local Functions host -> the app.

Every rejected case must end in the dead-letter queue, audited *rejected* with a reason naming its field, without
a single call to Auth0, Key Vault or API Management; the host keeps serving. Ids that look alike (``Acme``,
``acme``, ``a.cme``...) are valid: each provisions its own application with its own Key Vault secret name.
"""
from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from devtools.waiting import wait_until
from emulators.inspect import view_customers
from shared.domain import naming
from tests.conftest import customer_status

from bad_inputs import VALID_LOOKALIKES, created, rejected_cases

SERVICES = ("auth0", "keyvault", "apim")
pytestmark = pytest.mark.timeout(240)


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


def _rejections(stack_env) -> dict[str, dict]:
    """message id -> the audit row that rejected it (any partition)."""
    from azure.data.tables import TableClient
    with TableClient.from_connection_string(stack_env["LEDGER_CONNECTION"], stack_env["LEDGER_TABLE"]) as table:
        rows = table.query_entities("outcome eq 'rejected'")
        return {row["message_id"]: dict(row) for row in rows if row.get("message_id")}


def _calls(local_stack) -> dict[str, dict[str, int]]:
    return {name: local_stack.control(name).calls()["calls"] for name in SERVICES}


def test_every_bad_input_is_dead_lettered_with_its_reason_and_calls_nothing(app_host, ledger, stack_env, local_stack):
    cases = rejected_cases()
    assert len(cases) >= 30
    run = uuid.uuid4().hex[:8]
    sent = {f"corpus-{run}-{i:02d}": case for i, case in enumerate(cases)}
    before = _calls(local_stack)

    _send(stack_env, [(mid, case.encode()) for mid, case in sent.items()])
    deadline = time.monotonic() + 120
    dead = _dead_lettered(stack_env, set(sent))
    while len(dead) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.5)
        dead = _dead_lettered(stack_env, set(sent))
    assert [case.name for mid, case in sent.items() if mid not in dead] == [], "not dead-lettered"

    rejections = _rejections(stack_env)
    problems = []
    for mid, case in sent.items():
        msg = dead[mid]
        if msg.dead_letter_reason != "MaxDeliveryCountExceeded":
            problems.append(f"{case.name}: dead-letter reason {msg.dead_letter_reason!r}")
        audit = rejections.get(mid)
        if audit is None:
            problems.append(f"{case.name}: no 'rejected' audit row in the ledger")
        elif not re.search(rf"(^|: ){re.escape(case.field)}: ", str(audit.get("reason", ""))):
            problems.append(f"{case.name}: reason {audit.get('reason')!r} does not name {case.field}")
    assert problems == []
    # Not one call to the services: a refused event must not reach them (not even for a token).
    assert _calls(local_stack) == before

    # The host kept serving: a good event sent after the corpus is provisioned.
    good = created("corpus-after", displayName="After The Corpus")
    _send(stack_env, [(good["id"], json.dumps(good).encode())])
    wait_until(lambda: customer_status(ledger, "corpus-after") == "provisioned", timeout=60,
               what="the event after the corpus to be provisioned")
    assert len(view_customers(local_stack, ["corpus-after"]).of("corpus-after").auth0_applications) == 1


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
