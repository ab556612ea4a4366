"""One function invocation as the Functions host runs it: an InvocationRequest to the worker, its answer awaited.

- Logs ``Executing 'Functions.<name>' (Reason=..., Id=<uuid>)``, the trigger details, then ``Executed ...
  (Succeeded|Failed, Id=..., Duration=<n>ms)``; a failure carries the exception the worker reported and its stack.
- The worker decides how the function runs (its thread pool for sync functions, its event loop for async ones);
  an invocation the host has sent waits there for a thread, and that wait counts against the function timeout.
- ``functionTimeout``: the host fails the invocation ("Timeout value of ... exceeded") and its caller abandons the
  message. A Python worker cannot cancel a running function, so the host recycles the worker process: every other
  invocation running in it fails too, as in Azure.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from .logs import dotnet_timespan
from .worker_channel import WorkerChannel, WorkerGone
from .worker_logs import WorkerLogRouter

log = logging.getLogger("funchost.function")

SUCCEEDED, FAILED, TIMED_OUT, ABORTED = "succeeded", "failed", "timed_out", "aborted"


@dataclass
class InvocationResult:
    invocation_id: str
    status: str
    error: str | None = None
    duration_ms: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED


class Invoker:
    """Sends the invocations of every trigger of one host to its worker, and counts their outcomes."""

    def __init__(self, channel: WorkerChannel, logs: WorkerLogRouter, function_timeout: float | None,
                 abort: threading.Event) -> None:
        self.channel = channel
        self.logs = logs
        self.function_timeout = function_timeout
        self._abort = abort  # set when the host gives up waiting for running invocations at shutdown
        self._stacks_shown: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = {}

    def register(self, function_name: str) -> None:
        self.counts.setdefault(function_name, {"succeeded": 0, "failed": 0})

    def invoke(self, function_name: str, build_request: Callable[[str], Any], reason: str,
               details: list[str]) -> InvocationResult:
        """``build_request(invocation_id)`` makes the InvocationRequest; it may raise (a binding the host cannot
        make), which fails the invocation before the worker sees it."""
        invocation_id = str(uuid.uuid4())
        extra = {"invocation_id": invocation_id, "function_name": function_name}
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function_name, reason, invocation_id, extra=extra)
        for line in details:
            log.info("%s", line, extra=extra)
        started = time.monotonic()
        self.logs.invocation_started(invocation_id, function_name)
        try:
            try:
                request = build_request(invocation_id)
            except Exception as exc:  # noqa: BLE001 - the host's binding failure, reported as the function's
                return self._failed(function_name, invocation_id, started, extra,
                                    f"Exception binding parameter: {exc}", "")
            return self._send(function_name, invocation_id, request, started, extra)
        finally:
            self.logs.invocation_ended(invocation_id)

    def _send(self, function_name: str, invocation_id: str, request, started: float, extra: dict) -> InvocationResult:
        result: dict[str, Any] = {}
        done = threading.Event()

        def call() -> None:
            try:
                result["response"] = self.channel.invoke(request, self.function_timeout)
            except BaseException as exc:  # noqa: BLE001 - read below
                result["error"] = exc
            finally:
                done.set()

        threading.Thread(target=call, name=f"invoke-{invocation_id[:8]}", daemon=True).start()
        while not done.wait(0.25):
            if self._abort.is_set():
                log.warning("Functions.%s (Id=%s) was still running when the host stopped; left unfinished",
                            function_name, invocation_id, extra=extra)
                return InvocationResult(invocation_id, ABORTED, None, _ms(started))
        error = result.get("error")
        if isinstance(error, concurrent.futures.TimeoutError):
            return self._timed_out(function_name, invocation_id, started, extra)
        if isinstance(error, WorkerGone):
            if self._abort.is_set():
                return InvocationResult(invocation_id, ABORTED, None, _ms(started))
            return self._failed(function_name, invocation_id, started, extra, f"Worker process gone: {error}", "")
        if error is not None:
            raise error
        response = result["response"]
        if response.result.status == self.channel.protos.StatusResult.Success:
            self._count(function_name, "succeeded")
            log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", function_name, invocation_id,
                     _ms(started), extra=extra)
            return InvocationResult(invocation_id, SUCCEEDED, None, _ms(started))
        exc = response.result.exception
        return self._failed(function_name, invocation_id, started, extra, exc.message or response.result.result,
                            exc.stack_trace)

    def _failed(self, function_name: str, invocation_id: str, started: float, extra: dict, message: str,
                stack: str) -> InvocationResult:
        self._count(function_name, "failed")
        log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n"
                  "System.Exception: Result: Failure\nException: %s\nStack: %s", function_name, invocation_id,
                  _ms(started), message, self._stack_text(function_name, invocation_id, stack.rstrip()),
                  extra=extra)
        return InvocationResult(invocation_id, FAILED, message, _ms(started))

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
        self._count(function_name, "failed")
        log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n"
                  "System.Exception: Result: Failure\nException: FunctionTimeoutException: Timeout value of %s was "
                  "exceeded by function: Functions.%s", function_name, invocation_id, _ms(started), timeout_text,
                  function_name, extra=extra)
        # The running Python function cannot be cancelled: the worker process is recycled, as the host does.
        threading.Thread(target=self.channel.recycle, args=(f"Functions.{function_name} exceeded its timeout",),
                         name="worker-recycle", daemon=True).start()
        return InvocationResult(invocation_id, TIMED_OUT, "timeout", _ms(started))

    def _count(self, function_name: str, key: str) -> None:
        with self._lock:
            self.counts.setdefault(function_name, {"succeeded": 0, "failed": 0})[key] += 1


def _ms(started: float) -> int:
    return int(round((time.monotonic() - started) * 1000))
