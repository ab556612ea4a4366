"""A tiny app for the funchost tests: each function appends what it saw to $RECORD_FILE (JSON lines).

A Service Bus message body is JSON; ``{"raise": true}`` makes the function fail, ``{"sleep": 2.5}`` makes it take
that long, ``{"fail_until_delivery": 3}`` fails the first deliveries only.
"""
import json
import logging
import os
import threading
import time

import azure.functions as func
import azurefunctions.extensions.bindings.servicebus as servicebus

app = func.FunctionApp()
log = logging.getLogger("sample_app")
_write_lock = threading.Lock()


def record(**fields) -> None:
    fields.setdefault("t", time.time())
    line = json.dumps(fields, default=str)
    with _write_lock, open(os.environ["RECORD_FILE"], "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _handle(function_name: str, msg: func.ServiceBusMessage, context: func.Context | None = None) -> None:
    body = json.loads(msg.get_body() or b"{}")
    seen = {
        "fn": function_name, "id": body.get("id"), "message_id": msg.message_id,
        "delivery_count": msg.delivery_count, "session_id": msg.session_id, "sequence_number": msg.sequence_number,
        "correlation_id": msg.correlation_id, "content_type": msg.content_type, "subject": msg.subject,
        "label": msg.label, "application_properties": msg.application_properties,
        "enqueued_time_utc": msg.enqueued_time_utc, "locked_until": msg.locked_until, "lock_token": msg.lock_token,
        "expires_at_utc": msg.expires_at_utc, "time_to_live": msg.time_to_live, "reply_to": msg.reply_to,
        "to": msg.to, "metadata_keys": sorted((msg.metadata or {}).keys()),
        "invocation_id": context.invocation_id if context else None,
        "thread": threading.current_thread().name,
    }
    record(event="start", **seen)
    log.info("handling %s", body.get("id"))
    if body.get("sleep"):
        time.sleep(float(body["sleep"]))
    if body.get("raise") or (msg.delivery_count or 0) < int(body.get("fail_until_delivery", 0)):
        record(event="raise", fn=function_name, id=body.get("id"), delivery_count=msg.delivery_count)
        raise RuntimeError(f"asked to fail: {body.get('id')}")
    record(event="end", fn=function_name, id=body.get("id"), delivery_count=msg.delivery_count)


@app.function_name("work")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="ServiceBusConnection")
def work(msg: func.ServiceBusMessage, context: func.Context) -> None:
    _handle("work", msg, context)


@app.function_name("ordered")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%SESSION_QUEUE%", connection="ServiceBusConnection",
                               is_sessions_enabled=True)
def ordered(msg: func.ServiceBusMessage) -> None:
    _handle("ordered", msg)


@app.function_name("subscriber")
@app.service_bus_topic_trigger(arg_name="msg", topic_name="%EVENTS_TOPIC%", subscription_name="%EVENTS_SUBSCRIPTION%",
                               connection="ServiceBusConnection")
def subscriber(msg: func.ServiceBusMessage) -> None:
    _handle("subscriber", msg)


@app.function_name("tick")
@app.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%", run_on_startup=False, use_monitor=False)
def tick(timer: func.TimerRequest) -> None:
    record(event="tick", fn="tick", past_due=timer.past_due, schedule_status=timer.schedule_status)


@app.function_name("settle")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%SETTLE_QUEUE%", connection="ServiceBusConnection",
                               auto_complete_messages=False)
def settle(msg: func.ServiceBusMessage, message_actions: servicebus.ServiceBusMessageActions) -> None:
    """Settles as the body says, per delivery: ``{"actions": ["none", "deadletter"]}`` leaves the first delivery
    unsettled and dead-letters the second; ``"raise"`` raises, ``"twice"`` dead-letters then completes."""
    body = json.loads(msg.get_body() or b"{}")
    actions = body.get("actions", ["complete"])
    action = actions[min((msg.delivery_count or 1) - 1, len(actions) - 1)]
    record(event="start", fn="settle", id=body.get("id"), delivery_count=msg.delivery_count, action=action,
           actions_type=type(message_actions).__name__,
           is_actions=isinstance(message_actions, servicebus.ServiceBusMessageActions))
    if action == "deadletter":
        message_actions.deadletter(msg, deadletter_reason=body.get("reason"),
                                   deadletter_error_description=body.get("description"))
    elif action in ("complete", "abandon", "defer", "renew_message_lock"):
        getattr(message_actions, action)(msg)
        if action == "renew_message_lock":
            message_actions.complete(msg)
    elif action == "twice":
        message_actions.deadletter(msg, deadletter_reason="First")
        try:
            message_actions.complete(msg)
        except Exception as e:  # noqa: BLE001 - the test reads what was raised
            record(event="second-settlement", fn="settle", id=body.get("id"), error=type(e).__name__,
                   method=getattr(e, "method", None))
    elif action == "raise":
        raise RuntimeError(f"asked to fail: {body.get('id')}")
    record(event="end", fn="settle", id=body.get("id"), delivery_count=msg.delivery_count)
