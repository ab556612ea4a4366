"""One chaos run: a private local stack, the host as a child process, faults, kills, then the verdict.

Phases:

1. *chaos*: the events go out in rounds through the Service Bus stand-in while every call to Auth0, Key Vault and
   API Management fails at ``fault_rate`` (500, 503, 429, timeout, dropped connection before or after the call was
   applied) and the host process is SIGKILLed at random moments (mid-invocation when it can be) and started again;
2. *settle*: faults cleared, wait until the queue is drained (no active or scheduled message, no invocation
   running), then compare (``verify``);
3. *replay*: the dead-letter queue is replayed with ``python -m opstool replay --all``, drained, compared again;
4. *leak scan*: every secret generated, in every log, ledger row, dead-lettered message and event.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import leak_scan
from .host_process import HostGroup, ROOT, HostProcess, app_root_with
from .verify import Verdict, dead_letters, verify
from .workload import Workload, build_workload

SERVICEBUS_CONFIG = Path(__file__).resolve().parent / "servicebus.json"
SESSION_QUEUE = "customer-events-sessions"
SESSION_IDLE_TIMEOUT = "00:00:02"
FAULT_KINDS = [500, 503, 429, "timeout", "drop", "drop_after"]
FAULTED_SERVICES = ("auth0", "keyvault", "apim")
#: short settings so that a run takes minutes: claims of a killed worker expire after 19 s, the shortest the app
#: accepts with these timeouts (twice: the longest call, 1 s of pacing + 3 x 1.5 + 2 s, plus 2 s of clock skew), transient
#: failures are retried after 0.2 s doubling up to 5 s
APP_SETTINGS = {
    "CLAIM_TTL_SECONDS": "19",
    "AUTH0_TIMEOUT_SECONDS": "2.5",
    "PACING_MAX_WAIT_SECONDS": "1",
    "AZURE_TIMEOUT_SECONDS": "1.5",
    "RETRY_BASE_SECONDS": "0.2",
    "RETRY_MAX_DELAY_SECONDS": "5",
    "RETRY_MAX_ATTEMPTS": "5",  # about 6 s of backoff: an outage longer than that dead-letters what it hits
    "RETRY_MAX_TOTAL_SECONDS": "300",
    # Every span the hosts export goes to their logs, which the leak scan reads: no secret in any span, under faults
    "TELEMETRY_EXPORTER": "console",
}


@dataclass
class ChaosOptions:
    customers: int = 60
    fault_rate: float = 0.1
    kills: int = 8
    seed: int = 1
    round_gap: float = 2.0          # at least this many seconds between two rounds of sending
    kill_gap: tuple[float, float] = (1.0, 3.0)  # seconds of host uptime before the next kill
    fault_timeout: float = 2.0      # how long a "timeout" fault holds the request before dropping it
    outage_seconds: float = 12.0    # one service fails every call for this long, mid-run (0: no outage)
    outage_service: str = "auth0"
    sessions: bool = False          # a session-enabled queue (SessionId = customer id) instead of the plain one
    hosts: int = 1                  # host processes on the one queue (the Functions host scaled out)
    stalls: int = 0                 # SIGSTOPs of a busy host, each longer than the claim TTL
    stall_seconds: float = float(APP_SETTINGS["CLAIM_TTL_SECONDS"]) + 5  # longer than a claim, skew included
    #: with stalls: extra latency on Auth0's create, so a stall right after a claim finds the worker before or in
    #: its create (the moment of issue 18's case 1) rather than after it
    create_latency_ms: float = 300.0
    drain_timeout: float = 180.0
    keep: bool = False              # keep the run's folder (logs, settings) even when it passes
    folder: Path | None = None

    @classmethod
    def big(cls, **overrides) -> "ChaosOptions":
        return cls(**{"customers": 200, "kills": 16, **overrides})

    @classmethod
    def full(cls, **overrides) -> "ChaosOptions":
        """Issue 18's run: 3 hosts, 100 customers, no sessions, the shortest claim the app accepts, stalls longer
        than a claim, 10% faults per call, 8 kills."""
        return cls(**{"customers": 100, "hosts": 3, "kills": 8, "stalls": 4, **overrides})


@dataclass
class ChaosReport:
    options: ChaosOptions
    customers: int = 0
    expected_created: int = 0
    expected_removed: int = 0
    events: int = 0
    invalid_events: int = 0
    messages_sent: int = 0
    resends: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    kills: list[int] = field(default_factory=list)  # invocations running at each kill
    stalls: list[int] = field(default_factory=list)  # invocations running at each stall
    fenced: int = 0  # external writes refused because the claim was no longer the worker's
    claims_lost: int = 0  # attempts that ended because their claim expired or was taken over mid-run
    renewals: int = 0  # claims renewed after a long wait, before a write
    outage: str = ""
    outage_faults: int = 0  # of faults_injected, those of the outage
    invocations: dict[str, int] = field(default_factory=dict)
    before: Verdict | None = None
    after: Verdict | None = None
    dead_lettered_before_replay: int = 0
    dead_lettered_after_replay: int = 0
    valid_dead_lettered_after_replay: int = 0  # must be 0: only the invalid events go back
    replayed: int | None = None
    replay_output: str = ""
    secrets_checked: int = 0
    places_scanned: int = 0
    leaks: list[leak_scan.Leak] = field(default_factory=list)
    drained: bool = True
    errors: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    folder: str = ""

    @property
    def ok(self) -> bool:
        final = self.after or self.before
        return (self.drained and not self.errors and final is not None and self.before is not None
                and not self.before.duplicates and not self.before.orphans and not self.before.lost
                and not self.before.unexplained and not final.duplicates and not final.orphans and not final.lost
                and not final.mismatches and not final.half_provisioned
                and not self.valid_dead_lettered_after_replay and not self.leaks
                and len(self.kills) >= self.options.kills and len(self.stalls) >= self.options.stalls)


def _quiet_dropped_connections(stack) -> None:
    """The stand-ins' HTTP servers print a traceback for every connection that breaks under them; here the
    breaks are what we inject (drop, timeout), so only other errors are printed."""
    for part in (stack.auth0, stack.keyvault, stack.apim):
        server = getattr(part, "_server", None)
        if server is None:
            continue
        report = server.handle_error

        def handle_error(request, client_address, report=report):
            if not isinstance(sys.exc_info()[1], OSError):
                report(request, client_address)

        server.handle_error = handle_error


def _progress(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class ChaosRun:
    def __init__(self, options: ChaosOptions, progress=_progress):
        self.o = options
        self.say = progress
        self.rng = random.Random(options.seed)
        self.report = ChaosReport(options)
        self.stack = None
        self.host: HostGroup | None = None
        self.sent_bodies: list[str] = []
        self._sent = 0
        self._stop = threading.Event()

    # -- the run -----------------------------------------------------------------------------------------------
    def run(self) -> ChaosReport:
        from emulators.stack import LocalStack, StackOptions, write_local_settings

        t0 = time.monotonic()
        folder = self.o.folder or Path(tempfile.mkdtemp(prefix="chaos-"))
        folder.mkdir(parents=True, exist_ok=True)
        self.report.folder = str(folder)
        workload = build_workload(self.o.customers, self.o.seed)
        r = self.report
        r.customers = len(workload.customers)
        r.expected_created = sum(c.expected == "created" for c in workload.customers)
        r.expected_removed = r.customers - r.expected_created
        r.events = sum(len(c.events) for c in workload.customers)
        r.invalid_events = len(workload.invalid)
        r.messages_sent = workload.sends
        r.resends = sum(len(e.resend_rounds) for e in workload.events)
        self.say(f"{r.customers} customers ({r.expected_created} end created, {r.expected_removed} removed), "
                 f"{r.events} events + {r.invalid_events} invalid, {r.resends} resends; fault rate "
                 f"{self.o.fault_rate:.0%}, {self.o.kills} kills; folder {folder}")
        # Standard tier: 500 authorization servers (Developer's 10 would make most creates fail permanently).
        self.stack = LocalStack(folder / "stack", StackOptions(servicebus_config=str(SERVICEBUS_CONFIG),
                                                               apim_sku="Standard")).start()
        collector = leak_scan.SecretCollector(self.stack).install()
        _quiet_dropped_connections(self.stack)
        try:
            settings = {**self.stack.settings, **APP_SETTINGS}
            if self.o.sessions:
                settings.update(CUSTOMER_EVENTS_QUEUE=SESSION_QUEUE, CUSTOMER_EVENTS_SESSIONS="true")
            settings_file = folder / "local.settings.json"
            write_local_settings(settings, settings_file)
            (folder / "logs").mkdir(exist_ok=True)
            self.settings = settings
            app_root = ROOT
            if self.o.sessions:
                # host.json's sessionIdleTimeout (5 s) keeps each of the 8 session slots on a customer for 5 s
                # after its last event; with many customers of few events each (this workload) that adds up to
                # most of the run, so a shorter one here.
                app_root = app_root_with(folder / "app", {"sessionIdleTimeout": SESSION_IDLE_TIMEOUT})
            self.host = HostGroup([HostProcess(settings_file, folder / "logs", env=self._child_env(settings),
                                               app_root=app_root, name=f"host{i}") for i in range(self.o.hosts)])
            r.durations["stack"] = time.monotonic() - t0

            t = time.monotonic()
            self._set_faults(self.o.fault_rate)
            self.host.start()
            self.say(f"{self.o.hosts} host(s) started (pids "
                     f"{', '.join(str(h.proc.pid) for h in self.host.hosts)}); chaos begins")
            self._chaos(workload)
            r.durations["chaos"] = time.monotonic() - t

            t = time.monotonic()
            self._set_faults(0.0)
            self.say("faults cleared; waiting for the queue to drain")
            r.drained = self._drain()
            dlq = dead_letters(settings["ServiceBusConnection"], settings["CUSTOMER_EVENTS_QUEUE"])
            r.before = verify(self.stack, workload, self._ledger(), dlq)
            r.dead_lettered_before_replay = len(dlq)
            r.durations["settle"] = time.monotonic() - t
            self.say(f"drained={r.drained}: {len(r.before.mismatches)} customers differ from the events, "
                     f"{len(dlq)} dead-lettered; replaying the dead-letter queue")

            t = time.monotonic()
            self._replay(folder)
            r.drained = self._drain() and r.drained
            dlq = dead_letters(settings["ServiceBusConnection"], settings["CUSTOMER_EVENTS_QUEUE"])
            r.after = verify(self.stack, workload, self._ledger(), dlq)
            r.dead_lettered_after_replay = len(dlq)
            invalid = {e.event_id for e in workload.invalid}
            r.valid_dead_lettered_after_replay = sum(1 for d in dlq if d.event_id not in invalid)
            r.durations["replay"] = time.monotonic() - t
            self.host.stop()

            t = time.monotonic()
            self._counters()
            self._leak_scan(collector, folder, workload)
            r.durations["leak scan"] = time.monotonic() - t
        except Exception as exc:  # the report says what broke; the run's folder is kept for the logs
            import traceback
            traceback.print_exc(file=sys.stderr)
            r.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._stop.set()
            if self.host is not None:
                self.host.stop()
            self.stack.stop()
            r.durations["total"] = time.monotonic() - t0
            if r.ok and not self.o.keep and self.o.folder is None:
                shutil.rmtree(folder, ignore_errors=True)
        return r

    # -- phases --------------------------------------------------------------------------------------------------
    def _chaos(self, workload: Workload) -> None:
        killer = threading.Thread(target=self._kill_loop, name="chaos-killer", daemon=True)
        staller = threading.Thread(target=self._stall_loop, name="chaos-staller", daemon=True)
        staller.start()
        reporter = threading.Thread(target=self._report_loop, name="chaos-progress", daemon=True)
        sending_done = threading.Event()
        self._sending_done = sending_done
        killer.start()
        reporter.start()
        from azure.servicebus import ServiceBusClient

        with ServiceBusClient.from_connection_string(self.settings["ServiceBusConnection"]) as client:
            with client.get_queue_sender(self.settings["CUSTOMER_EVENTS_QUEUE"]) as sender:
                rounds = workload.rounds
                outage = None
                for rnd in range(rounds):
                    batch = workload.sends_in_round(rnd)
                    self.rng.shuffle(batch)
                    for event, resend in batch:
                        self._send(sender, event, resend)
                    # The outage comes with the last round, when the kills are (nearly) done: a killed invocation
                    # waits out its lock, which would stretch the retries past any outage of a sensible length.
                    if rnd == rounds - 1 and self.o.outage_seconds > 0:
                        outage = threading.Thread(target=self._outage, name="chaos-outage", daemon=True)
                        outage.start()
                    if rnd == rounds - 1:
                        break
                    # Spread the kills over the rounds, so that every kill finds work to interrupt: the next round
                    # goes out after its share of kills (or a while, if the host is slow to be killed).
                    share = -(-(rnd + 1) * self.o.kills // rounds)
                    deadline = time.monotonic() + self.o.round_gap * 5
                    time.sleep(self.o.round_gap)
                    while len(self.report.kills) < share and time.monotonic() < deadline:
                        time.sleep(0.1)
        sending_done.set()
        killer.join()
        staller.join()
        if outage is not None:
            outage.join()

    def _outage(self) -> None:
        """Every call to one service fails for a while: longer than the retry budget, so the events it hits are
        dead-lettered (with their reason) and come back through the replay at the end."""
        name, seconds = self.o.outage_service, self.o.outage_seconds
        ctl = self.stack.control(name)
        self.say(f"outage: every call to {name} fails with 503 or a dropped connection for {seconds:.0f} s")
        before = sum(ctl.calls().get("injected", {}).values())
        ctl.set_faults([{"op": "*", "error_rate": 1.0, "errors": [503, "drop"]}],
                       timeout_seconds=self.o.fault_timeout)
        self._stop.wait(seconds)
        self._set_faults(self.o.fault_rate, only=name)
        self.report.outage_faults = sum(ctl.calls().get("injected", {}).values()) - before
        self.report.outage = f"{name} down for {seconds:.0f} s ({self.report.outage_faults} calls failed)"
        self.say(f"outage of {name} over")

    def _send(self, sender, event, resend: bool) -> None:
        from azure.servicebus import ServiceBusMessage

        body = json.dumps(event.body)
        self.sent_bodies.append(body)
        message_id = f"resend-{self.rng.getrandbits(64):016x}" if resend else event.event_id
        sender.send_messages(ServiceBusMessage(body, message_id=message_id, session_id=event.customer_id,
                                               content_type="application/cloudevents+json",
                                               subject=event.body["type"]))
        self._sent += 1

    def _kill_loop(self) -> None:
        lo, hi = self.o.kill_gap
        while len(self.report.kills) < self.o.kills and not self._stop.is_set():
            if self._stop.wait(self.rng.uniform(lo, hi)):
                return
            # A random moment, but one that interrupts work: wait for an invocation to be running.
            deadline = time.monotonic() + 10.0
            while self.host.running == 0 and time.monotonic() < deadline and not self._stop.is_set():
                time.sleep(0.02)
            victim = self.host.busy(self.rng)
            running = victim.kill()
            self.report.kills.append(running)
            self.say(f"kill {len(self.report.kills)}/{self.o.kills}: SIGKILL of {victim.name} with {running} "
                     "invocation(s) running; restarting it")
            time.sleep(self.rng.uniform(0.0, 0.5))
            victim.start()

    def _stall_loop(self) -> None:
        """Freeze a busy host for longer than a claim lasts: its claims expire and its Service Bus locks too, so
        another host (or the same event's redelivery) takes the customer over while it is frozen. When it thaws it
        goes on from the middle of its invocation: its fences must refuse every write."""
        rng = random.Random(self.o.seed + 1)
        frozen: set[str] = set()
        threads = []
        while len(threads) < self.o.stalls and not self._stop.is_set():
            if self._stop.wait(rng.uniform(*self.o.kill_gap)):
                break
            # Right after a host claims a customer for a created event: the worker is between its claim and its
            # creates, or in the create (slowed down by create_latency_ms). Stalls overlap (each lasts longer than
            # a claim), but one host always stays awake to take the customers over.
            victim = self.host.just_claimed(10.0, self._stop) or self.host.busy(rng)
            if victim.name in frozen or len(frozen) + 1 >= len(self.host.hosts) > 1:
                continue
            frozen.add(victim.name)
            self.say(f"stall {len(threads) + 1}/{self.o.stalls}: SIGSTOP of {victim.name} for "
                     f"{self.o.stall_seconds:.0f} s with {victim.running} invocation(s) running")

            def stall(host=victim):
                self.report.stalls.append(host.stall(self.o.stall_seconds, self._stop))
                frozen.discard(host.name)

            thread = threading.Thread(target=stall, name=f"chaos-stall-{len(threads)}", daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()

    def _report_loop(self) -> None:
        while not self._stop.wait(3.0):
            q = self._queue()
            h = self.host
            self.say(f"sent {self._sent}/{self.report.messages_sent}, invocations {h.executed.get('Succeeded', 0)} "
                     f"ok / {h.executed.get('Failed', 0)} failed, running {h.running}; queue active "
                     f"{q.get('active_count', '?')} scheduled {q.get('scheduled_count', '?')} dead-lettered "
                     f"{q.get('dead_letter_count', '?')}; kills {len(self.report.kills)}/{self.o.kills}")

    def _queue(self) -> dict:
        try:
            return self.stack.servicebus.snapshot()["queues"][self.settings["CUSTOMER_EVENTS_QUEUE"]]
        except Exception:  # the progress line is best effort
            return {}

    def _drain(self) -> bool:
        """True once nothing is active, scheduled or running, twice in a row one second apart."""
        deadline = time.monotonic() + self.o.drain_timeout
        quiet = 0
        while time.monotonic() < deadline:
            q = self._queue()
            idle = (q.get("active_count") == 0 and q.get("scheduled_count") == 0 and self.host.running == 0
                    and self.host.alive)
            quiet = quiet + 1 if idle else 0
            if quiet >= 2:
                return True
            time.sleep(1.0)
        self.report.errors.append(f"the queue did not drain within {self.o.drain_timeout:.0f} s: {self._queue()}")
        return False

    def _replay(self, folder: Path) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "opstool", "replay", "--all", "--yes", "--json", "--max-wait", "2",
             "--settings", str(folder / "local.settings.json")],
            cwd=str(ROOT), env=self._child_env(self.settings), capture_output=True, text=True, timeout=120)
        out = proc.stdout + proc.stderr
        (folder / "logs" / "opstool-replay.log").write_text(out, encoding="utf-8")
        self.report.replay_output = out
        replayed = 0
        for line in proc.stdout.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("result") == "replayed":
                replayed += 1
        self.report.replayed = replayed
        if proc.returncode != 0:
            self.report.errors.append(f"opstool replay exited {proc.returncode}: {out.strip()[-500:]}")

    def _counters(self) -> None:
        injected: Counter = Counter()
        calls: Counter = Counter()
        for name in FAULTED_SERVICES:
            c = self.stack.control(name).calls()
            for key, n in c.get("injected", {}).items():
                injected[f"{name}:{key.rsplit(':', 1)[1]}"] += n
            calls[name] = sum(n for op, n in c.get("calls", {}).items())
        self.report.faults_injected = dict(sorted(injected.items()))
        self.report.calls = dict(calls)
        self.report.invocations = dict(self.host.executed)
        for log_file in self.host.log_files:
            try:
                text = log_file.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if "outcome=fenced" in line:
                    self.report.fenced += 1
                elif "step=event outcome=failed" in line and "ledger.fence:" in line:
                    self.report.claims_lost += 1
                elif "step=ledger.renew_claim outcome=ok" in line:
                    self.report.renewals += 1

    def _leak_scan(self, collector, folder: Path, workload: Workload) -> None:
        s = self.settings
        secrets = collector.collect()
        hay = leak_scan.from_files(sorted((folder / "logs").glob("*.log")))
        hay += leak_scan.from_ledger(s["LEDGER_CONNECTION"], s["LEDGER_TABLE"])
        hay += leak_scan.from_queue(s["ServiceBusConnection"], s["CUSTOMER_EVENTS_QUEUE"], dead_letter=True)
        hay += leak_scan.from_subscription(s["ServiceBusConnection"], s.get("RESULT_EVENTS_TOPIC") or
                                           "customer-lifecycle", "audit")
        hay += leak_scan.from_events(self.sent_bodies)
        self.report.secrets_checked = len(secrets)
        self.report.places_scanned = len(hay)
        self.report.leaks = leak_scan.scan(secrets, hay)

    # -- helpers -------------------------------------------------------------------------------------------------
    def _set_faults(self, rate: float, only: str | None = None) -> None:
        for name in (only,) if only else FAULTED_SERVICES:
            ctl = self.stack.control(name)
            if rate:
                rules = [{"op": "*", "error_rate": rate, "errors": FAULT_KINDS}]
                if name == "auth0" and self.o.stalls:
                    rules.append({"op": "clients.create", "latency_ms": self.o.create_latency_ms})
                ctl.set_faults(rules, timeout_seconds=self.o.fault_timeout)
            else:
                ctl.clear_faults()

    def _ledger(self):
        from shared.settings import LedgerSettings
        from shared.adapters.table_ledger import TableLedger
        return TableLedger.from_settings(LedgerSettings.load(self.settings))

    @staticmethod
    def _child_env(settings: dict) -> dict[str, str]:
        """The environment of the host and the ops tool: the settings file decides, so nothing of ours that
        the settings also name (or any Azure identity variable) may shadow it."""
        env = {k: v for k, v in os.environ.items()
               if k not in settings and not k.startswith(("AZURE_", "MSI_", "IDENTITY_"))}
        env["PYTHONUNBUFFERED"] = "1"
        return env
