"""The timer trigger listener: fire on the NCRONTAB (or interval) schedule, one invocation at a time.

As in the host, a timer never overlaps itself: the next occurrence is computed after an invocation returns, so
occurrences missed while it ran are skipped. ``runOnStartup`` fires once when the host starts.
``past_due`` is true when an occurrence fires more than a second late (for instance after the machine slept);
the host also sets it after downtime using a schedule monitor persisted in storage (``useMonitor``), which this
host does not keep, so that case is never reported here.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from azure.functions.timer import TimerRequest

from .bindings import TimerTarget
from .invocation import Invoker

log = logging.getLogger("funchost.timer")

PAST_DUE_TOLERANCE = dt.timedelta(seconds=1)


def _dotnet_local(value: dt.datetime) -> str:
    aware = value.astimezone()  # naive local -> aware local
    offset = aware.strftime("%z")
    return aware.strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond:06d}0{offset[:3]}:{offset[3:]}"


class TimerListener:
    def __init__(self, target: TimerTarget, invoker: Invoker, stopping: threading.Event) -> None:
        self.target = target
        self.invoker = invoker
        self.stopping = stopping
        self.name = target.function.name
        self._thread: threading.Thread | None = None
        self.last: dt.datetime | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"timer-{self.name}", daemon=True)
        self._thread.start()

    def join(self, deadline: float) -> bool:
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            return not self._thread.is_alive()
        return True

    def close(self) -> None:
        pass

    def _run(self) -> None:
        schedule = self.target.schedule
        now = dt.datetime.now()
        log.info("Functions.%s: timer schedule '%s', next occurrence %s", self.name, schedule.expression,
                 schedule.next_after(now).isoformat(sep=" "))
        if self.target.run_on_startup:
            self._fire(now, now)
        due = schedule.next_after(dt.datetime.now())
        while not self.stopping.is_set():
            remaining = (due - dt.datetime.now()).total_seconds()
            if remaining > 0:
                self.stopping.wait(min(remaining, 1.0))  # re-check the wall clock now and then (clock changes)
                continue
            self._fire(due, dt.datetime.now())
            due = schedule.next_after(max(due, dt.datetime.now()))

    def _fire(self, scheduled: dt.datetime, now: dt.datetime) -> None:
        try:
            following = self.target.schedule.next_after(now)
            request = TimerRequest(
                past_due=now - scheduled > PAST_DUE_TOLERANCE,
                schedule_status={"Last": (self.last or scheduled).isoformat(), "Next": following.isoformat(),
                                 "LastUpdated": now.isoformat()},
                schedule={"AdjustForDST": True})
            function = self.target.function

            def arguments(context):
                kwargs = {function.param_name: request}
                if function.wants_context:
                    kwargs["context"] = context
                return kwargs

            self.invoker.invoke(self.name, function.user_function, arguments,
                                reason=f"Timer fired at {_dotnet_local(now)}", details=[])
            self.last = scheduled
        except Exception:  # the invoker reports function errors; this is a host bug guard, never fatal
            log.exception("Functions.%s: timer invocation could not run", self.name)
