"""The conformance tests' app: each function writes what Microsoft's worker library handed it to $RECORD_FILE, one
JSON line per invocation, in a form the test compares with what the .NET host would have sent."""
import base64
import datetime as dt
import json
import os
import threading
import typing

import azure.functions as func
import azurefunctions.extensions.bindings.servicebus as servicebus

app = func.FunctionApp()
_lock = threading.Lock()


def _plain(value):
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (dt.datetime, dt.timedelta)):
        return {"repr": repr(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _message(msg: func.ServiceBusMessage) -> dict:
    fields = ("message_id", "delivery_count", "lock_token", "session_id", "content_type", "correlation_id",
              "subject", "label", "sequence_number", "enqueued_time_utc", "expires_at_utc", "locked_until",
              "time_to_live", "reply_to", "to", "partition_key", "application_properties", "user_properties",
              "dead_letter_source")
    seen = {name: _plain(getattr(msg, name)) for name in fields}
    seen["body"] = _plain(msg.get_body())
    seen["metadata_keys"] = sorted((msg.metadata or {}).keys())
    return seen


def record(**fields) -> None:
    with _lock, open(os.environ["RECORD_FILE"], "a", encoding="utf-8") as f:
        f.write(json.dumps(fields) + "\n")


@app.function_name("single")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="conf-single", connection="ServiceBusConnection")
def single(msg: func.ServiceBusMessage) -> None:
    record(fn="single", **_message(msg))


@app.function_name("sessions")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="conf-session", connection="ServiceBusConnection",
                               is_sessions_enabled=True)
def sessions(msg: func.ServiceBusMessage) -> None:
    record(fn="sessions", **_message(msg))


@app.function_name("batch")
@app.service_bus_queue_trigger(arg_name="msgs", queue_name="conf-batch", connection="ServiceBusConnection",
                               cardinality="many")
def batch(msgs: typing.List[func.ServiceBusMessage]) -> None:  # noqa: UP006 - the library refuses list[...]
    record(fn="batch", messages=[_message(m) for m in msgs])


@app.function_name("settling")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="conf-settle", connection="ServiceBusConnection",
                               auto_complete_messages=False)
def settling(msg: func.ServiceBusMessage, message_actions: servicebus.ServiceBusMessageActions) -> None:
    """``{"do": "raise" | "twice" | "nothing" | "deadletter"}``: what the function does with its message."""
    body = json.loads(msg.get_body())
    outcome = {"fn": "settling", "do": body["do"], "delivery_count": msg.delivery_count,
               "message_id": msg.message_id, "actions": type(message_actions).__module__}
    try:
        if body["do"] == "raise":
            record(**outcome)
            raise RuntimeError("asked to raise")
        if body["do"] == "deadletter":
            message_actions.deadletter(msg, deadletter_reason="Conformance", deadletter_error_description="asked")
        if body["do"] == "twice":
            message_actions.deadletter(msg, deadletter_reason="First")
            message_actions.complete(msg)
    except servicebus.serviceBusMessageActions.SettlementError as exc:
        outcome["error"] = {"method": exc.method, "original": type(exc.original).__name__,
                            "status": str(getattr(exc.original, "code", lambda: None)())}
    record(**outcome)


@app.function_name("clock")
@app.timer_trigger(arg_name="timer", schedule="%CLOCK_SCHEDULE%", run_on_startup=False, use_monitor=True)
def clock(timer: func.TimerRequest) -> None:
    record(fn="clock", past_due=timer.past_due, schedule_status=_plain(timer.schedule_status),
           schedule=_plain(timer.schedule))
