"""Message settlement from the function: a ``ServiceBusMessageActions`` parameter, ``autoCompleteMessages`` off.

The host must behave as the Functions host with the Python worker does: detect the parameter by its type, hand the
function an object that settles with the receiver that delivered the message, settle nothing the function settled,
let the lock lapse when the function returned without settling, and abandon when it raised.
"""
from __future__ import annotations

import uuid

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue

from funchost import LocalFunctionsHost
from host_helpers import UNBOUND_APP, body, read_records, send, wait_for

pytestmark = pytest.mark.timeout(60)

QUEUE = "settle"
FAST = {"version": "2.0", "extensions": {"serviceBus": {"maxConcurrentCalls": 2}}}


def _dead_letter(standin, message_id: str):
    with ServiceBusClient.from_connection_string(standin.connection_string) as client, \
            client.get_queue_receiver(QUEUE, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        return next((m for m in dlq.peek_messages(max_message_count=100) if m.message_id == message_id), None)


def _send(standin, **fields) -> str:
    message_id = f"settle-{uuid.uuid4().hex[:8]}"
    send(standin, QUEUE, ServiceBusMessage(body(id=message_id, **fields), message_id=message_id))
    return message_id


def _starts(record_file, message_id: str) -> list[dict]:
    return [r for r in read_records(record_file, "start") if r["id"] == message_id]


def _queue_empty(standin) -> bool:
    view = standin.snapshot()["queues"][QUEUE]
    return view["active_count"] + view["locked_count"] == 0


def test_deadletter_with_a_reason_on_the_first_delivery(standin, make_host, record_file):
    host = make_host(["settle"], FAST, SETTLE_QUEUE=QUEUE)
    mid = _send(standin, actions=["deadletter"], reason="InvalidEvent", description="data.profile: is required")
    dead = wait_for(lambda: _dead_letter(standin, mid))
    assert dead is not None
    assert (dead.dead_letter_reason, dead.dead_letter_error_description) == ("InvalidEvent",
                                                                             "data.profile: is required")
    [start] = _starts(record_file, mid)  # dead-lettered by the function on its first delivery, never redelivered
    assert start["delivery_count"] == 1
    # The worker's settlement client type, detected from the annotation like the worker does.
    assert start["is_actions"] is True
    assert host.invocations["settle"] == {"succeeded": 1, "failed": 0}


def test_complete_removes_the_message_and_nothing_is_settled_twice(standin, make_host, record_file):
    host = make_host(["settle"], FAST, SETTLE_QUEUE=QUEUE)
    done = _send(standin, actions=["complete"])
    renewed = _send(standin, actions=["renew_message_lock"])
    twice = _send(standin, actions=["twice"])
    assert wait_for(lambda: host.invocations["settle"]["succeeded"] == 3)
    assert wait_for(lambda: _queue_empty(standin))
    assert [len(_starts(record_file, m)) for m in (done, renewed, twice)] == [1, 1, 1]
    # A second settlement of one message fails in the function, with the package's error, as under Azure.
    [second] = [r for r in read_records(record_file, "second-settlement") if r["id"] == twice]
    assert (second["error"], second["method"]) == ("SettlementError", "complete")
    assert _dead_letter(standin, twice).dead_letter_reason == "First"


def test_returning_without_settling_leaves_the_message_to_its_lock(standin, make_host, record_file):
    # autoCompleteMessages off: the host does not complete it; the 2 s lock lapses and it comes back.
    host = make_host(["settle"], FAST, SETTLE_QUEUE=QUEUE)
    mid = _send(standin, actions=["none", "complete"])
    assert wait_for(lambda: len(_starts(record_file, mid)) == 2, timeout=20)
    assert [r["delivery_count"] for r in _starts(record_file, mid)] == [1, 2]
    assert wait_for(lambda: _queue_empty(standin))
    assert host.invocations["settle"]["failed"] == 0


def test_raising_abandons_so_max_delivery_count_stays_the_backstop(standin, make_host, record_file):
    host = make_host(["settle"], FAST, SETTLE_QUEUE=QUEUE)
    mid = _send(standin, actions=["raise"])
    dead = wait_for(lambda: _dead_letter(standin, mid), timeout=30)
    assert dead is not None and dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert [r["delivery_count"] for r in _starts(record_file, mid)] == [1, 2, 3]
    assert host.invocations["settle"] == {"succeeded": 0, "failed": 3}


def test_abandon_and_defer_from_the_function(standin, make_host, record_file):
    make_host(["settle"], FAST, SETTLE_QUEUE=QUEUE)
    abandoned = _send(standin, actions=["abandon", "complete"])
    deferred = _send(standin, actions=["defer"])
    assert wait_for(lambda: [r["delivery_count"] for r in _starts(record_file, abandoned)] == [1, 2])
    assert wait_for(lambda: len(_starts(record_file, deferred)) == 1)
    with ServiceBusClient.from_connection_string(standin.connection_string) as client, \
            client.get_queue_receiver(QUEUE) as receiver:
        found = wait_for(lambda: [m for m in receiver.peek_messages(max_message_count=100) if m.message_id == deferred])
        assert found and found[0].state.name == "DEFERRED"
        [msg] = receiver.receive_deferred_messages([found[0].sequence_number])
        receiver.complete_message(msg)


def test_an_unbound_parameter_that_is_not_a_settlement_client_fails_the_whole_apps_indexing(standin, record_file):
    # Microsoft's worker library refuses the function (FunctionLoadError) while it indexes the app, and the host
    # then runs none of the app's functions: not even the good ones, as under Azure.
    host = LocalFunctionsHost(UNBOUND_APP, {"ServiceBusConnection": standin.connection_string,
                                            "SETTLE_QUEUE": QUEUE, "RECORD_FILE": str(record_file)},
                              host_json=FAST, poll_interval=0.5).start()
    try:
        assert "declared in Python but not in the function definition" in host.index_error
        assert "'extra'" in host.index_error and host.functions == []
    finally:
        host.stop(5)
