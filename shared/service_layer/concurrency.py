"""Run independent steps at the same time, and never leave one running behind.

A handler returns (or raises) only after every step it started has finished: a step still running after the
message is settled could create something that nothing records. So ``run_all`` always waits for all of them and
only then raises, choosing the error deterministically (the first in the order given), so a test can predict it.

The steps run on one pool per process, whose threads outlive the call: starting a thread per step and per event
cost milliseconds on a busy machine, before the step's first byte left. A step that itself runs steps runs them
one after another on its own thread, so no pool thread ever waits for another and the pool cannot deadlock.
"""
from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

Task = Callable[[], Any]

#: threads of the process's step pool: more than the host's concurrent events (maxConcurrentCalls 8) times the
#: widest group of steps (5), so that no event's steps queue behind another's
POOL_THREADS = 64

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_inside = threading.local()


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="step")
        return _pool


def run_all(tasks: Sequence[Task], *, max_workers: int = 4, name: str = "step") -> list[Any]:
    """Run ``tasks`` concurrently, at most ``max_workers`` at once, wait for every one, return their results in
    order. ``name`` says what runs, for a reader of a thread dump's call stack.

    When some fail, raises the first failure in task order after all have ended. An exception that is not an
    ``Exception`` (a ``BaseException`` such as KeyboardInterrupt, or a test's simulated crash) wins over ordinary
    errors: the process is going down and must not go on to record a failure as if it were alive.
    With ``max_workers`` 1 (or a single task, or when called from a step) the tasks run one after another on the
    calling thread, which makes the order of external calls deterministic for tests.
    """
    if max_workers <= 1 or len(tasks) <= 1 or getattr(_inside, "step", False):
        return _run_in_order(tasks)
    pool = _shared_pool()
    turns = threading.Semaphore(max_workers)
    futures = []
    for task in tasks:
        turns.acquire()
        # Each task runs in a copy of the caller's context: a pool thread has a context of its own, and the event's
        # trace (OpenTelemetry keeps the current span in a context variable) must follow the steps into it.
        futures.append(pool.submit(_step, contextvars.copy_context(), task, turns))
    outcomes: list[tuple[bool, Any]] = []
    for future in futures:
        exc = future.exception()  # waits; never raises the task's own error
        outcomes.append((exc is None, future.result() if exc is None else exc))
    _raise_first(outcomes)
    return [value for _, value in outcomes]


def _step(context: contextvars.Context, task: Task, turns: threading.Semaphore) -> Any:
    _inside.step = True
    try:
        return context.run(task)
    finally:
        _inside.step = False
        turns.release()


def _run_in_order(tasks: Sequence[Task]) -> list[Any]:
    outcomes: list[tuple[bool, Any]] = []
    for task in tasks:
        try:
            outcomes.append((True, task()))
        except Exception as exc:  # noqa: BLE001 - kept and raised after the others ran, as in the threaded case
            outcomes.append((False, exc))
    _raise_first(outcomes)
    return [value for _, value in outcomes]


def _raise_first(outcomes: list[tuple[bool, Any]]) -> None:
    errors = [value for ok, value in outcomes if not ok]
    if not errors:
        return
    fatal = [e for e in errors if not isinstance(e, Exception)]
    raise (fatal or errors)[0]
