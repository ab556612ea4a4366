"""Running one function invocation the way the Functions host and the Python worker do.

- Logs ``Executing 'Functions.<name>' (Reason=..., Id=<uuid>)``, the trigger details, then ``Executed ...
  (Succeeded|Failed, Id=..., Duration=<n>ms)``; a failure carries the exception and its traceback.
- Sync functions run on the worker's thread pool, whose size is ``PYTHON_THREADPOOL_THREAD_COUNT`` or Python's
  ThreadPoolExecutor default (min(32, cpus + 4)); invocations the host has dispatched wait there for a thread,
  and that wait counts against the function timeout as it does in the worker. ``async def`` functions run on an
  event loop instead and are not limited by that pool.
- ``functionTimeout``: the host fails the invocation ("Timeout value of ... exceeded"), and its caller abandons
  the message. A Python thread cannot be cancelled, so the function's thread keeps running in the background
  (the real host recycles the worker process); it is logged and left alone.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import azure.functions as func

from .logs import current_invocation, dotnet_timespan, invocation_thread_local

log = logging.getLogger("funchost.function")

SUCCEEDED, FAILED, TIMED_OUT, ABORTED = "succeeded", "failed", "timed_out", "aborted"


@dataclass
class InvocationResult:
    invocation_id: str
    status: str
    error: BaseException | None = None
    duration_ms: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED


class _TraceContext:
    """No distributed tracing locally: empty W3C trace context, as the worker passes without one."""

    def __init__(self) -> None:
        self.trace_parent = ""
        self.trace_state = ""
        self.attributes: dict[str, str] = {}


class InvocationContext(func.Context):
    """What the worker passes as a ``context`` parameter."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def thread_local_storage(self):
        return invocation_thread_local

    @property
    def trace_context(self):
        return _TraceContext()

    @property
    def retry_context(self):
        return None  # no retry policy applies to Service Bus or timer triggers here


def worker_thread_count(environ=os.environ) -> int:
    value = environ.get("PYTHON_THREADPOOL_THREAD_COUNT")
    if value:
        try:
            if int(value) >= 1:
                return int(value)
        except ValueError:
            pass
        log.warning("PYTHON_THREADPOOL_THREAD_COUNT must be an integer >= 1; using the default")
    return min(32, (os.cpu_count() or 1) + 4)


class Invoker:
    """Runs invocations for every trigger of one host, and counts their outcomes."""

    def __init__(self, function_timeout: float | None, worker_threads: int, function_directory: str,
                 abort: threading.Event) -> None:
        self.function_timeout = function_timeout
        self.function_directory = function_directory
        self._worker_slots = threading.BoundedSemaphore(worker_threads)
        self._stacks_shown: dict[tuple[str, str], tuple[str, float]] = {}
        self._abort = abort  # set when the host gives up waiting for running invocations at shutdown
        self._lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = {}
        self.orphaned_threads = 0  # timed-out invocations whose thread is still running

    def register(self, function_name: str) -> None:
        self.counts.setdefault(function_name, {"succeeded": 0, "failed": 0})

    def invoke(self, function_name: str, user_function: Callable[..., Any],
               build_kwargs: Callable[[InvocationContext], dict[str, Any]], reason: str,
               details: list[str]) -> InvocationResult:
        invocation_id = str(uuid.uuid4())
        extra = {"invocation_id": invocation_id, "function_name": function_name}
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function_name, reason, invocation_id, extra=extra)
        for line in details:
            log.info("%s", line, extra=extra)

        started = time.monotonic()
        done = threading.Event()
        outcome: dict[str, Any] = {}
        context = InvocationContext(invocation_id, function_name, self.function_directory)
        is_coroutine = asyncio.iscoroutinefunction(user_function)

        def run() -> None:
            current_invocation.set((function_name, invocation_id))
            invocation_thread_local.invocation_id = invocation_id
            try:
                kwargs = build_kwargs(context)
                if is_coroutine:
                    asyncio.run(user_function(**kwargs))
                else:
                    with self._worker_slots:
                        user_function(**kwargs)
            except BaseException as e:  # the host reports anything the function raises, SystemExit included
                outcome["error"] = e
            finally:
                invocation_thread_local.invocation_id = None
                done.set()

        # A fresh context per invocation: the invocation id must not leak between invocations of one slot.
        thread = threading.Thread(target=contextvars.Context().run, args=(run,), daemon=True,
                                  name=f"invocation-{function_name}-{invocation_id[:8]}")
        thread.start()

        deadline = None if self.function_timeout is None else started + self.function_timeout
        while not done.is_set():
            if self._abort.is_set():
                log.warning("Functions.%s (Id=%s) was still running when the host stopped; left unfinished",
                            function_name, invocation_id, extra=extra)
                return InvocationResult(invocation_id, ABORTED, None, _ms(started))
            wait = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if wait <= 0:
                return self._timed_out(function_name, invocation_id, started, extra)
            done.wait(wait)

        error = outcome.get("error")
        duration = _ms(started)
        if error is None:
            self._count(function_name, "succeeded")
            log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", function_name, invocation_id,
                     duration, extra=extra)
            return InvocationResult(invocation_id, SUCCEEDED, None, duration)
        self._count(function_name, "failed")
        log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n"
                  "Exception while executing function: Functions.%s. Result: Failure\n"
                  "Exception: %s: %s\nStack: %s", function_name, invocation_id, duration, function_name,
                  type(error).__name__, error,
                  self._stack_text(function_name, invocation_id, _user_traceback(error)),
                  extra=extra)
        return InvocationResult(invocation_id, FAILED, error, duration)

    # A message that fails on every delivery raised the same exception from the same line each time: the stack
    # is printed once, the later failures point at it (within STACK_REPEAT_SECONDS), so a poison message's five
    # deliveries do not bury the log under five identical tracebacks.
    STACK_REPEAT_SECONDS = 300.0

    def _stack_text(self, function_name: str, invocation_id: str, stack: str) -> str:
        now = time.monotonic()
        key = (function_name, stack)
        with self._lock:
            seen = self._stacks_shown.get(key)
            if seen is not None and now - seen[1] < self.STACK_REPEAT_SECONDS:
                return f"(the same as for Id={seen[0]}; not repeated)"
            if len(self._stacks_shown) >= 256:
                self._stacks_shown.clear()
            self._stacks_shown[key] = (invocation_id, now)
        return stack

    def _timed_out(self, function_name: str, invocation_id: str, started: float, extra: dict) -> InvocationResult:
        timeout_text = dotnet_timespan(self.function_timeout)
        log.error("Timeout value of %s exceeded by function 'Functions.%s' (Id: '%s'). Initiating cancellation.",
                  timeout_text, function_name, invocation_id, extra=extra)
        error = TimeoutError(f"Timeout value of {timeout_text} was exceeded by function: Functions.{function_name}")
        duration = _ms(started)
        self._count(function_name, "failed")
        with self._lock:
            self.orphaned_threads += 1
        log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n"
                  "Exception while executing function: Functions.%s. Result: Failure\n"
                  "Exception: FunctionTimeoutException: %s", function_name, invocation_id, duration, function_name,
                  error, extra=extra)
        log.warning("The Python thread of Functions.%s (Id=%s) cannot be cancelled and keeps running in the "
                    "background (the Functions host would restart the worker process)",
                    function_name, invocation_id, extra=extra)
        return InvocationResult(invocation_id, TIMED_OUT, error, duration)

    def _count(self, function_name: str, key: str) -> None:
        with self._lock:
            self.counts.setdefault(function_name, {"succeeded": 0, "failed": 0})[key] += 1


def _user_traceback(error: BaseException) -> str:
    """The traceback from the function's frame down (this module's own frame is noise in the host log)."""
    tb = error.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb)).rstrip()


def _ms(started: float) -> int:
    return int(round((time.monotonic() - started) * 1000))
