"""run_all: independent steps run together, and none is left running when it returns or raises."""
from __future__ import annotations

import threading
import time

import pytest

from shared.domain.errors import PermanentError, TransientError
from shared.service_layer.concurrency import run_all
from tests.fakes import Crash
from shared.domain.records import APPLIED
from tests.unit.world import World, created, removed


def test_results_come_back_in_task_order():
    def slow():
        time.sleep(0.05)
        return "slow"

    assert run_all([slow, lambda: "fast", lambda: None], max_workers=3) == ["slow", "fast", None]


def test_tasks_really_run_at_the_same_time():
    barrier = threading.Barrier(3, timeout=2)
    assert run_all([barrier.wait] * 3, max_workers=3) is not None  # would break the barrier if run in turn


def test_waits_for_every_task_before_raising_the_first_error_in_order():
    finished = []

    def slow_ok():
        time.sleep(0.1)
        finished.append("slow")

    def fails_late():
        time.sleep(0.05)
        raise PermanentError("second")

    def fails_fast():
        raise TransientError("first in order")

    with pytest.raises(TransientError, match="first in order"):
        run_all([fails_fast, slow_ok, fails_late], max_workers=3)
    assert finished == ["slow"]


def test_a_crash_wins_over_ordinary_errors():
    def boom():
        raise TransientError("x")

    def die():
        time.sleep(0.02)
        raise Crash("killed")

    with pytest.raises(Crash):
        run_all([boom, die], max_workers=2)


def test_one_worker_runs_inline_in_order_and_still_runs_all_on_error():
    order = []

    def record(name, fail=False):
        def task():
            order.append((name, threading.current_thread().name))
            if fail:
                raise TransientError(name)
            return name
        return task

    with pytest.raises(TransientError, match="a"):
        run_all([record("a", fail=True), record("b"), record("c", fail=True)], max_workers=1)
    main = threading.current_thread().name
    assert order == [("a", main), ("b", main), ("c", main)]


def test_no_step_of_a_handler_outlives_it():
    w = World(max_parallel=4)
    started = threading.Event()
    done = []
    real = w.secrets.set_secret

    def slow_set(*args, **kwargs):
        started.set()
        time.sleep(0.1)
        done.append(True)
        return real(*args, **kwargs)

    w.secrets.set_secret = slow_set
    w.identity.fail("create_client_grant", "permanent")  # fails at once, concurrently with the slow set
    with pytest.raises(PermanentError):
        w.service().handle(created())
    assert started.is_set() and done == [True]
    assert w.secrets.names() == ["auth0-client-acme"]



def test_no_group_of_steps_queues_for_a_worker_by_default(monkeypatch):
    """The widest group (the client id recorded, grant, secret, authorization server, subscription) must not wait
    for a free worker: with fewer workers than steps, an ARM write of about a second would start only once another
    step had finished."""
    from shared.service_layer import core as core_module
    from shared.service_layer.core import ProvisioningOptions
    groups = []

    def spy(tasks, *, max_workers, name):
        groups.append((len(tasks), max_workers))
        return run_all(tasks, max_workers=max_workers, name=name)

    monkeypatch.setattr(core_module, "run_all", spy)
    w = World(max_parallel=ProvisioningOptions(auth0_domain="t.example").max_parallel_steps)
    assert w.service().handle(created()).result == APPLIED
    assert w.service().handle(removed()).result == APPLIED
    assert max(n for n, _ in groups) == 5
    assert all(n <= workers for n, workers in groups)


def test_the_pool_threads_are_reused_and_a_nested_group_runs_on_its_step_thread():
    seen = []

    def outer():
        inner_threads = run_all([lambda: threading.current_thread().name] * 3, max_workers=3)
        return threading.current_thread().name, inner_threads

    for _ in range(10):
        seen.append(run_all([outer, outer], max_workers=2))
    names = {name for rnd in seen for name, _ in rnd}
    assert len(names) < 10 and all(n.startswith("step") for n in names)  # 20 steps: a thread each would be 20
    for rnd in seen:
        for name, inner in rnd:
            assert inner == [name] * 3  # in order on the step's own thread: no pool thread waits for another


def test_no_more_than_max_workers_run_at_once():
    running, peak, lock = [0], [0], threading.Lock()

    def task():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    run_all([task] * 8, max_workers=3)
    assert peak[0] == 3
