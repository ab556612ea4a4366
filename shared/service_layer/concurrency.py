"""Run independent steps at the same time, and never leave one running behind.

A handler returns (or raises) only after every step it started has finished: a step still running after the
message is settled could create something that nothing records. So ``run_all`` always waits for all of them and
only then raises, choosing the error deterministically (the first in the order given), so a test can predict it.
"""
from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

Task = Callable[[], Any]


def run_all(tasks: Sequence[Task], *, max_workers: int = 4, name: str = "step") -> list[Any]:
    """Run ``tasks`` concurrently, wait for every one, return their results in order.

    When some fail, raises the first failure in task order after all have ended. An exception that is not an
    ``Exception`` (a ``BaseException`` such as KeyboardInterrupt, or a test's simulated crash) wins over ordinary
    errors: the process is going down and must not go on to record a failure as if it were alive.
    With ``max_workers`` 1 (or a single task) the tasks run one after another on the calling thread, which
    makes the order of external calls deterministic for tests.
    """
    if max_workers <= 1 or len(tasks) <= 1:
        return _run_in_order(tasks)
    outcomes: list[tuple[bool, Any]] = []
    with ThreadPoolExecutor(max_workers=min(max_workers, len(tasks)), thread_name_prefix=name) as pool:
        # Each task runs in a copy of the caller's context: a pool thread starts with an empty one, and the event's
        # trace (OpenTelemetry keeps the current span in a context variable) must follow the steps into it.
        futures = [pool.submit(contextvars.copy_context().run, task) for task in tasks]
        for future in futures:
            exc = future.exception()  # waits; never raises the task's own error
            outcomes.append((exc is None, future.result() if exc is None else exc))
    _raise_first(outcomes)
    return [value for _, value in outcomes]


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
