"""Replay: a dead-lettered message goes back to its queue as a copy, then leaves the dead-letter queue.

Order per message: lock it (peek-lock receive), send the copy, then complete the dead-lettered one. A crash or a
failure between the send and the complete leaves the message in the dead-letter queue *and* the copy in the queue:
a duplicate, never a loss. The app absorbs duplicates by event id (the ledger's audit row), and the copy's message
id is derived from the dead-lettered message (below), so replaying the same message again sends a copy with the
same id, which the queue's duplicate detection drops when it is on.

The copy keeps the body, correlation id, content type, subject, session id, reply-to, reply-to session id, "to"
and the application properties, without ``DeadLetterReason``/``DeadLetterErrorDescription``. It gets:

- a NEW message id: with duplicate detection on, a copy carrying the original id would be dropped as a duplicate
  of the original for the whole detection window (10 minutes by default). The id is a UUID 5 of the queue, the
  dead-lettered message's sequence number, the original message id and the new replay count: stable across
  re-runs for the same dead-lettered message, different for every other one;
- ``replay-original-message-id``: the sender's message id (kept from an earlier replay, or taken from the app's
  ``retry-original-message-id`` when the dead-lettered message is one of the app's retry copies);
- ``replay-count``: one more than the dead-lettered message had.

The app's own retry budget properties (``retry-attempt``, ``retry-first-attempt-utc``, ``retry-original-message-id``,
see APP_RETRY_BUDGET_PROPERTIES) are dropped, so the replayed event starts a fresh budget: after a fix, a passing
hiccup (a replayed duplicate racing its twin for the customer's claim, a last 503) is retried with backoff instead of
going straight back to the dead-letter queue. (Kept, they would count for nothing: the app trusts retry properties
only on a copy whose message id it derived from them, and a replayed copy has a new id.)

Not carried: the time-to-live (the queue's default applies from the moment of the replay) and the broker's
annotations (sequence number, enqueued time: the copy gets new ones).
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
from typing import Any, Mapping

from shared.domain import retry_policy as rp

from .dead_letters import DEAD_LETTER_PROPERTIES, REPLAY_COUNT, REPLAY_ORIGINAL_MESSAGE_ID, DeadLetter
from .errors import FailureStreak
from .locked_receive import HOLD, RETRY, SETTLED, keep_lock
from .results import Result, describe_error

#: the namespace of the replayed copies' message ids (a UUID 5 namespace: any fixed UUID does)
REPLAY_ID_NAMESPACE = uuid.UUID("6f0c9b5e-2d3a-5c1e-9a47-0b8e4f1d2c73")
#: test hook: ``OPSTOOL_CRASH_AFTER_SEND=N`` makes the process exit at once after the Nth copy was sent
CRASH_ENV = "OPSTOOL_CRASH_AFTER_SEND"
CRASH_EXIT_CODE = 99


def replay_message_id(queue: str, dl: DeadLetter) -> str:
    name = f"opstool-replay|{queue}|{dl.sequence_number}|{dl.original_message_id or ''}|{dl.replay_count + 1}"
    return str(uuid.uuid5(REPLAY_ID_NAMESPACE, name))


#: the app's retry budget (shared/domain/retry_policy.py), dropped from every copy; all three go
#: together: the app derives its retry copies' ids from ``retry-original-message-id`` and the attempt, and
#: restarting the attempt count under the old original id would reuse ids that duplicate detection may still remember
APP_RETRY_BUDGET_PROPERTIES = (rp.ATTEMPT_PROPERTY, rp.FIRST_ATTEMPT_PROPERTY, rp.ORIGINAL_ID_PROPERTY)


def copy_properties(dl: DeadLetter) -> dict[str, Any]:
    dropped = DEAD_LETTER_PROPERTIES + APP_RETRY_BUDGET_PROPERTIES
    props = {k: v for k, v in dl.application_properties.items() if k not in dropped}
    if dl.original_message_id:
        props[REPLAY_ORIGINAL_MESSAGE_ID] = dl.original_message_id
    props[REPLAY_COUNT] = dl.replay_count + 1
    return props


def build_copy(dl: DeadLetter, queue: str) -> Any:
    """The message to send: a ServiceBusMessage for a data body (what every sender of this queue uses), an
    AmqpAnnotatedMessage for the rare value or sequence body."""
    from azure.servicebus import ServiceBusMessage
    from azure.servicebus.amqp import AmqpAnnotatedMessage, AmqpMessageProperties

    message_id = replay_message_id(queue, dl)
    props = copy_properties(dl)
    for name, value in props.items():
        if isinstance(value, bytes):
            # azure-servicebus sends every bytes property value as UTF-8 text: a binary one cannot be carried over.
            raise ValueError(f"application property {name!r} holds binary data, which azure-servicebus cannot send; "
                             f"export the message and re-send it by other means")
    if dl.body is not None:
        return ServiceBusMessage(
            dl.body, message_id=message_id, correlation_id=dl.correlation_id, content_type=dl.content_type,
            subject=dl.subject, session_id=dl.session_id, reply_to=dl.reply_to,
            reply_to_session_id=dl.reply_to_session_id, to=dl.to, application_properties=props)
    properties = AmqpMessageProperties(
        message_id=message_id, correlation_id=dl.correlation_id, content_type=dl.content_type, subject=dl.subject,
        group_id=dl.session_id, reply_to=dl.reply_to, reply_to_group_id=dl.reply_to_session_id, to=dl.to)
    body = {"value_body": dl.body_value} if dl.body_type == "value" else {"sequence_body": dl.body_value}
    return AmqpAnnotatedMessage(properties=properties, application_properties=props, **body)


class CrashHook:
    """Simulates the process dying between the send and the complete (a test hook, see the runbook)."""

    def __init__(self, values: Mapping[str, str]):
        raw = (values.get(CRASH_ENV) or "").strip()
        self.after = int(raw) if raw.isdigit() and int(raw) > 0 else None
        self.sent = 0

    def after_send(self) -> None:
        self.sent += 1
        if self.after is not None and self.sent >= self.after:
            sys.stdout.flush()
            sys.stderr.write(f"{CRASH_ENV}={self.after}: exiting hard after sending a copy, before completing "
                             f"the dead-lettered message (test hook)\n")
            sys.stderr.flush()
            os._exit(CRASH_EXIT_CODE)


class Replayer:
    """``handle`` for :func:`~opstool.locked_receive.receive_selected`: send the copy, then complete."""

    def __init__(self, receiver: Any, sender: Any, queue: str, report, *, crash: CrashHook | None = None):
        self.receiver, self.sender, self.queue = receiver, sender, queue
        self.report = report           # called with each Result
        self.streak = FailureStreak()  # re-raises the errors that end the run
        self.crash = crash or CrashHook({})

    def __call__(self, msg: Any, received_at: dt.datetime) -> str:
        if not keep_lock(self.receiver, msg, received_at):
            return RETRY  # nothing sent yet: receive it again
        dl = DeadLetter.from_message(msg)
        base = dict(sequence_number=dl.sequence_number, message_id=dl.message_id, customer_id=dl.event.customer_id,
                    event_type=dl.event.event_type)
        copy_id = replay_message_id(self.queue, dl)
        try:
            self.sender.send_messages(build_copy(dl, self.queue))
        except Exception as exc:
            self.streak.failed(exc)
            self.report(Result(**base, result="failed",
                               detail=f"the copy could not be sent ({describe_error(exc)}); the message stays in the "
                                      f"dead-letter queue unchanged"))
            return HOLD
        self.crash.after_send()
        try:
            self.receiver.complete_message(msg)
        except Exception as exc:
            self.streak.failed(exc)
            self.report(Result(**base, result="failed", new_message_id=copy_id, replay_count=dl.replay_count + 1,
                               detail=f"the copy was sent as {copy_id} but the dead-lettered message could not be "
                                      f"completed ({describe_error(exc)}): it is still in the dead-letter queue; replay "
                                      f"it again (the new copy has the same message id, and the app absorbs a "
                                      f"duplicate event)"))
            return SETTLED  # its lock is gone or the message with it: nothing to abandon
        self.streak.succeeded()
        self.report(Result(**base, result="replayed", new_message_id=copy_id, replay_count=dl.replay_count + 1))
        return SETTLED
