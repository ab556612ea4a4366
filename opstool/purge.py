"""Purge: remove dead-lettered messages for good, but only after they are safe in an export file.

The export (``export_file.write_export``) is written, flushed and fsync'd, together with its directory, before the
first message is received; a failure to write it ends the command before anything is removed.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from .dead_letters import DeadLetter
from .errors import FailureStreak
from .locked_receive import RETRY, SETTLED, keep_lock
from .results import Result, describe_error


class Purger:
    """``handle`` for :func:`~opstool.locked_receive.receive_selected`: complete (the export was written first)."""

    def __init__(self, receiver: Any, report):
        self.receiver, self.report = receiver, report
        self.streak = FailureStreak()

    def __call__(self, msg: Any, received_at: dt.datetime) -> str:
        if not keep_lock(self.receiver, msg, received_at):
            return RETRY
        dl = DeadLetter.from_message(msg)
        base = dict(sequence_number=dl.sequence_number, message_id=dl.message_id, customer_id=dl.event.customer_id,
                    event_type=dl.event.event_type)
        try:
            self.receiver.complete_message(msg)
        except Exception as exc:
            self.streak.failed(exc)
            self.report(Result(**base, result="failed", detail=f"could not be removed ({describe_error(exc)})"))
            return SETTLED
        self.streak.succeeded()
        self.report(Result(**base, result="purged"))
        return SETTLED
