"""A local Azure Functions host for this app's Service Bus and timer triggers (``python -m funchost``).

Azure Functions Core Tools cannot be installed here; this runs ``function_app.py`` the way the Functions host and its
Python 3.13 worker do, and the app stays unchanged for ``func start`` and Azure. What runs is split as in Azure:

Microsoft's code, as Azure runs it (pinned in requirements.txt):
  - ``azure-functions-runtime``: in the worker process, it imports and indexes the app (``FunctionApp``, the
    decorators' bindings, the checks that refuse a bad function), converts each invocation's data and metadata into
    ``func.ServiceBusMessage`` / ``func.TimerRequest``, runs the function on its thread pool, and reports failures;
  - ``azure-functions``: the binding converters the library uses;
  - ``azurefunctions-extensions-bindings-servicebus``: ``ServiceBusMessageActions``, the settlement client, which
    dials the host over gRPC from the worker's command line.

This host's own code, in the place of the .NET host and the platform's thin Python worker (neither is available
here): the worker process that connects the FunctionRpc stream and hands each request to the library
(``worker``); the gRPC server with the FunctionRpc stream and the Settlement service (``worker_channel``,
``settlement_server``); the invocation requests as the .NET host builds them (``invocation_data``); and what the
host does itself: host.json, app settings, listeners with the real azure-servicebus SDK, ``maxConcurrentCalls`` and
sessions, lock renewal, ``autoCompleteMessages``, ``functionTimeout`` (the worker is recycled), reconnects, timers
and their schedule monitor, and the host's log (``servicebus_listener``, ``timer_listener``, ``invocation``,
``hostconfig``, ``settings``, ``logs``, ``worker_logs``). The FunctionRpc messages come from this project's own
``rpc/function_rpc.proto``, compiled at set-up.
"""
from .host import LocalFunctionsHost
from .logs import InvocationIdFilter, configure_console_logging
from .settings import load_local_settings

__all__ = ["LocalFunctionsHost", "InvocationIdFilter", "configure_console_logging", "load_local_settings"]
