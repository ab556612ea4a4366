"""The processes a benchmark run drives: the local stack and the local Functions host, each in its own process.

Separate processes because the figures must be the app's, not those of a Python process shared with six stand-ins:
on a 2-core machine one GIL for the stack, the host and the driver would make every number a measure of
contention. The host's stdout is read line by line and each line is time-stamped on arrival (the app logs one line
per event with its outcome), which is how the driver knows when an event was applied without polling the ledger.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# customer=<id> event=<id> step=event outcome=<applied|duplicate|stale|failed> (shared/service_layer/messages.py)
EVENT_LINE = re.compile(r"customer=(\S+) event=(\S+) step=event outcome=(\w+)(?:.*? duration_ms=(\d+))?")
RETRY_LINE = re.compile(r"customer=(\S+) event=\S+ step=retry outcome=(\S+)")
STEP_ERROR_LINE = re.compile(r"customer=(\S+) event=\S+ step=(\S+) outcome=error .*?reason='(?:[\w.]+: )?(\d{3})?")
# httpx's own request log (INFO): in this app only the Auth0 adapter uses httpx, so these are Auth0's answers
HTTPX_LINE = re.compile(r'HTTP Request: (\S+) \S+ "HTTP/[\d.]+ (\d{3})')
PACED_HOLD = "although paced"
HOST_STARTED = "Host started"


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that would override the settings a child gets (the host lets
    existing variables win over local.settings.json, as Core Tools does)."""
    drop = ("AZURE_", "IDENTITY_", "MSI_", "AUTH0_", "APIM_", "KEYVAULT_", "LEDGER_", "RETRY_", "ServiceBus",
            "AzureWebJobs", "CUSTOMER_EVENTS", "LOCAL_STACK", "API_AUDIENCE", "CLIENT_PROFILES", "EVENT_TYPE",
            "PYTHON_THREADPOOL")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _command(pid: int) -> str:
    """The command line, or the name in brackets for a kernel thread (``ps`` shows them so)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
        text = " ".join(w.decode(errors="replace") for w in words if w)
        if text:
            return text[:80]
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
        return "[" + raw[raw.find("(") + 1:raw.rfind(")")] + "]"
    except OSError:
        return "?"


def _terminate(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class StackProcess:
    """``python -m emulators serve`` in a folder of its own."""

    def __init__(self, folder: Path, *, auth0_rate: float, auth0_burst: int, apim_sku: str,
                 extra_args: tuple[str, ...] = ()):
        self.folder = Path(folder)
        self.args = ["--auth0-rate", str(auth0_rate), "--auth0-burst", str(auth0_burst), "--apim-sku", apim_sku,
                     *extra_args]
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.settings: dict[str, str] = {}

    def start(self, timeout: float = 90.0) -> "StackProcess":
        self.folder.mkdir(parents=True, exist_ok=True)
        settings_file = self.folder / "local.settings.json"
        log = open(self.folder / "stack.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulators", "--folder", str(self.folder), "serve", "--settings",
             str(settings_file), *self.args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_environment())
        deadline = time.monotonic() + timeout
        stack_file = self.folder / "stack.json"
        while not stack_file.exists():
            if self.proc.poll() is not None:
                tail = (self.folder / "stack.log").read_text(errors="replace").splitlines()[-20:]
                raise RuntimeError("the local stack failed to start:\n" + "\n".join(tail))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the local stack did not start within {timeout:.0f} s")
            time.sleep(0.2)
        self.info = json.loads(stack_file.read_text())
        self.settings = json.loads(settings_file.read_text())["Values"]
        for name in self.info["services"]:
            deadline = time.monotonic() + 30
            while True:
                try:
                    self.control(name).health()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        return self

    def control(self, name: str):
        from emulators.control import StandInControl
        return StandInControl(self.info["services"][name]["url"], verify=self.info["ca_cert"])

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc is not None:
            _terminate(self.proc, 20)


class HostProcess:
    """``python -m funchost`` with its log lines watched: events applied, retries scheduled, errors per step."""

    def __init__(self, settings: dict[str, str], folder: Path, name: str = "host"):
        self.settings_file = Path(folder) / f"{name}.settings.json"
        self.settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": settings}, indent=1))
        os.chmod(self.settings_file, 0o600)
        self.log_file = Path(folder) / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.spawned_at = 0.0
        self.started_at: float | None = None  # "Host started" line
        self._cond = threading.Condition()
        self.outcomes: dict[str, list[tuple[float, str]]] = defaultdict(list)  # customer -> [(t, outcome)]
        self.handler_ms: dict[str, list[float]] = defaultdict(list)  # customer -> the app's own duration_ms
        self.applied: dict[str, float] = {}  # customer -> when its first "applied" line arrived
        self.retries: dict[str, int] = defaultdict(int)  # retry outcome -> count
        self.step_errors: dict[str, int] = defaultdict(int)  # "step status" -> count
        self.auth0_status: dict[str, int] = defaultdict(int)  # HTTP status of Auth0's answers -> count
        self.paced_holds = 0  # 429s the paced Auth0 adapter absorbed by waiting for the reset
        self.lines = 0
        self._reader: threading.Thread | None = None

    def start(self, extra_env: dict[str, str] | None = None) -> "HostProcess":
        env = clean_environment()
        env.update(extra_env or {})
        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "funchost", "--app-root", str(ROOT), "--settings", str(self.settings_file),
             "--functions", "customer_events", "--log-level", "INFO"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            bufsize=1, text=True, errors="replace")
        self._reader = threading.Thread(target=self._read, name="host-log", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.log_file, "a") as sink:
            for line in self.proc.stdout:
                now = time.monotonic()
                sink.write(line)
                with self._cond:
                    self.lines += 1
                    h = HTTPX_LINE.search(line)
                    m = None if h else EVENT_LINE.search(line)
                    if h:
                        self.auth0_status[h.group(2)] += 1
                    elif PACED_HOLD in line:
                        self.paced_holds += 1
                    elif m:
                        self.outcomes[m.group(1)].append((now, m.group(3)))
                        if m.group(3) == "applied":
                            self.applied.setdefault(m.group(1), now)
                        if m.group(4):
                            self.handler_ms[m.group(1)].append(float(m.group(4)))
                    elif self.started_at is None and HOST_STARTED in line:
                        self.started_at = now
                    else:
                        r = RETRY_LINE.search(line)
                        if r:
                            self.retries[r.group(2)] += 1
                        else:
                            e = STEP_ERROR_LINE.search(line)
                            if e:
                                self.step_errors[f"{e.group(2)} {e.group(3) or '-'}"] += 1
                    self._cond.notify_all()

    def wait_for(self, predicate, timeout: float, what: str):
        """Wait until ``predicate(self)`` is truthy (checked under the lock at each log line)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (log: {self.log_file})")
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"the host exited with {self.proc.returncode} (log: {self.log_file})")
                self._cond.wait(min(left, 1.0))

    def applied_at(self, customer: str) -> float | None:
        return self.applied.get(customer)

    def applied_count(self, customers: set[str]) -> int:
        return len(self.applied.keys() & customers)  # checked at every log line: keep it cheap

    def memory_kib(self) -> dict[str, int]:
        """VmHWM (peak resident set) and VmRSS of the host process, in KiB, from /proc."""
        out = {}
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(value.split()[0])
        except OSError:
            pass
        return out

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None:
            _terminate(self.proc, timeout)
        if self._reader is not None:
            self._reader.join(5)


class CpuSampler:
    """How much CPU *other* processes took while a run went on (another job on the same machine skews figures).

    Ours = CPU of this process and all its live descendants, each with its reaped children's (``cutime``/``cstime``
    in /proc/<pid>/stat), so a process that ended and was waited for still counts. The machine's busy time comes
    from /proc/stat; the rest is other processes'. A background thread also notes, once a second, which other
    processes used CPU, to name them.
    """

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._tick = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._others: dict[int, list] = {}  # pid -> [cpu when first seen, cpu when last seen, command]
        self._first_sample = True
        self._thread: threading.Thread | None = None

    @staticmethod
    def _machine_busy() -> float:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
        return sum(fields[:8]) - idle

    def _tree_sample(self) -> float:
        """Our tree's CPU seconds now; notes the others' on the way."""
        me = os.getpid()
        parents: dict[int, int] = {}
        cpu: dict[int, tuple[float, float]] = {}  # pid -> (own, own + reaped children)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    raw = f.read()
            except OSError:
                continue
            rest = raw[raw.rfind(")") + 2:].split()
            pid = int(entry)
            parents[pid] = int(rest[1])
            own = (float(rest[11]) + float(rest[12])) / self._tick
            cpu[pid] = (own, own + (float(rest[13]) + float(rest[14])) / self._tick)
        ours = 0.0
        with self._lock:
            for pid, (own, with_children) in cpu.items():
                p, hops = pid, 0
                while p and p != me and hops < 50:
                    p, hops = parents.get(p, 0), hops + 1
                if p == me:
                    ours += with_children
                elif pid in self._others:
                    self._others[pid][1] = own
                else:
                    # Started during the run: all its CPU is the run's time; already there: from now on.
                    self._others[pid] = [own if self._first_sample else 0.0, own, _command(pid)]
            self._first_sample = False
        return ours

    def mark(self) -> tuple[float, float, float]:
        """(monotonic time, machine busy CPU seconds, our tree's CPU seconds) now."""
        ours = self._tree_sample()
        return time.monotonic(), self._machine_busy() / self._tick, ours

    def start(self) -> "CpuSampler":
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._tree_sample()
            except Exception:  # sampling is best effort
                pass

    def stop(self) -> None:
        self._stop.set()

    def top_others(self, n: int = 3, minimum: float = 1.0) -> list[tuple[str, float]]:
        """The other processes that used the most CPU seconds since the sampler started (at least ``minimum``)."""
        with self._lock:
            used = [(cmd, last - first) for first, last, cmd in self._others.values()]
        used = [u for u in used if u[1] >= minimum]
        return sorted(used, key=lambda u: -u[1])[:n]

    @staticmethod
    def others(first: tuple[float, float, float], last: tuple[float, float, float]) -> dict[str, float]:
        """Average cores busy between two marks: in all, ours, and other processes'."""
        seconds = max(1e-9, last[0] - first[0])
        total = (last[1] - first[1]) / seconds
        ours = (last[2] - first[2]) / seconds
        return {"seconds": seconds, "total_cores": total, "ours_cores": ours, "other_cores": max(0.0, total - ours)}
