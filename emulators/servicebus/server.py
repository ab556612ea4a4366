"""``ServiceBusStandIn``: runs the broker on its own event-loop thread.

The SDK clients under test run in other threads (or processes); they only ever talk to the
stand-in over TCP. The few in-process entry points (``snapshot``, ``stop``) hop onto the loop
thread with ``asyncio.run_coroutine_threadsafe`` / ``call_soon_threadsafe``, so broker state is
only ever touched by that one thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import threading
from pathlib import Path
from typing import Any, Dict, Optional

from .amqp import Server
from .broker import DEFAULT_MAX_MESSAGE_SIZE, Broker
from .config import validate_config
from .persistence import StateFile, read_state

_LOG = logging.getLogger("emulators.servicebus")

__all__ = ["ServiceBusStandIn"]


class ServiceBusStandIn:
    """An AMQP 1.0 endpoint that the azure-servicebus client accepts as a namespace.

    ``config`` has the shape of the official emulator's Config.json (see ``load_config``). With ``state_file``
    the messages outlive the stand-in: kept there after changes and on stop, read back on start
    (``persistence.py`` says what a crash can lose).
    """

    def __init__(
        self,
        config: Dict[str, Any],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sas_key_name: str = "RootManageSharedAccessKey",
        sas_key: str = "SAS_KEY_VALUE",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        state_file: Optional[str | Path] = None,
    ):
        validate_config(config)
        self.state_file = Path(state_file) if state_file else None
        self._state: Optional[StateFile] = None
        self._config = copy.deepcopy(config)
        self.host = host
        self._requested_port = port
        self.port: Optional[int] = None
        self.sas_key_name = sas_key_name
        self.sas_key = sas_key
        self.max_message_size = max_message_size
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._server: Optional[Server] = None
        self._broker: Optional[Broker] = None
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 10.0) -> "ServiceBusStandIn":
        """Start listening; returns once the port is bound. Non-blocking otherwise."""
        if self._thread is not None:
            raise RuntimeError("already started")
        ready: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._broker = self._new_broker(loop)
                if self.state_file is not None:
                    self._broker = self._restore(loop)
                self._server = Server(self._broker, loop)
                port = loop.run_until_complete(self._server.start(self.host, self._requested_port))
            except BaseException as exc:  # report bind/config errors to the caller of start()
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(port)
            try:
                loop.run_forever()
            finally:
                try:
                    loop.run_until_complete(self._server.stop())
                    if self._state is not None:
                        self._state.flush()  # after the connections closed: what they released is in it
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()
                    self._stopped.set()

        self._thread = threading.Thread(target=run, name="servicebus-standin", daemon=True)
        self._thread.start()
        self.port = ready.result(timeout)
        _LOG.info("Service Bus stand-in listening on %s:%s", self.host, self.port)
        return self

    def _new_broker(self, loop: asyncio.AbstractEventLoop) -> Broker:
        return Broker(self._config, loop, sas_key_name=self.sas_key_name, sas_key=self.sas_key,
                      max_message_size=self.max_message_size)

    def _restore(self, loop: asyncio.AbstractEventLoop) -> Broker:
        """A broker holding the kept state (an empty one when the state cannot be used), saving its changes."""
        assert self.state_file is not None
        broker = self._broker
        doc = read_state(self.state_file)
        if doc is not None:
            try:
                count = broker.load_state(doc)
                _LOG.info("Service Bus stand-in: %d message(s) taken back from %s", count, self.state_file)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # A fresh broker; the half-restored one's timers only touch that one, which nothing serves.
                broker = self._new_broker(loop)
                aside = self.state_file.with_name(self.state_file.name + ".unreadable")
                self.state_file.replace(aside)
                _LOG.error("the Service Bus state in %s cannot be used (%s); starting empty, the file is kept as %s",
                           self.state_file, exc, aside)
        self._state = StateFile(self.state_file, loop, broker.dump_state)
        broker.on_change = self._state.changed
        return broker

    def open_connections(self) -> int:
        """Client connections open now: an in-process host's idle receivers close a moment after it stops, and
        whoever stops the stand-in next may wait for them rather than force them closed."""
        server = self._server
        return len(server.connections) if server is not None else 0

    def stop(self, timeout: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None
        self._loop = None

    def __enter__(self) -> "ServiceBusStandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ info
    @property
    def connection_string(self) -> str:
        if self.port is None:
            raise RuntimeError("not started")
        # ``UseDevelopmentEmulator=true`` (lower-case) switches the SDK to plain TCP on this port
        # (``_base_handler.py`` _parse_conn_str; note "Connecting to a local endpoint").
        return (
            f"Endpoint=sb://{self.host}:{self.port};SharedAccessKeyName={self.sas_key_name};"
            f"SharedAccessKey={self.sas_key};UseDevelopmentEmulator=true"
        )

    def snapshot(self, timeout: float = 5.0) -> Dict[str, Any]:
        """Inspection view, taken on the loop thread; never contains message bodies.

        Shape::

            {"namespace": "sbemulatorns",
             "queues": {"<queue>": ENTITY},
             "topics": {"<topic>": {"scheduled_count": n, "scheduled_messages": [MESSAGE, ...],
                                    "subscriptions": {"<sub>": ENTITY}}}}

        ENTITY = {"active_count", "locked_count", "scheduled_count", "deferred_count",
        "dead_letter_count", "transfer_dead_letter_count", "messages": [MESSAGE...] (main
        sub-queue, scheduled ones included for queues), "dead_letter_messages": [MESSAGE...],
        "sessions": {id: {"locked", "locked_until_utc", "has_state"}}}. ``active_count`` counts
        active messages including locked ones, as Service Bus does.

        MESSAGE = {"sequence_number", "message_id", "session_id", "correlation_id", "subject",
        "content_type", "delivery_count", "state" (active|locked|deferred|scheduled|dead-lettered),
        "enqueued_time_utc", "scheduled_enqueue_time_utc", "expires_at_utc", "locked_until_utc"
        (epoch seconds), "dead_letter_reason", "dead_letter_error_description",
        "dead_letter_source", "size"}.
        """
        return self._call(lambda: self._broker.snapshot(), timeout)  # type: ignore[union-attr]

    def _call(self, fn: Any, timeout: float) -> Any:
        loop = self._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("the stand-in is not running")

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)
