"""The Service Bus trigger against the stand-in, driven by the real azure-servicebus SDK on both sides."""
from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue

from emulators.servicebus import ServiceBusStandIn
from funchost import InvocationIdFilter
from host_helpers import STANDIN_CONFIG, body, entity_view, read_records, send, wait_for

pytestmark = pytest.mark.timeout(60)

FAST = {"version": "2.0", "extensions": {"serviceBus": {"maxConcurrentCalls": 2}}}


def test_message_is_delivered_with_metadata_and_completed(standin, make_host, record_file):
    host = make_host(["work"], FAST, WORK_QUEUE="complete")
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    send(standin, "complete", ServiceBusMessage(
        body(id="one"), message_id="msg-1", correlation_id="corr-1", content_type="application/json",
        subject="customer.created", application_properties={"tenant": "t1", "attempt": 7}))

    assert wait_for(lambda: host.invocations["work"]["succeeded"] == 1)
    [seen] = read_records(record_file, "start")
    assert seen["message_id"] == "msg-1"
    # The Functions host reports the .NET SDK's count: 1 on the first delivery (the AMQP header says 0).
    assert seen["delivery_count"] == 1
    assert (seen["correlation_id"], seen["content_type"]) == ("corr-1", "application/json")
    assert seen["subject"] == seen["label"] == "customer.created"
    assert seen["application_properties"] == {"tenant": "t1", "attempt": 7}
    assert seen["sequence_number"] >= 1 and seen["lock_token"]
    # The host sends EnqueuedTimeUtc without a zone ("2026-12-07T23:10:54.592"): the library reads it as a naive
    # datetime holding UTC wall time. The host sends no LockedUntil, TimeToLive or State either.
    enqueued = dt.datetime.fromisoformat(seen["enqueued_time_utc"])
    assert enqueued.tzinfo is None
    assert before <= enqueued.replace(tzinfo=dt.timezone.utc) <= dt.datetime.now(dt.timezone.utc)
    assert seen["locked_until"] is None and seen["time_to_live"] is None
    assert {"MessageId", "DeliveryCount", "SequenceNumber", "EnqueuedTimeUtc", "LockToken",
            "ApplicationProperties", "UserProperties"} <= set(seen["metadata_keys"])
    assert not {"sys", "State", "LockedUntil", "TimeToLive"} & set(seen["metadata_keys"])
    assert seen["invocation_id"]  # the function asked for `context`
    # Completed: nothing left on the queue, nothing locked, nothing dead-lettered.
    view = wait_for(lambda: (v := entity_view(standin, "complete"))["active_count"] + v["locked_count"] == 0 and v)
    assert view["dead_letter_count"] == 0
    assert host.invocations["work"] == {"succeeded": 1, "failed": 0}


def test_exception_abandons_until_max_delivery_count_dead_letters(standin, make_host, record_file, caplog):
    with caplog.at_level(logging.INFO, logger="funchost"):
        host = make_host(["work"], FAST, WORK_QUEUE="poison")
        send(standin, "poison", ServiceBusMessage(body(id="bad", **{"raise": True}), message_id="poison-1"))
        # MaxDeliveryCount 3: three failed invocations, then the broker moves it to the dead-letter queue.
        assert wait_for(lambda: entity_view(standin, "poison")["dead_letter_count"] == 1)
    assert [r["delivery_count"] for r in read_records(record_file, "start")] == [1, 2, 3]
    assert host.invocations["work"] == {"succeeded": 0, "failed": 3}
    assert "Executed 'Functions.work' (Failed, Id=" in caplog.text
    assert "RuntimeError: asked to fail: bad" in caplog.text
    with ServiceBusClient.from_connection_string(standin.connection_string) as client, \
            client.get_queue_receiver("poison", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = dlq.receive_messages(max_wait_time=5)
        assert dead.message_id == "poison-1"
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        dlq.complete_message(dead)


def test_failed_delivery_is_redelivered_and_then_completes(standin, make_host, record_file):
    host = make_host(["work"], FAST, WORK_QUEUE="retry-then-ok")
    send(standin, "retry-then-ok", ServiceBusMessage(body(id="flaky", fail_until_delivery=3)))
    assert wait_for(lambda: host.invocations["work"]["succeeded"] == 1)
    assert [r["delivery_count"] for r in read_records(record_file, "start")] == [1, 2, 3]
    assert host.invocations["work"] == {"succeeded": 1, "failed": 2}
    view = entity_view(standin, "retry-then-ok")
    assert view["active_count"] + view["locked_count"] + view["dead_letter_count"] == 0


def test_lock_is_renewed_while_the_function_runs_past_lock_duration(standin, make_host, record_file):
    # LockDuration is 2 s; the function takes 5 s and must still complete, on its first and only delivery.
    host = make_host(["work"], FAST, WORK_QUEUE="renew")
    send(standin, "renew", ServiceBusMessage(body(id="slow", sleep=5)))
    assert wait_for(lambda: host.invocations["work"]["succeeded"] == 1, timeout=20)
    starts = read_records(record_file, "start")
    assert [r["delivery_count"] for r in starts] == [1]
    time.sleep(2.5)  # past another lock period: a lost lock would have redelivered it by now
    assert len(read_records(record_file, "start")) == 1
    view = entity_view(standin, "renew")
    assert view["active_count"] + view["locked_count"] + view["dead_letter_count"] == 0


def test_max_concurrent_calls_bounds_parallel_invocations(standin, make_host, record_file):
    host = make_host(["work"], {"extensions": {"serviceBus": {"maxConcurrentCalls": 3}}}, WORK_QUEUE="concurrency")
    send(standin, "concurrency", *[ServiceBusMessage(body(id=f"c{i}", sleep=1.0)) for i in range(9)])
    assert wait_for(lambda: host.invocations["work"]["succeeded"] == 9, timeout=30)
    starts = {r["id"]: r["t"] for r in read_records(record_file, "start")}
    ends = {r["id"]: r["t"] for r in read_records(record_file, "end")}
    events = sorted([(t, 1) for t in starts.values()] + [(t, -1) for t in ends.values()], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 3


def test_sessions_in_order_within_a_session_and_in_parallel_across_sessions(standin, make_host, record_file):
    host = make_host(["ordered"], {"extensions": {"serviceBus": {"maxConcurrentSessions": 2,
                                                                  "sessionIdleTimeout": "00:00:01"}}},
                     SESSION_QUEUE="sessions")
    messages = [ServiceBusMessage(body(id=f"{sid}-{n}", sleep=0.3), session_id=sid)
                for n in range(4) for sid in ("alpha", "beta")]
    send(standin, "sessions", *messages)
    assert wait_for(lambda: host.invocations["ordered"]["succeeded"] == 8, timeout=30)
    starts = read_records(record_file, "start")
    ends = {r["id"]: r["t"] for r in read_records(record_file, "end")}
    for sid in ("alpha", "beta"):
        mine = [r for r in starts if r["session_id"] == sid]
        assert [r["id"] for r in mine] == [f"{sid}-{n}" for n in range(4)]  # in order
        assert all(r["locked_until"] is None for r in mine)  # the host sends no LockedUntil, session or not
        for earlier, later in zip(mine, mine[1:]):  # one at a time
            assert ends[earlier["id"]] <= later["t"]
    # Both sessions were being processed at the same time.
    alpha = [(r["t"], ends[r["id"]]) for r in starts if r["session_id"] == "alpha"]
    beta = [(r["t"], ends[r["id"]]) for r in starts if r["session_id"] == "beta"]
    assert any(a0 < b1 and b0 < a1 for a0, a1 in alpha for b0, b1 in beta)
    view = entity_view(standin, "sessions")
    assert view["active_count"] + view["locked_count"] == 0


def test_topic_subscription_trigger(standin, make_host, record_file):
    host = make_host(["subscriber"], FAST, EVENTS_TOPIC="events", EVENTS_SUBSCRIPTION="funcs")
    send(standin, "events", ServiceBusMessage(body(id="evt"), message_id="evt-1"), topic=True)
    assert wait_for(lambda: host.invocations["subscriber"]["succeeded"] == 1)
    assert read_records(record_file, "start")[0]["message_id"] == "evt-1"
    sub = standin.snapshot()["topics"]["events"]["subscriptions"]["funcs"]
    assert sub["active_count"] + sub["locked_count"] == 0


def test_function_timeout_fails_and_abandons(standin, make_host, record_file, caplog):
    with caplog.at_level(logging.INFO, logger="funchost"):
        host = make_host(["work"], {"functionTimeout": "00:00:01", **FAST}, WORK_QUEUE="timeout")
        send(standin, "timeout", ServiceBusMessage(body(id="hang", sleep=3)))
        # Abandoned at once on each timeout, so MaxDeliveryCount 2 dead-letters it after two attempts.
        assert wait_for(lambda: entity_view(standin, "timeout")["dead_letter_count"] == 1, timeout=15)
    assert host.invocations["work"] == {"succeeded": 0, "failed": 2}
    assert [r["delivery_count"] for r in read_records(record_file, "start")] == [1, 2]
    assert "Timeout value of 00:00:01 exceeded by function 'Functions.work'" in caplog.text


def test_app_log_records_carry_the_invocation_id(standin, make_host, record_file):
    captured: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = captured.append
    handler.addFilter(InvocationIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        host = make_host(["work"], FAST, WORK_QUEUE="logs")
        send(standin, "logs", ServiceBusMessage(body(id="traced")))
        assert wait_for(lambda: host.invocations["work"]["succeeded"] == 1)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    [executing] = [r for r in captured if r.getMessage().startswith("Executing 'Functions.work'")]
    # The app logged in the worker process; its record reached the host as an RpcLog of the invocation, and the
    # host logs it under the invocation's category, as the Functions host does.
    [app_line] = [r for r in captured if getattr(r, "worker_category", None) == "sample_app"]
    assert app_line.name == "Function.work.User" and app_line.getMessage() == "handling traced"
    assert app_line.invocation_id == executing.invocation_id == read_records(record_file, "start")[0]["invocation_id"]
    assert app_line.function_name == "work"
    assert any(r.getMessage().startswith("Trigger Details: MessageId: ") for r in captured)


def test_host_keeps_retrying_until_the_namespace_is_reachable(record_file, make_host, caplog):
    # The namespace is down when the host starts (nothing listens on the port yet); the host must keep
    # retrying with backoff and pick the messages up once a stand-in comes up on that port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    late = ServiceBusStandIn(STANDIN_CONFIG, port=port)
    with caplog.at_level(logging.INFO, logger="funchost"):
        # clientRetryOptions shortens the SDK's own retries (3 x 0.8 s exponential = 11 s before it gives up).
        retry = {"maxRetries": 1, "delay": "00:00:00.1", "maxDelay": "00:00:01"}
        host = make_host(["work"], {"extensions": {"serviceBus": {"maxConcurrentCalls": 1,
                                                                  "clientRetryOptions": retry}}},
                         connection_string=late_connection_string(port), WORK_QUEUE="reconnect")
        assert wait_for(lambda: "is unreachable" in caplog.text, timeout=10)
        late.start()
        try:
            send(late, "reconnect", ServiceBusMessage(body(id="late")))
            assert wait_for(lambda: host.invocations["work"]["succeeded"] == 1, timeout=30)
            assert "reachable again" in caplog.text
        finally:
            host.stop(5)
            late.stop()


def late_connection_string(port: int) -> str:
    return (f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true")


def test_stop_waits_for_running_invocations(standin, make_host, record_file):
    host = make_host(["work"], FAST, WORK_QUEUE="complete")
    send(standin, "complete", ServiceBusMessage(body(id="finishing", sleep=1.5)))
    assert wait_for(lambda: read_records(record_file, "start"))
    stopper = threading.Thread(target=host.stop, args=(10,))
    stopper.start()
    stopper.join(15)
    assert host.invocations["work"] == {"succeeded": 1, "failed": 0}
    view = entity_view(standin, "complete")
    assert view["active_count"] + view["locked_count"] == 0
