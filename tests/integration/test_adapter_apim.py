"""ApimGateway against the API Management stand-in, through the real ApiManagementClient (ARM, TLS) and the real
DefaultAzureCredential (managed-identity stand-in)."""
from __future__ import annotations

import uuid

import pytest

from shared.adapters import apim_gateway
from shared.adapters.apim_gateway import ApimGateway, authorization_server_limit
from shared.adapters.credentials import get_credential
from shared.domain.errors import PermanentError, TransientError
from shared.service_layer.ports import AuthorizationServerSpec

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def gateway(settings, stack):
    apim_gateway._sku_cache.clear()
    with stack.apim.lock:
        stack.apim.reset()
    adapter = ApimGateway.from_settings(settings, get_credential())
    yield adapter
    adapter.close()
    apim_gateway._sku_cache.clear()


def server_spec(secret: str | None = "very-secret-value", grant: str = "clientCredentials") -> AuthorizationServerSpec:
    return AuthorizationServerSpec(
        display_name="Customer Acme",
        authorization_endpoint="https://tenant.example.com/authorize",
        token_endpoint="https://tenant.example.com/oauth/token",
        client_registration_endpoint="https://tenant.example.com/",
        client_id="tpc_" + uuid.uuid4().hex,
        client_secret=secret,
        grant_types=(grant,),
        default_scope="read:data write:data",
        description="integration test",
    )


def new_id(prefix: str = "auth0-") -> str:
    return prefix + uuid.uuid4().hex[:12]


def stored_server(stack, server_id: str) -> dict:
    return stack.apim.dump_state()["authorizationServers"][server_id.lower()]["properties"]


def calls(ctl, op: str) -> int:
    return ctl.calls()["calls"].get(op, 0)


def test_tier_limits():
    assert authorization_server_limit("Developer") == 10
    assert authorization_server_limit("Consumption") == 10
    assert authorization_server_limit("BasicV2") == 10
    assert authorization_server_limit("Standard") == 500
    assert authorization_server_limit("standardv2") == 500
    assert authorization_server_limit("Isolated") is None


def test_capacity_counts_entries_and_reads_the_tier_once(gateway, apim_ctl):
    capacity = gateway.get_authorization_server_capacity()
    assert (capacity.used, capacity.limit, capacity.sku) == (0, 10, "Developer")
    for _ in range(3):
        gateway.set_authorization_server(new_id(), server_spec())
    before = calls(apim_ctl, "service.get")
    capacity = gateway.get_authorization_server_capacity()
    assert capacity.used == 3 and capacity.limit == 10
    assert calls(apim_ctl, "service.get") == before  # the tier was cached


def test_capacity_follows_the_tier(gateway, apim_ctl):
    apim_ctl.config(sku="StandardV2")
    try:
        capacity = gateway.get_authorization_server_capacity()
    finally:
        apim_ctl.config(sku="Developer")
    assert (capacity.limit, capacity.sku) == (500, "StandardV2")


def test_capacity_counts_across_pages(gateway, apim_ctl):
    apim_ctl.config(page_size=2)
    try:
        for _ in range(5):
            gateway.set_authorization_server(new_id(), server_spec())
        assert gateway.get_authorization_server_capacity().used == 5
    finally:
        apim_ctl.config(page_size=100)


def test_set_authorization_server_writes_the_documented_fields(gateway, stack):
    server_id = new_id()
    spec = server_spec()
    assert gateway.has_authorization_server(server_id) is False
    gateway.set_authorization_server(server_id, spec)
    gateway.set_authorization_server(server_id, spec)  # a PUT: repeating it changes nothing
    assert gateway.has_authorization_server(server_id) is True
    props = stored_server(stack, server_id)
    assert props["displayName"] == "Customer Acme"
    assert props["clientRegistrationEndpoint"] == "https://tenant.example.com/"
    assert props["authorizationEndpoint"] == "https://tenant.example.com/authorize"
    assert props["tokenEndpoint"] == "https://tenant.example.com/oauth/token"
    assert props["grantTypes"] == ["clientCredentials"]
    assert props["clientAuthenticationMethod"] == ["Body"]
    assert props["bearerTokenSendingMethods"] == ["authorizationHeader"]
    assert props["clientId"] == spec.client_id
    assert props["clientSecret"] == "very-secret-value"
    assert props["defaultScope"] == "read:data write:data"
    assert len(stack.apim.dump_state()["authorizationServers"]) == 1


def test_a_public_client_is_registered_without_a_secret(gateway, stack):
    server_id = new_id()
    gateway.set_authorization_server(server_id, server_spec(secret=None, grant="authorizationCode"))
    props = stored_server(stack, server_id)
    assert "clientSecret" not in props and props["grantTypes"] == ["authorizationCode"]


def test_delete_authorization_server_is_idempotent(gateway):
    server_id = new_id()
    gateway.set_authorization_server(server_id, server_spec())
    assert gateway.delete_authorization_server(server_id) is True
    assert gateway.has_authorization_server(server_id) is False
    assert gateway.delete_authorization_server(server_id) is False


def test_the_tier_cap_is_permanent_and_the_secret_stays_out_of_the_error(gateway, apim_ctl):
    apim_ctl.config(authorization_server_limit=1)
    try:
        gateway.set_authorization_server(new_id(), server_spec())
        with pytest.raises(PermanentError) as info:
            gateway.set_authorization_server(new_id(), server_spec())
    finally:
        apim_ctl.config(authorization_server_limit=None)
    assert info.value.status == 400 and "limit reached" in info.value.message
    assert "very-secret-value" not in str(info.value)


def test_subscription_is_active_on_the_product_and_idempotent(gateway, stack):
    sid = new_id("customer-")
    gateway.set_subscription(sid, display_name="Acme Corp", product_id="oem")
    gateway.set_subscription(sid, display_name="Acme Corp", product_id="oem")
    stored = stack.apim.dump_state()["subscriptions"][sid.lower()]["properties"]
    assert stored["state"] == "active"
    assert stored["displayName"] == "Acme Corp"
    assert stored["scope"].endswith("/products/oem")
    assert gateway.delete_subscription(sid) is True
    assert gateway.delete_subscription(sid) is False
    assert sid.lower() not in stack.apim.dump_state()["subscriptions"]


def test_a_subscription_to_an_unknown_product_is_permanent(gateway):
    with pytest.raises(PermanentError) as info:
        gateway.set_subscription(new_id("customer-"), display_name="Acme", product_id="no-such-product")
    assert info.value.status in (400, 404)


def test_server_errors_are_transient(gateway, apim_ctl):
    gateway.has_authorization_server(new_id())  # warm up the token
    apim_ctl.fail_next("subscriptions.create_or_update", 503, count=3)
    before = calls(apim_ctl, "subscriptions.create_or_update")
    with pytest.raises(TransientError) as info:
        gateway.set_subscription(new_id("customer-"), display_name="Acme", product_id="oem")
    assert info.value.status == 503 and info.value.service == "apim"
    assert calls(apim_ctl, "subscriptions.create_or_update") - before == 3


def test_throttling_is_transient(gateway, apim_ctl):
    gateway.has_authorization_server(new_id())
    apim_ctl.fail_next("authorization_servers.list", 429, count=3)
    with pytest.raises(TransientError) as info:
        gateway.get_authorization_server_capacity()
    assert info.value.status == 429


def test_an_unreachable_endpoint_is_transient(settings):
    gateway = ApimGateway(get_credential(), settings.apim_subscription_id, settings.apim_resource_group,
                          settings.apim_service_name, management_endpoint="https://127.0.0.1:9",
                          ca_bundle=settings.local_stack_ca_bundle, timeout=2)
    with pytest.raises(TransientError):
        gateway.delete_subscription("customer-x")
