"""build_service wires the real adapters from the settings: one customer created and removed through the local
stack, every service checked directly."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from shared.bootstrap import build_service
from shared.domain import naming
from shared.domain.events import parse_event
from shared.domain.records import PROVISIONED, REMOVED

pytestmark = pytest.mark.timeout(60)


def event(kind: str, customer_id: str, **data) -> object:
    body = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/crm", "type": f"customer.{kind}",
            "time": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "data": {"customerId": customer_id, **data}}
    return parse_event(json.dumps(body))


def test_a_customer_is_provisioned_and_removed_through_every_adapter(settings, stack):
    with stack.apim.lock:  # room under the tier's cap of authorization servers, whatever ran before
        stack.apim.reset()
    service = build_service(settings, worker_id="integration-test")
    customer = "acme-" + uuid.uuid4().hex[:8]

    outcome = service.handle(event("created", customer, displayName="Acme Corp", profile="oem"))
    assert outcome.status == PROVISIONED
    record, _ = service.ledger.get_customer(customer)
    assert record.status == PROVISIONED and record.auth0_client_id
    client = stack.auth0.clients[record.auth0_client_id]
    assert client["client_metadata"]["customer_id"] == customer and client["is_first_party"] is False
    assert any(g["client_id"] == record.auth0_client_id for g in stack.auth0.grants.values())
    assert naming.secret_name(customer).lower() in stack.keyvault._secrets
    apim = stack.apim.dump_state()
    assert naming.authorization_server_id(customer).lower() in apim["authorizationServers"]
    assert apim["subscriptions"][naming.subscription_id(customer).lower()]["properties"]["state"] == "active"

    outcome = service.handle(event("removed", customer))
    assert outcome.status == REMOVED
    assert record.auth0_client_id not in stack.auth0.clients
    assert naming.secret_name(customer).lower() not in stack.keyvault._secrets
    apim = stack.apim.dump_state()
    assert naming.authorization_server_id(customer).lower() not in apim["authorizationServers"]
    assert naming.subscription_id(customer).lower() not in apim["subscriptions"]


@pytest.mark.parametrize("purge", [False, True], ids=["recover", "purge"])
def test_re_provisioning_after_removal_reuses_the_soft_deleted_secret_name(settings, stack, purge):
    """The removal leaves the secret soft-deleted; a later created for the same customer must not end at Key Vault's
    409 ObjectIsDeletedButRecoverable: the name is recovered (or purged, when configured) and set again."""

    with stack.apim.lock:
        stack.apim.reset()
    service = build_service(settings.model_copy(update={"keyvault_purge_deleted": purge}), worker_id="integration-test")
    customer = "phoenix-" + uuid.uuid4().hex[:8]
    name = naming.secret_name(customer).lower()

    service.handle(event("created", customer, displayName="Phoenix", profile="oem"))
    first_client = service.ledger.get_customer(customer)[0].auth0_client_id
    service.handle(event("removed", customer))
    if not purge:
        assert name in stack.keyvault.dump_state()["deleted"]  # soft-deleted, recoverable: the 409 case
    else:
        assert name not in stack.keyvault.dump_state()["deleted"]  # purged at removal

    outcome = service.handle(event("created", customer, displayName="Phoenix", profile="oem"))
    assert outcome.status == PROVISIONED
    record = service.ledger.get_customer(customer)[0]
    assert record.auth0_client_id != first_client  # a new application; the old one is gone
    vault = stack.keyvault.dump_state()
    assert name in vault["secrets"] and name not in vault["deleted"]
    latest = vault["secrets"][name]["versions"][-1]
    assert latest["tags"]["client_id"] == record.auth0_client_id
    assert latest["version"] == record.keyvault_secret_version
    # Key Vault holds the new application's secret, not the recovered old one.
    assert latest["value"] == stack.auth0.clients[record.auth0_client_id]["client_secret"]


def test_two_customers_racing_for_the_last_authorization_server_get_one_entry_and_one_clean_refusal(settings, stack):
    """Regression (issue 18, case 2) on the local stack: 9 of the Developer tier's 10 entries in use, two customers
    created at once by two workers. The ledger's reservation lets one through; the other is refused before
    anything exists (before: both saw 9, and the second was left with an application, a grant, a secret and an
    active subscription but no entry)."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.domain.errors import PermanentError
    from shared.service_layer.ports import AuthorizationServerSpec

    with stack.apim.lock:
        stack.apim.reset()
    isolated = settings.model_copy(update={"ledger_table": "race" + uuid.uuid4().hex[:12]})
    workers = [build_service(isolated, worker_id=f"racer-{i}") for i in range(2)]
    gateway = workers[0].gateway
    for i in range(9):
        gateway.set_authorization_server(f"other-{i}", AuthorizationServerSpec(
            display_name=f"other {i}", authorization_endpoint="https://idp.example/authorize",
            token_endpoint="https://idp.example/token", client_registration_endpoint="https://idp.example/",
            client_id=f"other-{i}", client_secret=None, grant_types=("authorizationCode",)))
    customers = [f"race-{uuid.uuid4().hex[:8]}" for _ in range(2)]

    def create(i: int):
        try:
            return workers[i].handle(event("created", customers[i], displayName=f"Racer {i}", profile="oem"))
        except PermanentError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(create, range(2)))
    applied = [c for c, r in zip(customers, results) if getattr(r, "status", None) == PROVISIONED]
    refused = [c for c, r in zip(customers, results) if isinstance(r, PermanentError)]
    assert len(applied) == 1 and len(refused) == 1, results
    assert "authorization servers" in str(next(r for r in results if isinstance(r, PermanentError)))
    loser = refused[0]
    apim = stack.apim.dump_state()
    assert len(apim["authorizationServers"]) == 10
    assert naming.subscription_id(loser).lower() not in apim["subscriptions"]
    assert not [c for c in stack.auth0.clients.values() if c["client_metadata"].get("customer_id") == loser]
    assert naming.secret_name(loser).lower() not in stack.keyvault._secrets
    for worker in workers:
        worker.ledger.close()


def test_auth0s_entity_limit_is_a_clean_permanent_refusal(settings, stack, auth0_ctl):
    """Issue 18: a tenant at its application limit refuses the create; the app creates the application first and
    alone, so nothing else exists for the customer, and the reason names the limit."""
    from shared.domain.errors import PermanentError

    with stack.apim.lock:
        stack.apim.reset()
    auth0_ctl.config(max_clients=len(stack.auth0.clients))
    try:
        service = build_service(settings.model_copy(update={"ledger_table": "limit" + uuid.uuid4().hex[:12]}),
                                worker_id="limit-test")
        customer = "full-" + uuid.uuid4().hex[:8]
        with pytest.raises(PermanentError, match="limit of .* applications"):
            service.handle(event("created", customer, displayName="No Room", profile="oem"))
    finally:
        auth0_ctl.config(max_clients=None)
    apim = stack.apim.dump_state()
    assert naming.subscription_id(customer).lower() not in apim["subscriptions"]
    assert naming.authorization_server_id(customer).lower() not in apim["authorizationServers"]
    assert naming.secret_name(customer).lower() not in stack.keyvault._secrets
    record, _ = service.ledger.get_customer(customer)
    assert "limit of" in record.last_error and record.auth0_create_intent is None  # refused: nothing to look for
    service.ledger.close()
