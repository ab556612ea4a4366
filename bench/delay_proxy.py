"""A TCP proxy that delays what the client sends by a fixed time: latency for a service that has no fault injection.

Azurite (the ledger) has no control API to slow it down, so the benchmark puts this proxy between the app and
Azurite's table endpoint. Every chunk from the client is forwarded ``delay`` seconds after it arrived, in order;
answers come back at once. An HTTP request (its headers and body arrive together) therefore reaches Azurite
``delay`` later, which is what one round trip to a remote Table Storage costs; requests on a kept-alive connection
each pay it once. With a latency distribution (``bench.profiles.Latency``) instead of a fixed delay, each chunk's
delay is drawn from it (chunks of one connection still arrive in order).
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
        await asyncio.gather(self._delayed(client_r, up_w), self._plain(up_r, client_w), return_exceptions=True)
        for w in (up_w, client_w):
            w.close()

    async def _delayed(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()

        sender = asyncio.ensure_future(pump())
        last_due = 0.0
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                last_due = max(last_due, loop.time() + self._next_delay())
                queue.put_nowait((last_due, data))
        finally:
            queue.put_nowait((None, None))
            await sender

    @staticmethod
    async def _plain(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            data = await src.read(65536)
            if not data:
                break
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()


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
