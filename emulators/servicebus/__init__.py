"""Azure Service Bus stand-in: an AMQP 1.0 endpoint the real azure-servicebus 7.x client accepts, and so
does Microsoft's JavaScript client (@azure/service-bus 7.x, rhea-based; tests/servicebus/js/). Where the
two clients expect different things, the stand-in does what Service Bus is documented to do.

Engine choice: a small AMQP 1.0 connection engine written here on asyncio (``amqp.py``), using the
AMQP codec that ships inside azure-servicebus 7.15.0 (``azure.servicebus._pyamqp``) for frames and
values. python-qpid-proton was the first candidate, but its Python binding does not expose a
transfer's message-format (so Service Bus batches, format 0x80013700, cannot be told apart from a
message with several data sections), reports binary delivery tags as text and drops an all-default
header (delivery-count 0 shows as None in the SDK); see /work/shared/notes/servicebus.md.
Owning the engine avoids all three and needs no extra dependency beyond azure-servicebus itself.

Public interface::

    from emulators.servicebus import ServiceBusStandIn, load_config
    sb = ServiceBusStandIn(config, host="127.0.0.1", port=0, state_file=None); sb.start()
    sb.port, sb.connection_string, sb.snapshot(), sb.stop()

With ``state_file`` the messages survive a restart (``persistence.py``); without, they live in memory only.
Command line: ``python -m emulators.servicebus --config PATH --port N [--state FILE]``.
"""

from .config import default_config_path, load_config
from .server import ServiceBusStandIn

__all__ = ["ServiceBusStandIn", "load_config", "default_config_path"]
