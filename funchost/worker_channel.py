"""The host's gRPC server and its channel to the worker process.

One server on a loopback port serves both FunctionRpc (the worker's event stream) and the Service Bus Settlement
service, as the Functions host serves both on its one gRPC endpoint. The worker is started as the host starts a
language worker (``--host --port --workerId --requestId --grpcMaxMessageLength --functions-uri
--functions-worker-id --functions-request-id --functions-grpc-max-message-length``, working directory the app root,
``AzureWebJobsScriptRoot`` and ``FUNCTIONS_*_DIRECTORY`` in its environment) and must open the stream with
StartStream. The host then sends, in the host's order: WorkerInitRequest (the library indexes the app there),
FunctionsMetadataRequest, one FunctionLoadRequest per function (the library's function ids, which it looks
invocations up by), then InvocationRequests. Answers are matched by kind, function id or invocation id.

The worker's RpcLogs reach the host's log as Core Tools shows them (see :mod:`funchost.worker_logs`); its stdout and
stderr are read line by line. When the process dies, or must be recycled after a function timeout, every pending
answer fails with :class:`WorkerGone` and a new process is started and loaded the same way.
"""
from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import grpc

from . import settlement_server
from .bindings import IndexedFunction
from .rpc import load as load_rpc
from .worker_logs import WorkerLogRouter

log = logging.getLogger("funchost.worker_channel")

HOST_VERSION = "4.1040.0.0"  # the Functions host v4 line this host imitates; the library only logs it
MAX_MESSAGE_LENGTH = 2147483647
START_TIMEOUT = 60.0
FUNCHOST_ROOT = Path(__file__).resolve().parent.parent


class WorkerGone(Exception):
    """The worker process ended (or was recycled) before it answered."""


class IndexingFailed(Exception):
    """The worker could not index the app: it raised while importing it, or a function failed the library's
    checks. ``str()`` is the library's exception text, which the host reports."""


class _Spawner:
    """Starts the worker processes from one thread that lives as long as the channel: the worker asks the kernel
    to kill it when the thread that started it ends (PR_SET_PDEATHSIG is per thread), which must be the host's end,
    not the end of whichever thread happened to restart it."""

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, name="worker-spawner", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            call, future = job
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def run(self, call):
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((call, future))
        return future.result()

    def close(self) -> None:
        self._jobs.put(None)


class _Stream:
    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.outgoing: queue.Queue = queue.Queue()
        self.ended = threading.Event()


class _FunctionRpcServicer:
    """The FunctionRpc service: binds each stream to the worker id its StartStream names."""

    def __init__(self, channel: "WorkerChannel") -> None:
        self.channel = channel

    def EventStream(self, request_iterator, context):
        try:
            first = next(request_iterator)
        except StopIteration:
            return
        if first.WhichOneof("content") != "start_stream":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message on the stream must be StartStream")
        stream = _Stream(first.start_stream.worker_id)
        if not self.channel._attach(stream):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"unknown worker id {stream.worker_id!r}")

        def read() -> None:
            try:
                for message in request_iterator:
                    self.channel._received(stream, message)
            except grpc.RpcError:
                pass
            finally:
                stream.ended.set()
                stream.outgoing.put(None)
                self.channel._detached(stream)

        threading.Thread(target=read, name=f"rpc-read-{stream.worker_id[:8]}", daemon=True).start()
        while True:
            item = stream.outgoing.get()
            if item is None:
                return
            yield item


class WorkerChannel:
    """Owns the gRPC server, the worker process and the pending answers."""

    def __init__(self, app_root: Path, function_app_directory: Path, settlement: settlement_server.SettlementService,
                 log_router: WorkerLogRouter, *, start_timeout: float = START_TIMEOUT,
                 placeholder_hides: frozenset[str] | None = None) -> None:
        self.app_root = app_root
        self.function_app_directory = function_app_directory
        self.settlement = settlement
        self.logs = log_router
        self.start_timeout = start_timeout
        # Placeholder mode (None: off): the worker starts as a pre-warmed instance does, on an empty app without
        # these settings, and is specialised with FunctionEnvironmentReloadRequest, which brings the environment.
        self.placeholder_hides = placeholder_hides
        self.protos, services = load_rpc()
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="grpc"),
                                   options=[("grpc.max_receive_message_length", MAX_MESSAGE_LENGTH),
                                            ("grpc.max_send_message_length", MAX_MESSAGE_LENGTH)])
        services.add_FunctionRpcServicer_to_server(_FunctionRpcServicer(self), self._server)
        settlement_server.add_to_server(settlement, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], concurrent.futures.Future] = {}
        self._stream: _Stream | None = None
        self._expected_worker: str | None = None
        self._attached = threading.Event()
        self._process: subprocess.Popen | None = None
        self._ready = threading.Event()
        self.functions: list[IndexedFunction] = []
        self._loaded: list[IndexedFunction] = []
        self._closing = False
        self.restarts = 0
        self._spawner = _Spawner()

    # -- the process -----------------------------------------------------------------------------------------
    def start(self) -> list[IndexedFunction]:
        """Start a worker, initialise it and read its functions (raises IndexingFailed when it cannot index)."""
        worker_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
        with self._lock:
            self._expected_worker = worker_id
            self._attached.clear()
        endpoint = f"127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "funchost.worker", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workerId", worker_id, "--requestId", request_id,
                   "--grpcMaxMessageLength", str(MAX_MESSAGE_LENGTH), "--functions-uri", f"http://{endpoint}/",
                   "--functions-worker-id", worker_id, "--functions-request-id", request_id,
                   "--functions-grpc-max-message-length", str(MAX_MESSAGE_LENGTH)]
        app_env = self._worker_environment(self.function_app_directory)
        start_dir, start_env = self.function_app_directory, app_env
        if self.placeholder_hides is not None:
            start_dir = Path(tempfile.mkdtemp(prefix="funchost-placeholder-"))
            start_env = {k: v for k, v in self._worker_environment(start_dir).items()
                         if k not in self.placeholder_hides}
        process = self._spawner.run(lambda: subprocess.Popen(
            command, cwd=str(start_dir), env=start_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace", bufsize=1))
        self._process = process
        for pipe, stream_name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            threading.Thread(target=self._pump, args=(pipe, stream_name), name=f"worker-{stream_name}",
                             daemon=True).start()
        threading.Thread(target=self._watch, args=(process,), name="worker-watch", daemon=True).start()
        log.info("Starting worker process: %s (pid %d)", " ".join(command[:3]), process.pid)
        deadline = time.monotonic() + self.start_timeout
        while not self._attached.wait(0.1):
            if process.poll() is not None:
                raise WorkerGone(f"the worker process exited with code {process.returncode} before it connected")
            if time.monotonic() > deadline:
                self._kill(process)
                raise WorkerGone(f"the worker did not connect within {self.start_timeout:.0f} s")
        log.info("Worker process started and initialized.")
        init = self._request("init", "", self.protos.StreamingMessage(worker_init_request=self.protos.WorkerInitRequest(
            host_version=HOST_VERSION, capabilities={"MultiStream": "10"},
            worker_directory=str(Path(__file__).resolve().parent), function_app_directory=str(start_dir))),
            self.start_timeout)
        if init.result.status != self.protos.StatusResult.Success:
            raise IndexingFailed(_exception_text(init.result))
        if self.placeholder_hides is not None:
            log.info("Specializing the placeholder worker for %s", self.function_app_directory)
            reload = self._request("reload", "", self.protos.StreamingMessage(
                function_environment_reload_request=self.protos.FunctionEnvironmentReloadRequest(
                    environment_variables=app_env, function_app_directory=str(self.function_app_directory))),
                self.start_timeout)
            if reload.result.status != self.protos.StatusResult.Success:
                raise IndexingFailed(_exception_text(reload.result))
        metadata = self._request("metadata", "", self.protos.StreamingMessage(
            functions_metadata_request=self.protos.FunctionsMetadataRequest(
                function_app_directory=str(self.function_app_directory))), self.start_timeout)
        if metadata.result.status != self.protos.StatusResult.Success:
            raise IndexingFailed(_exception_text(metadata.result))
        self.functions = [IndexedFunction(m.function_id, m.name, tuple(json.loads(b) for b in m.raw_bindings), m)
                          for m in metadata.function_metadata_results]
        return self.functions

    @staticmethod
    def _worker_environment(app_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"AzureWebJobsScriptRoot": str(app_dir),
                    "FUNCTIONS_WORKER_DIRECTORY": str(Path(__file__).resolve().parent),
                    "FUNCTIONS_APPLICATION_DIRECTORY": str(app_dir),
                    "FUNCTIONS_WORKER_RUNTIME_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}",
                    "PYTHONUNBUFFERED": "1"})
        # The worker imports funchost.worker from this checkout; the app's own directory comes first on its path.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FUNCHOST_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def load(self, functions: list[IndexedFunction]) -> dict[str, str]:
        """FunctionLoadRequest for each; returns name -> error for the functions the worker refused."""
        errors = {}
        for fn in functions:
            m = fn.metadata
            request = self.protos.FunctionLoadRequest(function_id=fn.function_id, metadata=self.protos.RpcFunctionMetadata(
                name=m.name, directory=m.directory, script_file=m.script_file, entry_point=m.entry_point,
                is_proxy=False, bindings=dict(m.bindings),
                properties={**dict(m.properties), "FunctionId": fn.function_id}))
            response = self._request("load", fn.function_id, self.protos.StreamingMessage(function_load_request=request),
                                     self.start_timeout)
            if response.result.status != self.protos.StatusResult.Success:
                errors[fn.name] = _exception_text(response.result)
        self._loaded = [fn for fn in functions if fn.name not in errors]
        self._ready.set()
        return errors

    def recycle(self, reason: str) -> None:
        """Kill the worker and start another with the same functions (after a function timeout, or a crash)."""
        with self._lock:
            if self._closing:
                return
        self._ready.clear()
        process = self._process
        log.warning("Restarting the worker process: %s", reason)
        if process is not None:
            self._kill(process)
        self._fail_pending(f"the worker process was recycled: {reason}")
        self.restarts += 1
        try:
            self.start()
            self.load(self._loaded)
        except Exception as exc:  # noqa: BLE001 - reported; invocations fail until a later restart works
            log.error("The worker process could not be restarted: %s: %s", type(exc).__name__, exc)

    def stop(self) -> None:
        with self._lock:
            self._closing = True
            stream = self._stream
        if stream is not None:
            stream.outgoing.put(None)  # the worker sees the stream end and exits
        process = self._process
        if process is not None:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                self._kill(process)
        self._fail_pending("the host stopped")
        self._server.stop(grace=1).wait(2)
        self._spawner.close()

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.kill()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def _watch(self, process: subprocess.Popen) -> None:
        code = process.wait()
        with self._lock:
            closing, current = self._closing, self._process is process
        if closing or not current:
            return
        self._ready.clear()
        log.error("Language Worker Process exited. Pid=%d. Exit code %d.", process.pid, code)
        self._fail_pending(f"the worker process exited with code {code}")
        if self._loaded:
            threading.Thread(target=self.recycle, args=(f"it exited with code {code}",), name="worker-restart",
                             daemon=True).start()

    def _pump(self, pipe, stream_name: str) -> None:
        for line in iter(pipe.readline, ""):
            self.logs.console_line(line.rstrip("\n"), stream_name)
        pipe.close()

    # -- the stream ------------------------------------------------------------------------------------------
    def _attach(self, stream: _Stream) -> bool:
        """The one stream of the worker this host started last: the worker id is on its command line for anyone on
        the machine to read, so a second stream naming it is refused, not given the invocations."""
        with self._lock:
            if stream.worker_id != self._expected_worker:
                return False
            self._stream, self._expected_worker = stream, None
        self._attached.set()
        return True

    def _detached(self, stream: _Stream) -> None:
        with self._lock:
            if self._stream is stream:
                self._stream = None

    def _received(self, stream: _Stream, message) -> None:
        kind = message.WhichOneof("content")
        if kind == "rpc_log":
            self.logs.rpc_log(message.rpc_log)
            return
        key = {"worker_init_response": ("init", ""), "function_metadata_response": ("metadata", ""),
               "worker_status_response": ("status", message.request_id),
               "function_environment_reload_response": ("reload", "")}.get(kind)
        if kind == "function_load_response":
            key = ("load", message.function_load_response.function_id)
        elif kind == "invocation_response":
            key = ("invocation", message.invocation_response.invocation_id)
        if key is None:
            log.warning("Unexpected message from the worker: %s", kind)
            return
        with self._lock:
            future = self._pending.pop(key, None)
        if future is not None:
            future.set_result(getattr(message, kind))

    def _request(self, kind: str, key: str, message, timeout: float | None):
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            stream = self._stream
            if stream is None:
                raise WorkerGone("no worker is connected")
            self._pending[(kind, key)] = future
        stream.outgoing.put(message)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            with self._lock:
                self._pending.pop((kind, key), None)
            raise

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(WorkerGone(reason))

    # -- invocations -----------------------------------------------------------------------------------------
    def invoke(self, request, timeout: float | None):
        """Send one InvocationRequest and wait for its answer (``concurrent.futures.TimeoutError`` after
        ``timeout``); waits for a restarting worker first."""
        if not self._ready.wait(self.start_timeout):
            raise WorkerGone("no worker is ready")
        return self._request("invocation", request.invocation_id,
                             self.protos.StreamingMessage(invocation_request=request), timeout)

    def worker_status(self, timeout: float = 5.0) -> float:
        """Seconds a WorkerStatusRequest took to be answered (the host's health check)."""
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        self._request("status", request_id, self.protos.StreamingMessage(
            request_id=request_id, worker_status_request=self.protos.WorkerStatusRequest()), timeout)
        return time.monotonic() - started

    @property
    def worker_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None


def _exception_text(result) -> str:
    exc = result.exception
    return exc.message or result.result or "the worker reported a failure without a message"
