"""API Management's gateway (data plane) for the local stack: the project's policy files, enforced as documented.

``GatewayStandIn`` serves the Customer API of ``infra/apim/customer-api.json`` with the policies of
``infra/policies/``, reading subscriptions from the management-plane stand-in; ``SampleBackend`` is the API behind it.
"""
from .backend import SampleBackend
from .policy import PolicyError
from .server import GatewayStandIn

__all__ = ["GatewayStandIn", "PolicyError", "SampleBackend"]
