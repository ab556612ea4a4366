"""The HTTP machinery shared by the Auth0, Key Vault, API Management and identity stand-ins.

A stand-in subclasses :class:`HttpStandIn`, declares its routes with :func:`route` (method, path regex and an
operation name such as ``clients.create``) and formats errors the way its service does. The base class adds:

- a threaded HTTP/1.1 server with keep-alive, optionally TLS (see ``tls.py``);
- fault injection and call counters per operation (``faults.py``), applied before the handler runs;
- a control API under ``/_control/`` for tests, the chaos suite and benchmarks (see ``control.py``);
- optional persistence of the stand-in's state to a JSON file after each change.

State is guarded by one lock per stand-in: the services' own consistency is per resource, and loopback tests
never need more throughput than one lock gives.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from .faults import FaultPlan
from .tls import TlsFiles

log = logging.getLogger("emulators")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any  # email.message.Message: case-insensitive
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    op: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, "invalid_body", f"Request body is not valid JSON: {exc.msg}") from None


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON, bytes -> raw, None -> empty
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """Raised by handlers; the stand-in turns it into its service's error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra


def route(method: str, pattern: str, op: str):
    """Declare a handler for ``method`` on a path matching ``pattern`` (named groups become params)."""

    def wrap(fn):
        fn._route = (method.upper(), re.compile("^" + pattern + "$"), op)
        return fn

    return wrap


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class HttpStandIn:
    name = "standin"
    #: how long an injected ``timeout`` holds the request before dropping it
    fault_timeout_seconds = 15.0

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: TlsFiles | None = None,
                 state_file: str | Path | None = None, seed: int | None = None):
        self.host, self._port, self.tls = host, port, tls
        self.faults = FaultPlan(seed)
        self.lock = threading.RLock()
        self.state_file = Path(state_file) if state_file else None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes = []
        for attr in dir(type(self)):
            fn = getattr(type(self), attr)
            if callable(fn) and hasattr(fn, "_route"):
                method, rx, op = fn._route
                self._routes.append((method, rx, op, getattr(self, attr)))
        # Longer, more specific patterns first so `/clients/{id}/rotate-secret` wins over `/clients/{id}`.
        self._routes.sort(key=lambda r: -len(r[1].pattern))
        if self.state_file and self.state_file.exists():
            self.load_state(json.loads(self.state_file.read_text()))

    # -- to override ---------------------------------------------------------------------------
    def error_body(self, err: HttpError) -> Any:
        return {"error": {"code": err.code, "message": err.message}}

    def before(self, req: Request) -> dict[str, str]:
        """Authentication, rate limiting... Raise HttpError to refuse. Returns headers for every response."""
        return {}

    def dump_state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def reset(self) -> None:
        """Forget every resource (control API ``POST /_control/reset``)."""
        self.load_state({})

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> "HttpStandIn":
        standin = self

        class Handler(_Handler):
            owner = standin

        self._server = _Server((self.host, self._port), Handler)
        if self.tls:
            # Handshake in the connection's own thread, not in the accept loop.
            self._server.socket = self.tls.server_context().wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{self.name}-http",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            with self.lock:
                self.persist()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def persist(self) -> None:
        if self.state_file:
            # A name of its own: two stand-ins may share a state file (a restart test), and may persist at once.
            tmp = self.state_file.with_suffix(f".{os.getpid()}-{id(self):x}.tmp")
            tmp.write_text(json.dumps(self.dump_state(), indent=1, sort_keys=True))
            tmp.replace(self.state_file)

    # -- control API -----------------------------------------------------------------------------
    def _control(self, req: Request) -> Response:
        what = req.path[len("/_control/"):].strip("/")
        body = req.json() or {}
        if what == "calls" and req.method == "GET":
            d = self.faults.describe()
            return Response(200, {"calls": d["calls"], "injected": d["injected"]})
        if what == "calls" and req.method == "DELETE":
            self.faults.reset_counters()
            return Response(204)
        if what == "faults" and req.method == "GET":
            return Response(200, self.faults.describe())
        if what == "faults" and req.method == "PUT":
            self.faults.set_rules(body.get("rules", []))
            if "timeout_seconds" in body:
                self.fault_timeout_seconds = float(body["timeout_seconds"])
            return Response(200, self.faults.describe())
        if what == "faults" and req.method == "DELETE":
            self.faults.clear()
            return Response(204)
        if what == "faults/script" and req.method == "POST":
            self.faults.add_script(body["op"], body["fail_with"], int(body.get("count", 1)))
            return Response(200, self.faults.describe())
        if what == "state" and req.method == "GET":
            with self.lock:
                return Response(200, self.dump_state())
        if what == "reset" and req.method == "POST":
            with self.lock:
                self.reset()
                self.persist()
            self.faults.clear()
            self.faults.reset_counters()
            return Response(204)
        if what == "config" and req.method in ("GET", "PATCH"):
            with self.lock:
                if req.method == "PATCH":
                    self.set_config(body)
                return Response(200, self.get_config())
        if what == "health":
            return Response(200, {"name": self.name, "status": "ok"})
        raise HttpError(404, "not_found", f"unknown control endpoint {req.method} {req.path}")

    def get_config(self) -> dict:
        return {"fault_timeout_seconds": self.fault_timeout_seconds}

    def set_config(self, values: dict) -> None:
        if "fault_timeout_seconds" in values:
            self.fault_timeout_seconds = float(values["fault_timeout_seconds"])

    # -- dispatch --------------------------------------------------------------------------------
    def dispatch(self, req: Request, handler: "_Handler") -> Response | None:
        if req.path.startswith("/_control/"):
            req.op = "_control"
            return self._control(req)
        for method, rx, op, fn in self._routes:
            m = rx.match(req.path)
            if m and method == req.method:
                req.params = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
                req.op = op
                return self._run(fn, req, handler)
        for method, rx, op, fn in self._routes:
            if rx.match(req.path):
                raise HttpError(405, "MethodNotAllowed", f"The requested method {req.method} is not allowed for {req.path}")
        raise HttpError(404, "NotFound", f"No route for {req.method} {req.path}")

    def _run(self, fn: Callable[[Request], Response], req: Request, handler: "_Handler") -> Response | None:
        latency = self.faults.latency_ms(req.op)
        if latency:
            time.sleep(latency / 1000.0)
        # Authentication and rate limiting come first, so an unauthenticated challenge request (Key Vault's
        # first call) does not use up a scripted fault meant for a real call.
        extra = self.before(req)
        fail = self.faults.failure(req.op)
        if fail == "drop":
            handler.drop()
            return None
        if fail == "timeout":
            time.sleep(self.fault_timeout_seconds)
            handler.drop()
            return None
        if fail == "drop_after":
            # The service applied the call but the answer never arrived: the case that makes blind retries
            # of a create duplicate resources.
            with self.lock:
                fn(req)
                self.persist()
            handler.drop()
            return None
        if isinstance(fail, int):
            raise HttpError(fail, "InjectedFault", f"Injected fault on {req.op}", headers=extra,
                            injected=True)
        with self.lock:
            resp = fn(req)
            if req.method != "GET":
                self.persist()
        for k, v in extra.items():
            resp.headers.setdefault(k, v)
        return resp


class _Handler(BaseHTTPRequestHandler):
    owner: HttpStandIn
    protocol_version = "HTTP/1.1"
    server_version = "local-stack"
    sys_version = ""

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; with Nagle on, the body waits for the client's delayed ACK
        # (~40 ms per keep-alive request on Linux loopback).
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):  # route the stdlib's access log to logging, not stderr
        log.debug("%s %s", self.owner.name, fmt % args)

    def drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._dropped = True

    def _handle(self):
        self._dropped = False
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, parsed.path, urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
                      self.headers, body)
        try:
            resp = self.owner.dispatch(req, self)
        except HttpError as err:
            resp = Response(err.status, self.owner.error_body(err), dict(err.headers))
        except Exception as exc:  # a stand-in bug must still answer like a service would: a 500
            log.exception("%s: unhandled error on %s %s", self.owner.name, self.command, self.path)
            resp = Response(500, self.owner.error_body(HttpError(500, "InternalError", f"stand-in error: {exc}")))
        if resp is None or self._dropped:
            return
        self._send(resp)

    def _send(self, resp: Response) -> None:
        if resp.body is None:
            payload, ctype = b"", None
        elif isinstance(resp.body, (bytes, bytearray)):
            payload, ctype = bytes(resp.body), "application/octet-stream"
        else:
            payload, ctype = json.dumps(resp.body).encode(), "application/json; charset=utf-8"
        self.send_response(resp.status)
        headers = {k.lower(): v for k, v in resp.headers.items()}
        if ctype and "content-type" not in headers:
            self.send_header("Content-Type", ctype)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


def bearer_token(req: Request) -> str | None:
    auth = req.headers.get("Authorization") or ""
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
