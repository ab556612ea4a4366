"""The Service Bus stand-in's state file: the broker's messages kept across restarts of the stack.

A snapshot of the whole broker (``Broker.dump_state``), written after changes with a short debounce, always to a
temporary file that then replaces the old one, so the file is whole at every instant. Rewriting the whole store
is cheap while the queue holds little, as it does under a running host (a message's record is encoded again only
when it changed: 100 messages take about 3 ms a write, 10,000 about 0.2 s); when a backlog makes one write costly,
the wait between writes grows with it so that writing takes about ``MAX_SHARE`` of the loop's time, up to
``MAX_INTERVAL``.

What a stop loses: nothing on a clean stop (SIGTERM, Ctrl-C, ``make down``: ``flush`` runs after the last
connection closed). A crash (SIGKILL, power) loses the changes of the last debounce interval: ``MIN_INTERVAL``
(0.1 s) on a small queue, up to ``MAX_INTERVAL`` on a very large one.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

_LOG = logging.getLogger("emulators.servicebus")

MIN_INTERVAL = 0.1
MAX_INTERVAL = 2.0
MAX_SHARE = 0.05  # of the loop's time spent writing the state at most, under a steady stream of changes


class RawJson(str):
    """JSON text already encoded (a message's record, whose big part is encoded once): written as it is."""


def to_json(value: Any) -> str:
    if isinstance(value, RawJson):
        return value
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + to_json(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


def read_state(path: Path) -> Optional[Dict[str, Any]]:
    """The kept state, or None when there is none. An unreadable file is set aside (not deleted) and reported:
    the stand-in then starts empty rather than not at all."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        aside = path.with_name(path.name + ".unreadable")
        path.replace(aside)
        _LOG.error("the Service Bus state in %s cannot be read (%s); starting empty, the file is kept as %s",
                   path, exc, aside)
        return None


class StateFile:
    """Debounced, atomic writes of ``dump()``; every method runs on the broker's loop thread."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop, dump: Callable[[], Dict[str, Any]]) -> None:
        self.path = Path(path)
        self.loop = loop
        self.dump = dump
        self._pending: Optional[asyncio.TimerHandle] = None
        self._interval = MIN_INTERVAL
        self.writes = 0

    def changed(self) -> None:
        if self._pending is None:
            self._pending = self.loop.call_later(self._interval, self._write)

    def flush(self) -> None:
        """Write now if a change is waiting (the stand-in is stopping)."""
        if self._pending is not None:
            self._pending.cancel()
            self._write()

    def _write(self) -> None:
        self._pending = None
        started = time.perf_counter()
        try:
            data = to_json(self.dump())
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "w") as f:
                f.write(data)
            os.replace(tmp, self.path)
        except Exception:  # the broker must keep serving; the next change tries again
            _LOG.exception("could not write the Service Bus state to %s", self.path)
            return
        self.writes += 1
        cost = time.perf_counter() - started
        self._interval = min(MAX_INTERVAL, max(MIN_INTERVAL, cost / MAX_SHARE))
