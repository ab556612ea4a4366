"""list and show: what is dead-lettered, the broker's reason beside the app's own (from the ledger), and nothing
changes while looking."""
from __future__ import annotations

import datetime as dt
import json
import re
import time

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from shared.domain.records import FAILED, PROVISIONING, REJECTED, AuditEntry, CustomerRecord

from dlq_helpers import cloud_event, dead_letter_all, dlq_seq, message_for, send, view

AUTH0_ERROR = "auth0 clients.create: 503 Service Unavailable (the tenant is degraded); retries exhausted"
LONG_DESCRIPTION = "The function failed on every delivery: " + "TransientError " * 6


def _audit(ledger, customer, event, reason, outcome=FAILED, message_id=None):
    ledger.set_audit(AuditEntry(customer_id=customer, event_id=event["id"] if event else message_id,
                                event_type=event["type"] if event else "unknown", event_time=None, outcome=outcome,
                                reason=reason, attempts=5, message_id=message_id or (event and event["id"]),
                                recorded_at=dt.datetime.now(dt.timezone.utc)))


def _incident(servicebus, queue, ledger):
    """Three dead letters: acme (Auth0 outage, failed in the ledger), beta (no ledger row), and a body that is not
    JSON (the app audited it as rejected under ~unparsed, keyed by message id)."""
    cs = servicebus.connection_string
    acme, beta = cloud_event("acme"), cloud_event("beta", kind="removed")
    garbage = ServiceBusMessage(b"\xff\xfe not json", message_id="garbage-1", content_type="application/json",
                                application_properties={"clientSecret": "do-not-show", "source": "crm-batch-7"})
    send(cs, queue, message_for(acme), message_for(beta), garbage)
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", LONG_DESCRIPTION, expected=3)
    _audit(ledger, "acme", acme, AUTH0_ERROR)
    ledger.create_customer(CustomerRecord(customer_id="acme", status=PROVISIONING, profile="oem",
                                          last_error=AUTH0_ERROR, pending_event_id=acme["id"],
                                          updated_at=dt.datetime.now(dt.timezone.utc)))
    _audit(ledger, "~unparsed", None, "$: body is not valid UTF-8 (byte 0)", outcome=REJECTED, message_id="garbage-1")
    return acme, beta


def test_list_shows_broker_and_ledger_reasons(servicebus, queue, tool, ledger, azurite):
    acme, beta = _incident(servicebus, queue, ledger)
    tool.use_ledger(ledger, azurite)
    before = view(servicebus, queue)

    run = tool.run("list", "--queue", queue, "--json")
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["message_id"] for r in rows] == [acme["id"], beta["id"], "garbage-1"]
    by_id = {r["message_id"]: r for r in rows}
    a = by_id[acme["id"]]
    assert (a["customer_id"], a["event_type"], a["event_time"]) == ("acme", "customer.created", acme["time"])
    assert a["dead_letter_reason"] == "MaxDeliveryCountExceeded"
    assert a["dead_letter_description"] == LONG_DESCRIPTION
    assert a["ledger_error"] == f"failed: {AUTH0_ERROR}"
    assert a["ledger"]["outcome"] == "failed" and a["ledger"]["attempts"] == 5
    assert a["replay_count"] == 0 and a["delivery_count"] is not None and a["enqueued_time"].endswith("Z")
    assert a["sequence_number"] == dlq_seq(servicebus.connection_string, queue, acme["id"])
    assert by_id[beta["id"]]["ledger_error"] is None
    assert by_id["garbage-1"]["customer_id"] is None
    assert by_id["garbage-1"]["ledger_error"] == "rejected: $: body is not valid UTF-8 (byte 0)"

    table = tool.run("list", "--queue", queue)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    header = lines[0]
    for column in ("SEQ", "MESSAGE ID", "CUSTOMER", "TYPE", "EVENT TIME", "DL REASON", "DL DESCRIPTION",
                   "LEDGER ERROR", "ENQUEUED", "DLV", "RPL"):
        assert column in header
    acme_line = next(line for line in lines if " acme " in line)
    start = header.index("LEDGER ERROR")
    assert acme_line[start:].startswith("failed: auth0 clients.create")
    assert "…" in acme_line and AUTH0_ERROR not in acme_line          # long cells are cut...
    assert [line.index("MaxDeliveryCountExceeded") for line in lines[1:4]] == [header.index("DL REASON")] * 3

    summary = table.stdout[table.stdout.index("by reason:"):].splitlines()
    assert sorted(line.split(None, 1)[0] for line in summary[1:]) == ["1", "1", "1"]
    assert any(line.endswith(f"failed: {AUTH0_ERROR}") for line in summary)
    assert any(line.endswith("MaxDeliveryCountExceeded: " + LONG_DESCRIPTION) for line in summary)  # no ledger row

    wide = tool.run("list", "--queue", queue, "--wide")
    assert f"failed: {AUTH0_ERROR}" in wide.stdout and LONG_DESCRIPTION.strip() in wide.stdout  # ...unless --wide
    assert acme["id"] in wide.stdout

    assert view(servicebus, queue) == before  # peek only: nothing locked, counted or moved


def test_show_prints_everything_redacted_with_the_audit_trail(servicebus, queue, tool, ledger, azurite):
    cs = servicebus.connection_string
    acme = cloud_event("acme", redirectUris=["https://acme.example/cb"])
    acme["data"]["clientSecret"] = "leaked-by-the-crm"
    send(cs, queue, message_for(acme, correlation_id="crm-batch-42",
                                application_properties={"tenant": "eu", "x-api-token": "tok-123"}))
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "failed 2 times", expected=1)
    earlier = cloud_event("acme")
    _audit(ledger, "acme", earlier, "auth0 clients.create: timeout")
    time.sleep(0.01)
    _audit(ledger, "acme", acme, AUTH0_ERROR)
    tool.use_ledger(ledger, azurite)
    seq = dlq_seq(cs, queue, acme["id"])

    run = tool.run("show", str(seq), "--queue", queue)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "leaked-by-the-crm" not in out and "tok-123" not in out
    assert '"clientSecret": "***redacted***"' in out
    assert "x-api-token" in out and "***redacted***" in out
    assert '"customerId": "acme"' in out and '\n      "redirectUris": [' in out  # pretty-printed
    assert "crm-batch-42" in out and "application/cloudevents+json" in out and "MaxDeliveryCountExceeded" in out
    assert f"Ledger, this event: failed: {AUTH0_ERROR}" in out
    trail = out[out.index("Audit trail"):]
    assert trail.index(earlier["id"]) < trail.index(acme["id"])  # oldest first
    assert "auth0 clients.create: timeout" in trail

    as_json = tool.run("show", str(seq), "--queue", queue, "--json")
    doc = json.loads(as_json.stdout)
    assert doc["sequence_number"] == seq
    assert doc["body"]["data"]["clientSecret"] == "***redacted***"
    assert doc["application_properties"] == {"tenant": "eu", "x-api-token": "***redacted***",
                                             "DeadLetterReason": "MaxDeliveryCountExceeded",
                                             "DeadLetterErrorDescription": "failed 2 times"}
    assert doc["properties"]["correlation_id"] == "crm-batch-42"
    assert doc["annotations"]["dead_letter_reason"] == "MaxDeliveryCountExceeded"
    assert [e["event_id"] for e in doc["ledger"]["audit"]] == [earlier["id"], acme["id"]]
    assert "leaked-by-the-crm" not in as_json.stdout


def test_show_of_a_missing_message_exits_1(servicebus, queue, tool):
    run = tool.run("show", "999", "--queue", queue)
    assert run.returncode == 1
    assert "no dead-lettered message with sequence number 999" in run.stderr


def test_filters_on_the_command_line(servicebus, queue, tool, ledger, azurite):
    cs = servicebus.connection_string
    old = [cloud_event("acme"), cloud_event("beta", kind="removed")]
    send(cs, queue, *[message_for(e) for e in old])
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "x", expected=2)
    time.sleep(2)
    between = dt.datetime.now(dt.timezone.utc)
    time.sleep(2)
    new = [cloud_event("acme", kind="removed"), cloud_event("gamma")]
    send(cs, queue, *[message_for(e) for e in new])
    dead_letter_all(cs, queue, "BadRequest", "the CRM batch was malformed", expected=2)
    _audit(ledger, "gamma", new[1], "apim capacity: 20 of 20 authorization servers used")
    tool.use_ledger(ledger, azurite)

    def ids(*args):
        run = tool.run("list", "--queue", queue, "--json", *args)
        assert run.returncode == 0, run.stderr
        return [json.loads(line)["message_id"] for line in run.stdout.splitlines()]

    # A point in time splits the batches however long the tool takes to start; ages (relative to the tool's own
    # clock, split exactly in the unit tests) are checked here only for being wired to the command line.
    assert ids("--before", between.isoformat()) == [e["id"] for e in old]
    assert ids("--after", between.isoformat()) == [e["id"] for e in new]
    assert ids("--older-than", "1h") == []
    assert ids("--newer-than", "1h", "--before", between.isoformat()) == [e["id"] for e in old]

    everything = [e["id"] for e in old + new]
    assert ids() == everything
    assert ids("--customer", "acme") == [old[0]["id"], new[0]["id"]]
    assert ids("--type", "customer.removed") == [old[1]["id"], new[0]["id"]]
    assert ids("--type", "customer.removed", "--customer", "acme") == [new[0]["id"]]
    assert ids("--reason", "malformed") == [e["id"] for e in new]
    assert ids("--reason", "CAPACITY") == [new[1]["id"]]          # found in the ledger's error only
    assert ids("--limit", "3") == everything[:3]
    seq = dlq_seq(cs, queue, new[0]["id"])
    assert ids("--seq", str(seq)) == [new[0]["id"]]
    empty = tool.run("list", "--queue", queue, "--customer", "nobody")
    assert empty.returncode == 0 and "no dead-lettered message matches" in empty.stdout


def test_customers_shows_who_is_stuck_from_the_ledger(tool, ledger, azurite):
    now = dt.datetime.now(dt.timezone.utc)
    ledger.create_customer(CustomerRecord(customer_id="acme", status=PROVISIONING, profile="oem",
                                          last_error=AUTH0_ERROR, pending_event_id="ev-1", updated_at=now))
    ledger.create_customer(CustomerRecord(customer_id="beta", status="provisioned", profile="oem",
                                          last_event_id="ev-2", last_event_type="customer.created",
                                          last_event_time=now, updated_at=now))
    ledger.create_customer(CustomerRecord(customer_id="gamma", status="removing", last_error="apim: 500",
                                          updated_at=now))
    tool.use_ledger(ledger, azurite)

    stuck = tool.run("customers", "--status", "provisioning", "--status", "removing")
    assert stuck.returncode == 0, stuck.stderr
    rows = [line.split()[0] for line in stuck.stdout.splitlines()[1:] if line and not line.startswith("2 ")]
    assert rows == ["acme", "gamma"]
    assert "2 customer(s): 1 provisioning, 1 removing" in stuck.stdout
    as_json = [json.loads(line) for line in tool.run("customers", "--with-error", "--json").stdout.splitlines()]
    assert [(r["customer_id"], r["last_error"]) for r in as_json] == [("acme", AUTH0_ERROR), ("gamma", "apim: 500")]
    beta = json.loads(tool.run("customers", "--customer", "beta", "--json").stdout)
    assert beta["status"] == "provisioned" and beta["last_event_id"] == "ev-2"


def test_customers_needs_the_ledger(tool):
    run = tool.run("customers")  # the tool fixture passes --no-ledger without a ledger
    assert run.returncode == 2 and "the ledger is needed" in run.stderr


def test_replaying_a_rejected_message_warns_that_it_will_be_rejected_again(servicebus, queue, tool, ledger,
                                                                           azurite):
    acme, _ = _incident(servicebus, queue, ledger)
    tool.use_ledger(ledger, azurite)
    cs = servicebus.connection_string
    garbage = dlq_seq(cs, queue, "garbage-1")
    run = tool.run("replay", "--seq", str(garbage), "--queue", queue, "--dry-run")
    assert run.returncode == 0, run.stderr
    assert f"warning: seq {garbage} was rejected by the app (rejected: $: body is not valid UTF-8" in run.stderr
    other = tool.run("replay", "--seq", str(dlq_seq(cs, queue, acme["id"])), "--queue", queue, "--dry-run")
    assert other.returncode == 0 and "warning" not in other.stderr  # failed, not rejected: no warning


def test_delivery_counts_count_the_first_delivery_as_one(servicebus, queue, tool):
    """One convention with the portal, .NET and the host's log (`DeliveryCount: 1`): a message dead-lettered on its
    first delivery shows 1 in list (table and JSON), show and export; one abandoned once before, 2."""
    cs = servicebus.connection_string
    first, second = cloud_event("first"), cloud_event("second")
    send(cs, queue, message_for(first))
    dead_letter_all(cs, queue, "InvalidEvent", "data.profile: is required", expected=1)
    send(cs, queue, message_for(second))
    with ServiceBusClient.from_connection_string(cs) as client, client.get_queue_receiver(queue) as receiver:
        [m] = receiver.receive_messages(max_wait_time=5)
        receiver.abandon_message(m)
        [m] = receiver.receive_messages(max_wait_time=5)
        receiver.dead_letter_message(m, reason="InvalidEvent", error_description="second delivery")

    rows = {r["message_id"]: r for r in map(json.loads, tool.run("list", "--queue", queue, "--json").stdout.splitlines())}
    assert (rows[first["id"]]["delivery_count"], rows[second["id"]]["delivery_count"]) == (1, 2)
    table = tool.run("list", "--queue", queue).stdout.splitlines()
    dlv = table[0].index("DLV") + len("DLV")
    assert [line[:dlv].split()[-1] for line in table[1:3]] == ["1", "2"], table
    shown = tool.run("show", str(rows[first["id"]]["sequence_number"]), "--queue", queue).stdout
    assert re.search(r"^  delivery count +1$", shown, re.M), shown
    export = tool.run("export", "--all", "--queue", queue, "-o", "-").stdout.splitlines()
    assert [json.loads(line)["annotations"]["delivery_count"] for line in export] == [1, 2]
