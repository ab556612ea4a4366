"""A local Azure Functions host for this app's Service Bus and timer triggers (``python -m funchost``).

Azure Functions Core Tools cannot be installed here; this runs ``function_app.py``'s triggers with the
Functions host's semantics (see ``funchost.servicebus_listener`` and ``funchost.hostconfig``) while the app
stays unchanged for ``func start``.
"""
from .host import LocalFunctionsHost
from .logs import InvocationIdFilter, configure_console_logging
from .settings import load_local_settings

__all__ = ["LocalFunctionsHost", "InvocationIdFilter", "configure_console_logging", "load_local_settings"]
