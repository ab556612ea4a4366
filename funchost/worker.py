"""``python -m funchost.worker``: the Python language worker process that the local host starts.

In Azure, for Python 3.13, the platform starts a thin "proxy worker" (not published on PyPI) that connects to the
host's FunctionRpc stream and hands every request to Microsoft's worker library, ``azure-functions-runtime``, which
the app's requirements.txt pins: the library indexes ``function_app.py``, converts the bindings, runs the functions
(sync ones on its thread pool, sized by ``PYTHON_THREADPOOL_THREAD_COUNT``) and builds the answers. This module is
that thin part, written for the local host from what the proxy does; everything that touches the app is the
library's. It

- reads the host's address and its ids from the command line, in the form the host passes them (the settlement
  package reads the same ``--host``/``--port``/``--functions-grpc-max-message-length`` from this process's argv);
- says ``StartStream`` with its worker id, then answers each request on the stream as its own task: init (which
  also indexes the app), functions metadata, function load, environment reload, invocations, worker status;
- sends every log record at INFO or above, from any logger, to the host as an ``RpcLog``: ``System`` for the
  worker's and the library's loggers (``azure.functions``, ``azure_functions_runtime``, ``funchost``), ``User``
  for the others, with the invocation id of the invocation the record belongs to;
- ends when the host closes the stream or goes away (the process also asks the kernel for SIGKILL when its
  parent dies, so a killed host takes its worker with it, as a container does).
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYSTEM_PREFIXES = ("azure.functions", "azure_functions_runtime", "funchost")
CONSOLE_PREFIX = "LanguageWorkerConsoleLog"

log = logging.getLogger("funchost.worker")


@dataclass
class WorkerRequest:
    """What the library's coroutines take: the request's name, the whole StreamingMessage, and for init and
    environment reload the protobuf module and the host's address."""
    name: str
    request: Any
    properties: dict | None = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m funchost.worker", description="the local host's Python worker")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workerId", dest="worker_id", required=True)
    p.add_argument("--requestId", dest="request_id", required=True)
    p.add_argument("--grpcMaxMessageLength", dest="grpc_max_message_length", type=int, default=-1)
    p.add_argument("--functions-uri")
    p.add_argument("--functions-worker-id")
    p.add_argument("--functions-request-id")
    p.add_argument("--functions-grpc-max-message-length", type=int, default=-1)
    return p.parse_args(argv)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the thread that started it ends (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        return
    if os.getppid() == 1:  # the host was gone before the request took effect
        os._exit(0)


class RpcLogHandler(logging.Handler):
    """Every record to the host as an RpcLog, from whichever thread logs it."""

    def __init__(self, send, protos, invocation_id_cv) -> None:
        super().__init__(logging.INFO)
        self._send, self._protos, self._invocation = send, protos, invocation_id_cv
        self._local = threading.local()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._local, "busy", False):  # a record logged while sending one (grpc's own logs)
            return
        self._local.busy = True
        try:
            p = self._protos.RpcLog
            level = (p.Critical if record.levelno >= 50 else p.Error if record.levelno >= 40 else
                     p.Warning if record.levelno >= 30 else p.Information if record.levelno >= 20 else
                     p.Debug if record.levelno >= 10 else getattr(p, "None"))
            system = record.name.startswith(SYSTEM_PREFIXES)
            invocation = self._invocation.get() or _thread_invocation()
            self._send(self._protos.StreamingMessage(rpc_log=self._protos.RpcLog(
                invocation_id=invocation or "", category=record.name, level=level, message=self.format(record),
                log_category=p.System if system else p.User)))
        except Exception:  # noqa: BLE001 - a log line must never break the function that logged it
            self.handleError(record)
        finally:
            self._local.busy = False


def _thread_invocation() -> str | None:
    """A thread the app started and tagged as Microsoft documents (``context.thread_local_storage``)."""
    try:
        from azure_functions_runtime.bindings.context import _invocation_id_local
    except ImportError:
        return None
    return getattr(_invocation_id_local, "invocation_id", None)


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        import azure_functions_runtime as runtime
        from azure_functions_runtime.utils.executor import invocation_id_cv

        from funchost.rpc import load

        self.args = args
        self.runtime = runtime
        self.invocation_id_cv = invocation_id_cv
        self.protos, self.services = load()
        # This checkout was on the path for funchost's own modules, now imported. An app elsewhere must not import
        # this checkout's modules (its function_app.py first of all) in place of its own, as it never could in Azure.
        root = str(Path(__file__).resolve().parent.parent)
        if os.environ.get("AzureWebJobsScriptRoot") != root:
            sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != root]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.outgoing: asyncio.Queue | None = None
        self.tasks: set[asyncio.Task] = set()

    def send(self, message) -> None:
        """Queue a message for the host; safe from any thread."""
        if not message.request_id:
            message.request_id = self.args.request_id
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.outgoing.put_nowait, message)

    async def run(self) -> None:
        import grpc

        self.loop = asyncio.get_running_loop()
        self.outgoing = asyncio.Queue()
        options = []
        if self.args.functions_grpc_max_message_length and self.args.functions_grpc_max_message_length > 0:
            length = self.args.functions_grpc_max_message_length
            options = [("grpc.max_receive_message_length", length), ("grpc.max_send_message_length", length)]
        async with grpc.aio.insecure_channel(f"{self.args.host}:{self.args.port}", options=options) as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=5.0)
            stub = self.services.FunctionRpcStub(channel)
            call = stub.EventStream(self._outgoing())
            self.send(self.protos.StreamingMessage(start_stream=self.protos.StartStream(worker_id=self.args.worker_id)))
            self._log_to_host()
            try:
                async for message in call:
                    task = asyncio.create_task(self._dispatch(message))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE):
                    raise

    async def _outgoing(self):
        while True:
            message = await self.outgoing.get()
            yield message

    def _log_to_host(self) -> None:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, "console_before_stream", False):
                root.removeHandler(handler)
        root.addHandler(RpcLogHandler(self.send, self.protos, self.invocation_id_cv))
        debug = os.environ.get("PYTHON_ENABLE_DEBUG_LOGGING", "").lower() in ("1", "true")
        root.setLevel(logging.DEBUG if debug else logging.INFO)

    async def _dispatch(self, message) -> None:
        kind = message.WhichOneof("content")
        rt, protos = self.runtime, self.protos
        init_properties = {"protos": protos, "host": self.args.host}
        try:
            if kind == "worker_init_request":
                self._app_on_path(message.worker_init_request.function_app_directory)
                rt.start_threadpool_executor()
                response = await rt.worker_init_request(WorkerRequest("WorkerInitRequest", message, init_properties))
                self.send(protos.StreamingMessage(worker_init_response=response))
            elif kind == "function_environment_reload_request":
                self._app_on_path(message.function_environment_reload_request.function_app_directory)
                rt.start_threadpool_executor()
                response = await rt.function_environment_reload_request(
                    WorkerRequest("FunctionEnvironmentReloadRequest", message, init_properties))
                self.send(protos.StreamingMessage(function_environment_reload_response=response))
            elif kind == "functions_metadata_request":
                response = await rt.functions_metadata_request(WorkerRequest("WorkerMetadataRequest", message))
                self.send(protos.StreamingMessage(request_id=message.request_id, function_metadata_response=response))
            elif kind == "function_load_request":
                response = await rt.function_load_request(WorkerRequest("FunctionLoadRequest", message))
                self.send(protos.StreamingMessage(function_load_response=response))
            elif kind == "invocation_request":
                # Records the library logs before the function runs belong to the invocation too.
                self.invocation_id_cv.set(message.invocation_request.invocation_id)
                response = await rt.invocation_request(WorkerRequest("FunctionInvocationRequest", message))
                self.send(protos.StreamingMessage(invocation_response=response))
            elif kind == "worker_status_request":
                self.send(protos.StreamingMessage(request_id=message.request_id,
                                                  worker_status_response=protos.WorkerStatusResponse()))
            else:
                log.error("Unknown StreamingMessage content type: %s", kind)
        except Exception:  # noqa: BLE001 - the library answers its own failures; this is the worker's own bug
            log.exception("The worker failed to handle %s", kind)

    @staticmethod
    def _app_on_path(directory: str) -> None:
        """The library imports the script by module name: the app's directory must be on sys.path."""
        directory = directory or os.environ.get("AzureWebJobsScriptRoot", "")
        if directory and directory not in sys.path:
            sys.path.append(directory)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _die_with_parent()
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter(f"{CONSOLE_PREFIX} %(levelname)s: %(message)s"))
    console.console_before_stream = True  # type: ignore[attr-defined]
    logging.getLogger().addHandler(console)
    logging.getLogger().setLevel(logging.INFO)
    worker = Worker(args)
    try:
        asyncio.run(worker.run())
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - the host reads this on the worker's stderr
        print(f"{CONSOLE_PREFIX} ERROR: worker stopped: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        os._exit(1)
    # The host closed the stream: invocations still running on the pool are abandoned with the process, as when the
    # host recycles a worker.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
