"""The worker's log records in the host's log, as Core Tools shows them.

- ``User`` records of a running invocation go to the invocation's logger (``Function.<name>.User``) at their level;
  Core Tools prints them at Information and above.
- ``User`` records that belong to no running invocation (an app's start-up, a background thread that does not
  carry the invocation id) are dropped by the host ("IgnoringRpcLog"): they never reach its log. Here they are
  kept at DEBUG on ``funchost.worker_logs``, marked, for a developer who asks for them.
- ``System`` records (the worker's and the library's own) go to ``Worker.LanguageWorkerChannel.python.<id>``,
  Warning, Information and Error at their level and the rest as Information; Core Tools shows them from Warning up
  (``configure_console_logging`` sets that logger's level).
- The worker's stdout and stderr are read line by line; the prefix its console handler writes before the stream
  is up (``LanguageWorkerConsoleLog``) is taken off, as the host does.
"""
from __future__ import annotations

import logging
import re
import threading

WORKER_LOGGER = "Worker.LanguageWorkerChannel.python"
CONSOLE_LOGGER = "Host.Function.Console"
_CONSOLE = re.compile(r"^LanguageWorkerConsoleLog\s*(?:(DEBUG|INFO|WARNING|ERROR|CRITICAL):\s?)?(.*)$")
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
           "CRITICAL": logging.CRITICAL}

log = logging.getLogger("funchost.worker_logs")


class WorkerLogRouter:
    def __init__(self, protos) -> None:
        self._levels = {protos.RpcLog.Trace: logging.DEBUG, protos.RpcLog.Debug: logging.DEBUG,
                        protos.RpcLog.Information: logging.INFO, protos.RpcLog.Warning: logging.WARNING,
                        protos.RpcLog.Error: logging.ERROR, protos.RpcLog.Critical: logging.CRITICAL}
        self._system = protos.RpcLog.System
        self._running: dict[str, str] = {}  # invocation id -> function name
        self._lock = threading.Lock()
        self.worker_id = ""

    def invocation_started(self, invocation_id: str, function_name: str) -> None:
        with self._lock:
            self._running[invocation_id] = function_name

    def invocation_ended(self, invocation_id: str) -> None:
        with self._lock:
            self._running.pop(invocation_id, None)

    def rpc_log(self, record) -> None:
        level = self._levels.get(record.level)
        if level is None:  # RpcLog.Level None: nothing to show
            return
        if record.log_category == self._system:
            shown = level if level in (logging.WARNING, logging.INFO, logging.ERROR) else logging.INFO
            logging.getLogger(f"{WORKER_LOGGER}.{self.worker_id[:8]}").log(shown, "%s", record.message)
            return
        with self._lock:
            function_name = self._running.get(record.invocation_id) if record.invocation_id else None
        if function_name is None:
            log.debug("(not in the host's log: outside an invocation) %s: %s", record.category, record.message)
            return
        logging.getLogger(f"Function.{function_name}.User").log(
            level, "%s", record.message, extra={"invocation_id": record.invocation_id, "function_name": function_name,
                                                "worker_category": record.category})

    def console_line(self, line: str, stream_name: str) -> None:
        if not line.strip():
            return
        match = _CONSOLE.match(line)
        if match:
            level = _LEVELS.get(match.group(1) or "INFO", logging.INFO)
            logging.getLogger(f"{WORKER_LOGGER}.{self.worker_id[:8]}").log(level, "%s", match.group(2))
            return
        logging.getLogger(CONSOLE_LOGGER).log(logging.ERROR if stream_name == "stderr" else logging.INFO, "%s", line)
