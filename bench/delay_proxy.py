"""A TCP proxy that gives each round trip a latency: for a service that has no fault injection.

Azurite (the ledger) has no control API to slow it down, so the benchmark puts this proxy between the app and
Azurite's table endpoint. A request goes through at once; the answer is held until ``delay`` has passed since the
request's first bytes arrived, then flows as it comes. So one round trip takes the delay, with Azurite's own time
inside it rather than on top (when Azurite takes longer than the delay, its time is what counts): what one request
to a remote Table Storage costs, as the latency profile gives it. A request's later chunks (a body sent after its
headers) belong to the round trip already under way; the client's next chunk after an answer began is the next
request (the SDK does not pipeline). With a latency distribution (``bench.profiles.Latency``) instead of a fixed
delay, each round trip's delay is drawn from it.
"""
from __future__ import annotations

import asyncio
import random
import threading


class DelayProxy:
    def __init__(self, upstream_host: str, upstream_port: int, delay_seconds: float, host: str = "127.0.0.1",
                 seed: int | None = None):
        self.upstream = (upstream_host, int(upstream_port))
        self.set_delay(delay_seconds)
        self._rng = random.Random(seed)
        self.host = host
        self.port = 0
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def set_delay(self, delay) -> None:
        """A fixed delay in seconds, or a distribution in ms with ``draw(rng)`` (``bench.profiles.Latency``)."""
        self.delay = delay if hasattr(delay, "draw") else float(delay)

    def _next_delay(self) -> float:
        d = self.delay
        return d.draw(self._rng) / 1000.0 if hasattr(d, "draw") else d

    def start(self) -> "DelayProxy":
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, self.host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        trip = _RoundTrip()
        await asyncio.gather(self._requests(client_r, up_w, trip), self._answers(up_r, client_w, trip),
                             return_exceptions=True)
        for w in (up_w, client_w):
            w.close()

    async def _requests(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, trip: "_RoundTrip") -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await src.read(65536)
            if not data:
                break
            if not trip.open:  # the first bytes of a request: its round trip starts now
                trip.open, trip.due = True, loop.time() + self._next_delay()
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()

    @staticmethod
    async def _answers(src: asyncio.StreamReader, dst: asyncio.StreamWriter, trip: "_RoundTrip") -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await src.read(65536)
            if not data:
                break
            trip.open = False  # the answer has begun: the client's next bytes are a new request
            wait = trip.due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()


class _RoundTrip:
    """The request under way on one connection: whether its answer has begun, and when it may be answered."""

    def __init__(self) -> None:
        self.open = False
        self.due = 0.0


class DelayProxyProcess:
    """A :class:`DelayProxy` in a child process of its own, driven through a pipe: the benchmark measures the app
    in its own process, and a proxy thread there would take the app's GIL for every byte of the ledger's traffic
    (the stand-ins run in a process of their own for the same reason)."""

    def __init__(self, upstream_host: str, upstream_port: int, delay_seconds: float, seed: int | None = None):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # the benchmark's process has threads: never fork it
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_in_child, args=(child, upstream_host, int(upstream_port),
                                                                delay_seconds, seed), daemon=True,
                                 name="delay-proxy")
        self.port = 0

    def start(self, timeout: float = 30.0) -> "DelayProxyProcess":
        self._proc.start()
        if not self._conn.poll(timeout):
            raise RuntimeError("the delay proxy process did not start")
        self.port = self._conn.recv()
        return self

    def set_delay(self, delay) -> None:
        self._conn.send(("delay", delay))
        self._conn.recv()

    def stop(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(("stop", None))
                self._conn.recv()
            except (OSError, EOFError):
                pass
            self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


def _serve_in_child(conn, upstream_host: str, upstream_port: int, delay_seconds, seed) -> None:
    proxy = DelayProxy(upstream_host, upstream_port, delay_seconds, seed=seed).start()
    conn.send(proxy.port)
    while True:
        try:
            command, value = conn.recv()
        except (EOFError, OSError):  # the benchmark is gone
            command = "stop"
        if command == "delay":
            proxy.set_delay(value)
            conn.send(True)
        else:
            proxy.stop()
            try:
                conn.send(True)
            except OSError:
                pass
            return


def proxied_connection_string(connection_string: str, port: int, host: str = "127.0.0.1") -> str:
    """The storage connection string with its TableEndpoint pointed at ``host:port`` (the account path kept)."""
    parts = []
    for part in connection_string.split(";"):
        key, sep, value = part.partition("=")
        if key == "TableEndpoint" and sep:
            scheme, _, rest = value.partition("://")
            _, slash, path = rest.partition("/")
            value = f"{scheme}://{host}:{port}{slash}{path}"
        parts.append(f"{key}{sep}{value}" if sep else part)
    return ";".join(parts)
