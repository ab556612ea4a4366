"""The host's console at the default level: the app's lines and the host's, not the libraries' chatter, and one
traceback per distinct failure rather than one per delivery."""
from __future__ import annotations

import io
import logging
import threading

from funchost.invocation import Invoker
from funchost.logs import configure_console_logging
from funchost.worker_logs import WorkerLogRouter


def test_httpx_request_lines_are_not_shown_at_the_default_level():
    stream = io.StringIO()
    root = logging.getLogger()
    old_level, old_levels = root.level, {n: logging.getLogger(n).level
                                         for n in ("httpx", "httpcore", "azure", "azure.servicebus._pyamqp")}
    handler = configure_console_logging("INFO", stream=stream)
    try:
        logging.getLogger("httpx").info('HTTP Request: POST https://127.0.0.1:1/oauth/token "HTTP/1.1 200 OK"')
        logging.getLogger("httpx").warning("a warning still shows")
        logging.getLogger("azure.servicebus._pyamqp.aio._connection_async").warning(
            "Connection closed with error: [b'amqp:connection:forced']")
        logging.getLogger("customer_provisioning").info("customer=acme step=event outcome=applied")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for name, level in old_levels.items():
            logging.getLogger(name).setLevel(level)
    text = stream.getvalue()
    assert "HTTP Request:" not in text and "Connection closed with error" not in text
    assert "a warning still shows" in text and "outcome=applied" in text


class FailingChannel:
    """Answers every invocation as the worker answers a function that raised: Failure, the exception's text and
    the stack the library serialised."""

    def __init__(self) -> None:
        from funchost.rpc import load
        self.protos = load()[0]
        self.next_error = ("", "")

    def invoke(self, request, timeout):
        message, stack = self.next_error
        p = self.protos
        return p.InvocationResponse(invocation_id=request.invocation_id, result=p.StatusResult(
            status=p.StatusResult.Failure, exception=p.RpcException(message=message, stack_trace=stack)))


def test_the_same_failure_again_prints_its_stack_once(caplog):
    channel = FailingChannel()
    invoker = Invoker(channel, WorkerLogRouter(channel.protos), None, threading.Event())
    invoker.register("work")
    profile = ("ValueError: data.profile: is required", 'Traceback (most recent call last):\n  File "x.py", line 1')
    other = ("KeyError: 'something else'", 'Traceback (most recent call last):\n  File "y.py", line 9')

    def invoke(error):
        channel.next_error = error
        return invoker.invoke("work", lambda invocation_id: channel.protos.InvocationRequest(
            invocation_id=invocation_id), reason="(null)", details=[])

    with caplog.at_level(logging.INFO, logger="funchost"):
        first, second, third = invoke(profile), invoke(profile), invoke(other)
    failures = [r.getMessage() for r in caplog.records if "Result: Failure" in r.getMessage()]
    assert len(failures) == 3
    assert "Traceback" in failures[0] and "ValueError: data.profile: is required" in failures[0]
    assert "Traceback" not in failures[1] and f"the same as for Id={first.invocation_id}" in failures[1]
    assert "Exception: ValueError: data.profile: is required" in failures[1]  # the reason is still on the line
    assert "Traceback" in failures[2] and second.status == third.status == first.status
