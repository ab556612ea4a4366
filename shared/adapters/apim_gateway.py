"""ApiGateway over azure-mgmt-apimanagement (the ARM management plane of one API Management instance).

Capacity: an OAuth 2.0 authorization server entry per customer meets a hard limit on the small tiers (10 entries on
Consumption, Developer, Basic and Basic v2; 500 on Standard, Premium and Standard v2; Microsoft's "API Management
limits" page). The tier is read once per process (it changes only with a redeployment); the count is read each time.

Throttling: ARM limits this principal's reads and writes, shared by every instance of the app. With header pacing on
(``RATE_LIMIT_HEADER_PACING``), ``arm_pacing.ArmPacingPolicy`` in the client's pipeline paces every attempt on ARM's
``x-ms-ratelimit-remaining-subscription-*`` headers and holds after a 429; the one call path stays ``_call``.
"""
from __future__ import annotations

import threading
from typing import Any

from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import (AuthorizationServerContract, AuthorizationServerUpdateContract,
                                             SubscriptionCreateParameters, SubscriptionUpdateParameters)

from ..service_layer.ports import (ApiGateway, AuthorizationServerInfo, AuthorizationServerSpec, Capacity,
                                   SubscriptionInfo)
from .arm_pacing import ArmPacingPolicy
from .azure_errors import ABSENT, ShortRetryPolicy, azure_call, client_kwargs

SERVICE = "apim"

#: authorization servers per instance, by tier (case-insensitive); a tier not listed has no documented limit
AUTHORIZATION_SERVER_LIMITS = {
    "consumption": 10, "developer": 10, "basic": 10, "basicv2": 10,
    "standard": 500, "premium": 500, "standardv2": 500,
}

_sku_cache: dict[tuple[str, str, str, str], str] = {}
_sku_lock = threading.Lock()


def authorization_server_limit(sku: str) -> int | None:
    return AUTHORIZATION_SERVER_LIMITS.get(sku.replace(" ", "").lower())


class ApimGateway(ApiGateway):
    def __init__(self, credential: Any, subscription_id: str, resource_group: str, service_name: str, *,
                 management_endpoint: str = "https://management.azure.com", ca_bundle: str | None = None,
                 timeout: float = 30.0, header_pacing: bool = True,
                 arm_buckets: dict[str, tuple[float, float]] | None = None, max_wait: float = 30.0):
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.service_name = service_name
        self.management_endpoint = management_endpoint.rstrip("/")
        # The policy runs for each of a call's (up to three) attempts: the call as a whole waits at most max_wait.
        self.pacing = ArmPacingPolicy(buckets=arm_buckets, max_wait=max_wait / 3) if header_pacing else None
        extra = {"custom_hook_policy": self.pacing} if self.pacing is not None else {}
        self._client = ApiManagementClient(
            credential, subscription_id, base_url=self.management_endpoint,
            retry_policy=ShortRetryPolicy(), **extra, **client_kwargs(ca_bundle=ca_bundle, timeout=timeout))

    @classmethod
    def from_settings(cls, settings, credential: Any) -> "ApimGateway":
        return cls(credential, settings.apim_subscription_id, settings.apim_resource_group,
                   settings.apim_service_name, management_endpoint=settings.apim_management_endpoint,
                   ca_bundle=settings.local_stack_ca_bundle, timeout=settings.azure_timeout_seconds,
                   header_pacing=settings.rate_limit_header_pacing, max_wait=settings.pacing_max_wait_seconds)

    def _call(self, operation: str, fn, *, absent_on: tuple[int, ...] = (), secrets=()):
        return azure_call(SERVICE, operation, fn, absent_on=absent_on, secrets=secrets)

    def warm_up(self) -> None:
        """Read the tier (kept for the process), which also fetches the ARM token and opens a connection."""
        self.get_sku()

    # -- capacity ----------------------------------------------------------------------------------------------------
    def get_sku(self) -> str:
        key = (self.management_endpoint, self.subscription_id, self.resource_group, self.service_name)
        sku = _sku_cache.get(key)
        if sku is not None:
            return sku
        with _sku_lock:  # one read per process: the first event waits for the warm-up's rather than sending its own
            sku = _sku_cache.get(key)
            if sku is None:
                service = self._call("get_service", lambda: self._client.api_management_service.get(
                    self.resource_group, self.service_name))
                sku = str(getattr(service.sku, "name", "") or "")
                sku = getattr(sku, "value", sku)
                _sku_cache[key] = sku
        return sku

    def get_authorization_server_limit(self) -> Capacity:
        sku = self.get_sku()
        return Capacity(used=0, limit=authorization_server_limit(sku), sku=sku)

    def get_authorization_server_capacity(self) -> Capacity:
        sku = self.get_sku()
        used = self._call("list_authorization_servers", lambda: sum(
            1 for _ in self._client.authorization_server.list_by_service(self.resource_group, self.service_name)))
        return Capacity(used=used, limit=authorization_server_limit(sku), sku=sku)

    # -- authorization servers ---------------------------------------------------------------------------------------
    def has_authorization_server(self, server_id: str) -> bool:
        return self._call("get_authorization_server", lambda: self._client.authorization_server.get(
            self.resource_group, self.service_name, server_id), absent_on=(404,)) is not ABSENT

    def set_authorization_server(self, server_id: str, spec: AuthorizationServerSpec) -> None:
        contract = AuthorizationServerContract(
            display_name=spec.display_name[:50],  # the service's limit
            description=spec.description or None,
            client_registration_endpoint=spec.client_registration_endpoint,
            authorization_endpoint=spec.authorization_endpoint,
            token_endpoint=spec.token_endpoint,
            grant_types=list(spec.grant_types),
            # Auth0 takes client_secret_post: the credentials go in the token request's body.
            client_authentication_method=["Body"],
            bearer_token_sending_methods=["authorizationHeader"],
            client_id=spec.client_id,
            default_scope=spec.default_scope or None,
        )
        if spec.client_secret:  # a public client (PKCE) has none; the property is left out, not sent empty
            contract.client_secret = spec.client_secret
        self._call("set_authorization_server", lambda: self._client.authorization_server.create_or_update(
            self.resource_group, self.service_name, server_id, contract), secrets=(spec.client_secret,))

    def set_authorization_server_secret(self, server_id: str, client_secret: str) -> bool:
        # A PATCH of the one property: the entry's other settings are left as they are. If-Match * because the
        # service requires the header on PATCH, and the secret must win whatever else changed meanwhile.
        result = self._call("update_authorization_server", lambda: self._client.authorization_server.update(
            self.resource_group, self.service_name, server_id, "*",
            AuthorizationServerUpdateContract(client_secret=client_secret)), absent_on=(404,),
            secrets=(client_secret,))
        return result is not ABSENT

    def update_authorization_server(self, server_id: str, *, display_name: str, grant_types: tuple[str, ...],
                                    default_scope: str) -> bool:
        # PATCH: the client id and secret stay as they are (no secret passes here); If-Match * as for deletes.
        contract = AuthorizationServerUpdateContract(display_name=display_name[:50], grant_types=list(grant_types),
                                                     default_scope=default_scope or None)
        return self._call("update_authorization_server", lambda: self._client.authorization_server.update(
            self.resource_group, self.service_name, server_id, "*", contract), absent_on=(404,)) is not ABSENT

    def delete_authorization_server(self, server_id: str) -> bool:
        return self._call("delete_authorization_server", lambda: self._client.authorization_server.delete(
            self.resource_group, self.service_name, server_id, if_match="*"), absent_on=(404,)) is not ABSENT

    # -- subscriptions -----------------------------------------------------------------------------------------------
    def set_subscription(self, subscription_id: str, *, display_name: str, product_id: str) -> None:
        # state must be given: a PUT without it creates the subscription "submitted", not active.
        parameters = SubscriptionCreateParameters(scope=f"/products/{product_id}", display_name=display_name[:100],
                                                  state="active")
        self._call("set_subscription", lambda: self._client.subscription.create_or_update(
            self.resource_group, self.service_name, subscription_id, parameters))

    def update_subscription(self, subscription_id: str, *, display_name: str, product_id: str) -> bool:
        # PATCH keeps the keys and the state (a PUT replaces the whole subscription).
        parameters = SubscriptionUpdateParameters(scope=f"/products/{product_id}", display_name=display_name[:100])
        return self._call("update_subscription", lambda: self._client.subscription.update(
            self.resource_group, self.service_name, subscription_id, "*", parameters),
            absent_on=(404,)) is not ABSENT

    def delete_subscription(self, subscription_id: str) -> bool:
        return self._call("delete_subscription", lambda: self._client.subscription.delete(
            self.resource_group, self.service_name, subscription_id, if_match="*"), absent_on=(404,)) is not ABSENT

    # -- reads for the drift reconciliation ---------------------------------------------------------------------------
    def get_authorization_server(self, server_id: str) -> AuthorizationServerInfo | None:
        found = self._call("get_authorization_server", lambda: self._client.authorization_server.get(
            self.resource_group, self.service_name, server_id), absent_on=(404,))
        return None if found is ABSENT else _server_info(found)

    def list_authorization_servers(self) -> list[AuthorizationServerInfo]:
        return self._call("list_authorization_servers", lambda: [
            _server_info(c) for c in self._client.authorization_server.list_by_service(
                self.resource_group, self.service_name)])

    def get_subscription(self, subscription_id: str) -> SubscriptionInfo | None:
        found = self._call("get_subscription", lambda: self._client.subscription.get(
            self.resource_group, self.service_name, subscription_id), absent_on=(404,))
        return None if found is ABSENT else _subscription_info(found)

    def list_subscriptions(self) -> list[SubscriptionInfo]:
        return self._call("list_subscriptions", lambda: [
            _subscription_info(c) for c in self._client.subscription.list(self.resource_group, self.service_name)])

    def close(self) -> None:
        self._client.close()


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _server_info(contract: Any) -> AuthorizationServerInfo:
    return AuthorizationServerInfo(server_id=contract.name, client_id=contract.client_id,
                                   grant_types=tuple(_enum_text(g) for g in contract.grant_types or ()),
                                   default_scope=contract.default_scope or "")


def _subscription_info(contract: Any) -> SubscriptionInfo:
    # The scope comes back as a full resource id (.../service/{name}/products/{id}) or as given (/products/{id}).
    scope = contract.scope or ""
    head, sep, product = scope.rpartition("/products/")
    return SubscriptionInfo(subscription_id=contract.name, state=_enum_text(contract.state).lower(),
                            product_id=product if sep and "/" not in product else None,
                            display_name=contract.display_name or "")
