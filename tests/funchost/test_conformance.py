"""Conformance: what a function receives from Microsoft's worker library when this host builds the invocation as the
.NET host does, and which Settlement calls reach the host. One row per case; the expectations are the .NET host's
(Service Bus extension 5.x) unless a row says where this host cannot know better (AMQP timestamps)."""
from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue

from funchost import LocalFunctionsHost
from host_helpers import CONFORMANCE_APP, read_records, send, wait_for

pytestmark = pytest.mark.timeout(90)

HOST_JSON = {"version": "2.0", "extensions": {"serviceBus": {"maxConcurrentCalls": 2, "maxConcurrentSessions": 2,
                                                             "sessionIdleTimeout": "00:00:01"}}}
TOKEN = "6f0d8ac0-4d5e-4c8d-9a2c-5b0f2e1d7a91"
PROPERTY_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")
STAMP = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


@pytest.fixture
def host(standin, record_file, tmp_path):
    started = LocalFunctionsHost(CONFORMANCE_APP, {"ServiceBusConnection": standin.connection_string,
                                                   "RECORD_FILE": str(record_file), "CLOCK_SCHEDULE": "0 0 0 1 1 *"},
                                 host_json=HOST_JSON, functions=["single", "sessions", "batch", "settling"],
                                 poll_interval=0.5, state_dir=tmp_path / "state").start()
    yield started
    started.stop(10)


def _b64(raw: bytes) -> dict:
    return {"bytes": base64.b64encode(raw).decode()}


def _one(record_file, message_id: str, fn: str = "single") -> dict:
    found = wait_for(lambda: [r for r in read_records(record_file) if r["fn"] == fn and r["message_id"] == message_id])
    assert found, f"{fn} never received {message_id}"
    return found[0]


# -- one message: (name, message, what the function must see) ------------------------------------------------------
SINGLE_CASES = [
    ("application properties of every AMQP type",
     dict(body=b'{"id": "props"}', content_type="application/json", application_properties={
         "s": "text", "i": 7, "d": 1.5, "b": True, "u": PROPERTY_UUID, "t": STAMP}),
     # Strings, numbers and booleans as themselves; a uuid as its text. A timestamp arrives as its milliseconds:
     # the Python SDK decodes AMQP timestamps to numbers, so this host cannot write the date .NET would. (A binary
     # would go as base64, Newtonsoft's byte[]; the Python SDK cannot send one to show it.)
     {"application_properties": {"s": "text", "i": 7, "d": 1.5, "b": True, "u": str(PROPERTY_UUID),
                                 "t": int(STAMP.timestamp() * 1000)},
      "user_properties": {"s": "text", "i": 7, "d": 1.5, "b": True, "u": str(PROPERTY_UUID),
                          "t": int(STAMP.timestamp() * 1000)},
      "content_type": "application/json", "body": _b64(b'{"id": "props"}')}),
    ("no application properties, no content type",
     dict(body=b'{"id": "bare"}'),
     {"application_properties": {}, "content_type": None, "absent": {"ContentType", "CorrelationId", "SessionId"}}),
    ("a body that is not UTF-8: a string with U+FFFD for each invalid sequence",
     dict(body=b'{"id": "caf\xe9 \xff\xfe"}'),
     {"body": _b64('{"id": "caf\ufffd \ufffd\ufffd"}'.encode())}),
    ("a body that is not JSON: passed through, no property merged",
     dict(body=b"plain text, not JSON"),
     {"body": _b64(b"plain text, not JSON"), "delivery_count": 1}),
    ("a JSON body's top-level properties replace the metadata of the same name, in any case",
     dict(body=json.dumps({"lockToken": TOKEN, "deliverycount": 7, "Subject": "from-the-body"}).encode(),
          subject="from-the-message"),
     {"lock_token": TOKEN, "delivery_count": 7, "subject": "from-the-body"}),
]


@pytest.mark.parametrize("name, message, expected", SINGLE_CASES, ids=[c[0] for c in SINGLE_CASES])
def test_single_message_as_the_function_receives_it(standin, host, record_file, name, message, expected):
    message_id = str(uuid.uuid4())
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=2)
    send(standin, "conf-single", ServiceBusMessage(message_id=message_id, **message))
    seen = _one(record_file, message_id)
    absent = expected.pop("absent", set())
    for key, value in expected.items():
        assert seen[key] == value, key
    assert not absent & set(seen["metadata_keys"])
    # Always: the .NET host's keys, and none of the ones it never sends.
    assert {"MessageId", "DeliveryCount", "SequenceNumber", "EnqueuedTimeUtc", "ExpiresAtUtc", "LockToken",
            "ApplicationProperties", "UserProperties", "MessageActions", "Client"} <= set(seen["metadata_keys"])
    assert not {"sys", "State", "LockedUntil", "TimeToLive"} & set(seen["metadata_keys"])
    assert seen["locked_until"] is None and seen["time_to_live"] is None
    # EnqueuedTimeUtc without a zone: the library makes a naive datetime of it, holding UTC.
    assert seen["enqueued_time_utc"]["repr"].startswith("datetime.datetime(") and \
        "tzinfo" not in seen["enqueued_time_utc"]["repr"]
    enqueued = eval(seen["enqueued_time_utc"]["repr"], {"datetime": dt})  # noqa: S307 - our own record
    assert before <= enqueued <= dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def test_a_session_message_carries_its_session_and_no_lock_expiry(standin, host, record_file):
    message_id = str(uuid.uuid4())
    send(standin, "conf-session", ServiceBusMessage(b'{"id": "s"}', message_id=message_id, session_id="tenant-7"))
    seen = _one(record_file, message_id, fn="sessions")
    assert seen["session_id"] == "tenant-7" and seen["locked_until"] is None
    assert "SessionId" in seen["metadata_keys"] and seen["delivery_count"] == 1


def test_a_batch_is_a_list_with_each_messages_own_metadata(standin, host, record_file):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    send(standin, "conf-batch", *[ServiceBusMessage(json.dumps({"n": n}), message_id=i, correlation_id=f"c{n}")
                                  for n, i in enumerate(ids)])
    batches = wait_for(lambda: sum(len(r["messages"]) for r in read_records(record_file) if r["fn"] == "batch") >= 3
                       and [r for r in read_records(record_file) if r["fn"] == "batch"])
    messages = [m for batch in batches for m in batch["messages"]]
    assert sorted(m["message_id"] for m in messages) == sorted(ids)
    for m in messages:
        n = ids.index(m["message_id"])
        # No dataType on a batch: the host parses each body as JSON and the library writes it out again.
        assert base64.b64decode(m["body"]["bytes"]) == json.dumps({"n": n}).encode()
        assert m["correlation_id"] == f"c{n}" and m["delivery_count"] == 1 and m["lock_token"]


def test_a_batch_with_a_body_that_is_not_json_fails_before_the_function_runs(standin, host, record_file):
    send(standin, "conf-batch", ServiceBusMessage(b"not json", message_id="batch-not-json"))
    assert wait_for(lambda: host.invocations["batch"]["failed"] >= 1)
    assert not [r for r in read_records(record_file) if r["fn"] == "batch"]


# -- settlement from the function: (what it does, the Settlement calls the host answers, how the message ends) -----
SETTLE_CASES = [
    ("raise", [], "MaxDeliveryCountExceeded", [1, 2]),
    ("deadletter", [("Deadletter", "ok")], "Conformance", [1]),
    # Settled twice: the second call reaches Service Bus (the lock token is the invocation's until it ends), which
    # refuses it; the client raises SettlementError over the host's UNKNOWN.
    ("twice", [("Deadletter", "ok"), ("Complete", "UNKNOWN")], "First", [1]),
    # autoCompleteMessages off and nothing settled: the host leaves the message to its lock, which lapses.
    ("nothing", [], "MaxDeliveryCountExceeded", [1, 2]),
]


@pytest.mark.parametrize("action, calls, dead_letter_reason, deliveries", SETTLE_CASES, ids=[c[0] for c in SETTLE_CASES])
def test_settlement_through_the_packages_own_client(standin, host, record_file, action, calls, dead_letter_reason,
                                                     deliveries):
    message_id = str(uuid.uuid4())
    send(standin, "conf-settle", ServiceBusMessage(json.dumps({"do": action}), message_id=message_id))
    dead = wait_for(lambda: _dead_letter(standin, message_id), timeout=30)
    assert dead is not None, "the message never reached the dead-letter queue"
    assert dead.dead_letter_reason == dead_letter_reason
    records = [r for r in read_records(record_file) if r.get("message_id") == message_id]
    assert [r["delivery_count"] for r in records] == deliveries
    assert records[0]["actions"].startswith("azurefunctions.extensions.bindings.servicebus")  # the package's client
    assert [(rpc, status) for rpc, subject, status in host.settlement.history if subject == message_id] == calls
    if action == "twice":
        assert records[-1]["error"]["method"] == "complete"


def _dead_letter(standin, message_id: str):
    with ServiceBusClient.from_connection_string(standin.connection_string) as client, \
            client.get_queue_receiver("conf-settle", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        return next((m for m in dlq.peek_messages(max_message_count=100) if m.message_id == message_id), None)


def test_a_past_due_timer_runs_once_at_start_with_the_stored_status(standin, record_file, tmp_path):
    state = tmp_path / "state"
    (state / "timers").mkdir(parents=True)
    last = dt.datetime.now() - dt.timedelta(days=2)
    missed = last + dt.timedelta(days=1)
    (state / "timers" / "clock.json").write_text(json.dumps(
        {"Last": last.isoformat(), "Next": missed.isoformat(), "LastUpdated": last.isoformat()}))
    host = LocalFunctionsHost(CONFORMANCE_APP, {"ServiceBusConnection": standin.connection_string,
                                                "RECORD_FILE": str(record_file), "CLOCK_SCHEDULE": "0 0 0 1 1 *"},
                              host_json=HOST_JSON, functions=["clock"], poll_interval=0.5, state_dir=state).start()
    try:
        [tick] = wait_for(lambda: [r for r in read_records(record_file) if r["fn"] == "clock"])
    finally:
        host.stop(5)
    assert tick["past_due"] is True
    assert {"Last", "Next", "LastUpdated"} <= set(tick["schedule_status"])
    assert tick["schedule_status"]["Next"].startswith(missed.strftime("%Y-%m-%dT%H:%M:%S"))
    stored = json.loads((state / "timers" / "clock.json").read_text())
    assert dt.datetime.fromisoformat(stored["Next"]).year == dt.datetime.now().year + 1  # 1 January next year


def test_a_placeholder_worker_specialised_by_environment_reload_runs_the_app(standin, record_file, tmp_path):
    # The worker starts on an empty app without the app's settings (a pre-warmed instance), and the library indexes
    # the app when FunctionEnvironmentReloadRequest brings the directory and the environment: RECORD_FILE reaches
    # the function only that way.
    host = LocalFunctionsHost(CONFORMANCE_APP, {"ServiceBusConnection": standin.connection_string,
                                                "RECORD_FILE": str(record_file), "CLOCK_SCHEDULE": "0 0 0 1 1 *"},
                              host_json=HOST_JSON, functions=["single"], poll_interval=0.5,
                              state_dir=tmp_path / "state", placeholder=True).start()
    try:
        assert host.functions == ["single"], host.index_error
        message_id = str(uuid.uuid4())
        send(standin, "conf-single", ServiceBusMessage(b'{"id": "warm"}', message_id=message_id))
        assert _one(record_file, message_id)["delivery_count"] == 1
    finally:
        host.stop(5)


def test_a_second_stream_naming_the_worker_id_gets_nothing(host):
    # The worker id is on the worker's command line: anyone on the machine can read it. The host keeps the stream
    # of the worker it started and refuses a second one.
    import grpc

    from funchost.rpc import load
    protos, services = load()
    worker_id = next(a for a in open(f"/proc/{host.channel.worker_pid}/cmdline").read().split("\0")
                     if len(a) == 36 and a.count("-") == 4)
    with grpc.insecure_channel(f"127.0.0.1:{host.channel.port}") as channel:
        call = services.FunctionRpcStub(channel).EventStream(
            iter([protos.StreamingMessage(start_stream=protos.StartStream(worker_id=worker_id))]), timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            next(call)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
