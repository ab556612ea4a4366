"""The host lock of a stack folder: one holder at a time, and a lock left by a dead process never blocks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from emulators.runlock import HostLock, pid_alive

ROOT = Path(__file__).resolve().parents[2]


def test_one_holder_at_a_time_and_its_record_names_it(tmp_path):
    first, second = HostLock(tmp_path), HostLock(tmp_path)
    assert first.acquire("make run")
    try:
        assert not second.acquire("make run")
        holder = second.holder()
        assert holder["what"] == "make run" and holder["pid"] > 0
    finally:
        first.release()
    assert second.holder() is None and second.acquire("make host")
    second.release()


def test_a_lock_file_left_by_a_dead_process_is_stale(tmp_path):
    # A host killed with SIGKILL leaves its record behind; the kernel has dropped its flock.
    code = ("import sys, os; sys.path.insert(0, sys.argv[1]); from emulators.runlock import HostLock; "
            "HostLock(sys.argv[2]).acquire('make run'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(tmp_path)], check=True)
    assert json.loads((tmp_path / "host.lock").read_text())["what"] == "make run"
    lock = HostLock(tmp_path)
    assert lock.holder() is None
    assert lock.acquire("make run")
    lock.release()


def test_a_reused_pid_does_not_pass_for_the_stack():
    assert pid_alive(os.getpid())
    assert not pid_alive(os.getpid(), expect="no-such-command-line-part")
