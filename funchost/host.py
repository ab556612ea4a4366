"""``LocalFunctionsHost``: runs an app's Service Bus and timer triggers with the Functions host's semantics.

Start-up follows ``func start``: settings into the environment (existing variables win), host.json, the gRPC
server and a worker process that Microsoft's worker library runs in (it imports and indexes the app; this host
never imports it), the functions it reports, each trigger's bindings resolved, one listener per function. A
function whose bindings do not resolve is logged as "in error" and skipped; the others run. An app the library
cannot index (it raised on import, a function failed its checks) runs no function, as under ``func start``.
Functions with other bindings than their trigger (outputs, inputs) or other trigger types are not run by this
host and are reported so.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from .bindings import IndexedFunction, resolve_service_bus, resolve_timer
from .hostconfig import HostConfig, load_host_json
from .invocation import Invoker
from .schedules import ScheduleError
from .servicebus_listener import ServiceBusListener
from .settings import SettingsError, export_settings, is_function_disabled
from .settlement_server import SettlementService
from .timer_listener import ScheduleMonitor, TimerListener
from .worker_channel import IndexingFailed, WorkerChannel, WorkerGone
from .worker_logs import WorkerLogRouter

SERVICE_BUS_TRIGGER = "serviceBusTrigger"
TIMER_TRIGGER = "timerTrigger"

log = logging.getLogger("funchost.host")


class LocalFunctionsHost:
    """Programmatic host (tests, chaos suite); the CLI in ``funchost.__main__`` wraps it.

    ``settings`` play the part of local.settings.json ``Values``; ``host_json`` replaces the app's host.json;
    ``functions`` limits the functions started (``func start --functions``).
    """

    def __init__(self, app_root: str | os.PathLike, settings: Mapping[str, str] | None = None,
                 host_json: dict[str, Any] | None = None, functions: list[str] | None = None, *,
                 script_file: str | None = None, poll_interval: float = 1.0,
                 state_dir: str | os.PathLike | None = None, placeholder: bool = False) -> None:
        self.app_root = Path(app_root).resolve()
        self.settings = {str(k): str(v) for k, v in (settings or {}).items()}
        self.host_json = host_json
        self.selected = list(functions) if functions else None
        self.script_file = script_file
        self.poll_interval = poll_interval
        # What the host keeps between runs (the timers' schedule status); in Azure, AzureWebJobsStorage.
        self.state_dir = Path(state_dir) if state_dir else self.app_root / ".localstack" / "funchost"
        # A cold start as on a pre-warmed instance: the worker starts without the app and its settings, then is
        # specialised (FunctionEnvironmentReloadRequest), the library's other path to indexing.
        self.placeholder = placeholder
        self.config: HostConfig | None = None
        self.function_errors: dict[str, str] = {}  # functions "in error" at start-up, with the reason
        self.index_error: str | None = None  # the app could not be indexed (it raised on import): no function runs
        self.listeners: list[ServiceBusListener | TimerListener] = []
        self.settlement = SettlementService()
        self.channel: WorkerChannel | None = None
        self._stopping = threading.Event()
        self._abort = threading.Event()
        self._invoker: Invoker | None = None
        self._exported: dict[str, str] = {}
        self._started = False

    # -- public API ------------------------------------------------------------------------------------------
    @property
    def invocations(self) -> dict[str, dict[str, int]]:
        """name -> {"succeeded": n, "failed": n}; live counters (a timeout counts as failed)."""
        return self._invoker.counts if self._invoker else {}

    @property
    def functions(self) -> list[str]:
        return [listener.name for listener in self.listeners]

    def start(self) -> "LocalFunctionsHost":
        """Start the worker, index the app and start the listeners on background threads; returns once they run."""
        if self._started:
            raise RuntimeError("host already started")
        self._started = True
        exported = export_settings(self.settings)
        if self.script_file:
            os.environ["PYTHON_SCRIPT_FILE_NAME"] = self.script_file
            exported.append("PYTHON_SCRIPT_FILE_NAME")
        self._exported = {name: os.environ[name] for name in exported}
        try:
            self.config = HostConfig.from_dict(
                self.host_json if self.host_json is not None else load_host_json(self.app_root))
            script = os.environ.get("PYTHON_SCRIPT_FILE_NAME") or "function_app.py"
            if not (self.app_root / script).is_file():
                raise FileNotFoundError(f"script file not found: {self.app_root / script}")
            from .rpc import load as load_rpc
            logs = WorkerLogRouter(load_rpc()[0])
            hides = frozenset(self._exported) if self.placeholder else None
            self.channel = WorkerChannel(self.app_root, self.app_root, self.settlement, logs, placeholder_hides=hides)
            self._invoker = Invoker(self.channel, logs, self.config.function_timeout, self._abort)
            chosen = self._select(self._index())
            if chosen:
                for name, error in self.channel.load(chosen).items():
                    log.error("The '%s' function is in error: %s", name, error)
                    self.function_errors[name] = error
            for function in chosen:
                if function.name in self.function_errors:
                    continue
                listener = self._listener_for(function)
                if listener is not None:
                    self._invoker.register(function.name)
                    self.listeners.append(listener)
        except BaseException:
            if self.channel is not None:
                self.channel.stop()
            self._restore_environment()
            raise
        lines = "".join(f"\n\t{listener.name}: {self._trigger_type(listener)}" for listener in self.listeners)
        log.info("Functions:\n%s\n", lines)
        for listener in self.listeners:
            listener.start()
        log.info("Host started (%s)", self._started_line())
        return self

    def _started_line(self) -> str:
        """How many functions listen, and when none does, why: the one line a developer reads after a start."""
        count = len(self.listeners)
        if count:
            return f"{count} function(s) listening"
        if self.index_error:
            return "0 functions listening: the worker could not index the app, see the error above"
        if self.function_errors:
            return f"0 functions listening: {', '.join(sorted(self.function_errors))} in error, see above"
        return "0 functions listening: none selected (--functions, host.json functions or AzureWebJobs.*.Disabled)"

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop receiving, give running invocations up to ``timeout`` seconds, then close.
        Returns False when some invocation was still running (it is abandoned to its lock)."""
        if not self._started or self._stopping.is_set():
            return True
        self._stopping.set()
        deadline = time.monotonic() + timeout
        clean = all([listener.join(deadline) for listener in self.listeners])
        if not clean:
            log.warning("Invocations still running after %.0fs; stopping without them", timeout)
            self._abort.set()
            grace = time.monotonic() + 5.0
            for listener in self.listeners:
                listener.join(grace)
        for listener in self.listeners:
            listener.close()
        if self.channel is not None:
            self.channel.stop()
        self._restore_environment()
        log.info("Host stopped")
        return clean

    def __enter__(self) -> "LocalFunctionsHost":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------------------------
    def _index(self) -> list[IndexedFunction]:
        """The worker's indexing: an app that raises while it is imported indexes no function (the host says so,
        with the library's message, and consumes nothing)."""
        try:
            return self.channel.start()
        except (IndexingFailed, WorkerGone) as exc:
            self.index_error = str(exc)
            log.error("Worker failed to index functions\nResult: Failure\nException: %s", self.index_error)
            log.error("No job functions found. The app raised while it was imported, or a function failed the "
                      "worker's checks; fix the cause above and start again.")
            return []

    def _select(self, triggers: list[IndexedFunction]) -> list[IndexedFunction]:
        wanted = None
        if self.config.functions is not None:
            wanted = set(self.config.functions)
        if self.selected is not None:
            wanted = set(self.selected) if wanted is None else wanted & set(self.selected)
            unknown = set(self.selected) - {t.name for t in triggers}
            if unknown:
                log.warning("No such function(s): %s", ", ".join(sorted(unknown)))
        chosen = []
        for trigger in triggers:
            if wanted is not None and trigger.name not in wanted:
                continue
            if is_function_disabled(trigger.name, os.environ):
                log.info("Function Functions.%s is disabled.", trigger.name)
                continue
            chosen.append(trigger)
        return chosen

    def _listener_for(self, trigger: IndexedFunction):
        kind = trigger.trigger_type
        if kind not in (SERVICE_BUS_TRIGGER, TIMER_TRIGGER):
            log.warning("Functions.%s: %s is not run by this host (Service Bus and timer triggers only)",
                        trigger.name, kind)
            return None
        try:
            if trigger.other_bindings:
                types = ", ".join(sorted({b.get("type", "?") for b in trigger.other_bindings}))
                raise SettingsError(f"bindings other than the trigger are not supported by this host ({types})")
            if kind == SERVICE_BUS_TRIGGER:
                target = resolve_service_bus(trigger, os.environ, self.config.service_bus)
                return ServiceBusListener(target, self.config.service_bus, self._invoker, self.settlement,
                                          self._stopping, self.poll_interval)
            monitor = ScheduleMonitor(self.state_dir / "timers" / f"{trigger.name}.json")
            return TimerListener(resolve_timer(trigger, os.environ), self._invoker, self._stopping, monitor)
        except (SettingsError, ScheduleError) as e:
            # The host's wording; the function is skipped and the rest of the app runs.
            log.error("The '%s' function is in error: %s", trigger.name, e)
            self.function_errors[trigger.name] = str(e)
            return None

    @staticmethod
    def _trigger_type(listener) -> str:
        return SERVICE_BUS_TRIGGER if isinstance(listener, ServiceBusListener) else TIMER_TRIGGER

    def _restore_environment(self) -> None:
        """Take back the settings this host put into os.environ (so a later host in the process starts clean)."""
        for name, value in self._exported.items():
            if os.environ.get(name) == value:
                del os.environ[name]
        self._exported = {}
