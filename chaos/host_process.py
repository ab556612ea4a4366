"""The local Functions host as a child process the chaos run can SIGKILL and start again.

Its stdout and stderr go to one log file per incarnation (scanned for secrets at the end). The host's own
``Executing``/``Executed`` lines tell which invocations are running, so the run can kill mid-invocation and know
when the work is done.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_EXECUTING = re.compile(r"Executing 'Functions\.[^']+' \(.*Id=([0-9a-f-]{36})\)")
_EXECUTED = re.compile(r"Executed 'Functions\.[^']+' \((\w+), Id=([0-9a-f-]{36})")
_STARTED = "Host started"
_CLAIMED = re.compile(r"step=ledger\.claim outcome=ok duration_ms=\d+ status=provisioning")


class HostProcess:
    def __init__(self, settings_file: Path, log_dir: Path, *, env: dict[str, str] | None = None,
                 app_root: Path = ROOT, name: str = "host"):
        self.name = name
        self.settings_file = settings_file
        self.app_root = app_root
        self.log_dir = log_dir
        self.env = env if env is not None else dict(os.environ)
        self.proc: subprocess.Popen | None = None
        self.incarnation = 0
        self.log_files: list[Path] = []
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._ready = threading.Event()
        self.executed = {"Succeeded": 0, "Failed": 0}
        self.claimed = threading.Event()  # set on each claim the app logs: the moment a stall hurts most
        self.started_invocations = 0

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        self.incarnation += 1
        log_file = self.log_dir / f"{self.name}-{self.incarnation}.log"
        self.log_files.append(log_file)
        self._ready.clear()
        with self._lock:
            self._running.clear()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "funchost", "--settings", str(self.settings_file),
             "--app-root", str(self.app_root), "--functions", "customer_events", "--stop-timeout", "5"],
            cwd=str(ROOT), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1,
            text=True, encoding="utf-8", errors="replace", start_new_session=True)
        threading.Thread(target=self._pump, args=(self.proc, log_file), daemon=True,
                         name=f"host-{self.incarnation}-log").start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the host did not start within {timeout:.0f} s; see {log_file}")

    def kill(self) -> int:
        """SIGKILL: no shutdown, no settlement; returns how many invocations were running."""
        with self._lock:
            running = len(self._running)
        if self.proc and self.proc.poll() is None:
            self._signal_group(signal.SIGKILL)  # the host and its worker process, as a crashed instance loses both
            self.proc.wait(10)
        with self._lock:
            self._running.clear()
        return running

    def stall(self, seconds: float, stop_event: threading.Event) -> int:
        """SIGSTOP for ``seconds``, then SIGCONT: a worker frozen mid-invocation (a long GC pause, a frozen VM) whose
        Service Bus locks and ledger claims expire meanwhile. Returns how many invocations were running."""
        with self._lock:
            running = len(self._running)
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return 0
        self._signal_group(signal.SIGSTOP)  # the worker runs the app: it must freeze with its host
        try:
            stop_event.wait(seconds)
        finally:
            self._signal_group(signal.SIGCONT)
        return running

    def _signal_group(self, signum: int) -> None:
        """The host was started in a session of its own: its process group is the host and its worker."""
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):  # gone meanwhile
            pass

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self._signal_group(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def alive(self) -> bool:
        return bool(self.proc and self.proc.poll() is None)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    # -- log pump -------------------------------------------------------------------------------------------------
    def _pump(self, proc: subprocess.Popen, log_file: Path) -> None:
        with open(log_file, "w", encoding="utf-8") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if proc is not self.proc or proc.returncode is not None:
                    continue
                m = _EXECUTING.search(line)
                if m:
                    with self._lock:
                        self._running.add(m.group(1))
                        self.started_invocations += 1
                    continue
                m = _EXECUTED.search(line)
                if m:
                    with self._lock:
                        self._running.discard(m.group(2))
                        self.executed[m.group(1)] = self.executed.get(m.group(1), 0) + 1
                    continue
                if _CLAIMED.search(line):
                    self.claimed.set()
                    continue
                if _STARTED in line:
                    self._ready.set()


def app_root_with(folder: Path, service_bus: dict) -> Path:
    """The app as it is, with host.json's ``extensions.serviceBus`` changed: links to the app's code and config
    beside a modified host.json (the host reads host.json from its app root, and has no other way to change it)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    host_json = json.loads((ROOT / "host.json").read_text())
    host_json.setdefault("extensions", {}).setdefault("serviceBus", {}).update(service_bus)
    (folder / "host.json").write_text(json.dumps(host_json, indent=2))
    for name in ("function_app.py", "functions", "shared", "config"):
        link = folder / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    return folder


class HostGroup:
    """Several local hosts on one queue, as the Functions host scales out: each a process of its own."""

    def __init__(self, hosts: list[HostProcess]):
        self.hosts = hosts

    def start(self) -> None:
        for host in self.hosts:
            host.start()

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()

    @property
    def running(self) -> int:
        return sum(h.running for h in self.hosts)

    @property
    def alive(self) -> bool:
        return all(h.alive for h in self.hosts)

    @property
    def executed(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for h in self.hosts:
            for k, n in h.executed.items():
                out[k] = out.get(k, 0) + n
        return out

    @property
    def log_files(self) -> list[Path]:
        return [f for h in self.hosts for f in h.log_files]

    def just_claimed(self, timeout: float, stop: threading.Event) -> HostProcess | None:
        """The first host to log a new claim of a customer for a created event within ``timeout``."""
        for host in self.hosts:
            host.claimed.clear()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop.is_set():
            for host in self.hosts:
                if host.claimed.is_set():
                    return host
            time.sleep(0.002)
        return None

    def busy(self, rng) -> HostProcess:
        """A host with work running (a random one), else any."""
        busy = [h for h in self.hosts if h.running]
        return rng.choice(busy or self.hosts)
