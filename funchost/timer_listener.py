"""The timer trigger listener: fire on the NCRONTAB (or interval) schedule, one invocation at a time.

As in the host, a timer never overlaps itself: the next occurrence is computed after an invocation returns, so
occurrences missed while it ran are skipped. ``runOnStartup`` fires once when the host starts.
``past_due`` is true when an occurrence fires more than a second late (for instance after the machine slept),
and for the one catch-up run after downtime: with ``useMonitor`` the host keeps each timer's schedule status
(Last, Next, LastUpdated; in Azure a blob in AzureWebJobsStorage, here a JSON file in the host's state folder) and,
when it starts and the stored Next has passed, invokes the function once at once with ``IsPastDue`` true. The
status it sends is the stored one (``0001-01-01`` for Last and LastUpdated before the first run); without
``useMonitor`` it sends none. The TimerInfo goes to the worker as the host serialises
it (``funchost.invocation_data.timer_info``); the worker library makes the ``func.TimerRequest`` of it.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from pathlib import Path

from . import invocation_data
from .bindings import TimerTarget
from .invocation import Invoker
from .schedules import CronSchedule
from .servicebus_listener import new_trace_context

log = logging.getLogger("funchost.timer")

PAST_DUE_TOLERANCE = dt.timedelta(seconds=1)
#: default(DateTime): what a schedule monitor holds for Last and LastUpdated before the first run
NEVER = dt.datetime(1, 1, 1)


def _dotnet_local(value: dt.datetime) -> str:
    aware = value.astimezone()  # naive local -> aware local
    offset = aware.strftime("%z")
    return aware.strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond:06d}0{offset[:3]}:{offset[3:]}"


class ScheduleMonitor:
    """One timer's schedule status in a JSON file (the host's blob ``timers/<host>/<function>/status``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self) -> dict[str, dt.datetime] | None:
        try:
            raw = json.loads(self.path.read_text())
            return {key: dt.datetime.fromisoformat(raw[key]) for key in ("Last", "Next", "LastUpdated")}
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def set(self, status: dict[str, dt.datetime]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({key: value.isoformat() for key, value in status.items()}))
        tmp.replace(self.path)


class TimerListener:
    def __init__(self, target: TimerTarget, invoker: Invoker, stopping: threading.Event,
                 monitor: ScheduleMonitor | None = None) -> None:
        self.target = target
        self.invoker = invoker
        self.stopping = stopping
        self.name = target.function.name
        self._thread: threading.Thread | None = None
        self.monitor = monitor if target.use_monitor else None

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
        stored = self.monitor.get() if self.monitor else None
        if stored is not None and stored["Next"] < now - PAST_DUE_TOLERANCE:
            log.info("Functions.%s: the occurrence due %s was missed; running it now (past due)", self.name,
                     stored["Next"].isoformat(sep=" "))
            self._fire(stored["Next"], now)
        elif self.target.run_on_startup:
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
            # ScheduleStatus is what the schedule monitor keeps; without useMonitor the host sends null.
            status = None
            if self.monitor is not None:
                status = self.monitor.get() or {"Last": NEVER, "Next": following, "LastUpdated": NEVER}
            info = invocation_data.timer_info(now - scheduled > PAST_DUE_TOLERANCE, status,
                                              adjust_for_dst=isinstance(self.target.schedule, CronSchedule))
            function, protos = self.target.function, self.invoker.channel.protos

            def request(invocation_id: str):
                return protos.InvocationRequest(
                    invocation_id=invocation_id, function_id=function.function_id,
                    input_data=[protos.ParameterBinding(name=function.param_name, data=protos.TypedData(json=info))],
                    trigger_metadata={"TimerTrigger": protos.TypedData(string=invocation_data.timer_metadata(now))},
                    trace_context=new_trace_context(protos))

            self.invoker.invoke(self.name, request, reason=f"Timer fired at {_dotnet_local(now)}", details=[])
            if self.monitor is not None:
                self.monitor.set({"Last": now, "Next": following, "LastUpdated": now})
        except Exception:  # the invoker reports function errors; this is a host bug guard, never fatal
            log.exception("Functions.%s: timer invocation could not run", self.name)
