"""Baseline: what a team would write first. One customer after another, straight SDK calls, no pacing, no ledger
of intents, no parallel steps: Auth0 application + grant, Key Vault secret, APIM authorization server +
subscription, one Table Storage row. Removal deletes them in the same plain way. Run against the same stand-ins and
latency profile as the app, to show what the app's design buys (and costs)."""
from __future__ import annotations

import os
import time

from .scenarios import Latency


def run(settings: dict[str, str], customers: int, prefix: str = "plain") -> dict:
    from auth0.management import ManagementClient
    from azure.data.tables import TableServiceClient
    from azure.identity import ManagedIdentityCredential
    from azure.keyvault.secrets import SecretClient
    from azure.mgmt.apimanagement import ApiManagementClient
    from azure.mgmt.apimanagement.models import AuthorizationServerContract, SubscriptionCreateParameters

    ca = settings["LOCAL_STACK_CA_BUNDLE"]
    os.environ.update(settings)
    os.environ["SSL_CERT_FILE"] = ca  # auth0-python's token provider opens its own httpx client
    domain = settings["AUTH0_DOMAIN"]
    mgmt = ManagementClient(domain=domain, client_id=settings["AUTH0_CLIENT_ID"],
                            client_secret=settings["AUTH0_CLIENT_SECRET"])
    credential = ManagedIdentityCredential()
    vault = SecretClient(settings["KEYVAULT_URL"], credential, connection_verify=ca, verify_challenge_resource=False)
    apim = ApiManagementClient(credential, settings["APIM_SUBSCRIPTION_ID"],
                               base_url=settings["APIM_MANAGEMENT_ENDPOINT"], connection_verify=ca)
    rg, svc = settings["APIM_RESOURCE_GROUP"], settings["APIM_SERVICE_NAME"]
    tables = TableServiceClient.from_connection_string(settings["LEDGER_CONNECTION"])
    table = tables.create_table_if_not_exists("plainscript")
    audience = settings["API_AUDIENCE"]

    def create(cid: str) -> None:
        app = mgmt.clients.create(name=f"Plain {cid}", app_type="non_interactive", is_first_party=False,
                                  grant_types=["client_credentials"], token_endpoint_auth_method="client_secret_post",
                                  client_metadata={"customer_id": cid})
        grant = mgmt.client_grants.create(client_id=app.client_id, audience=audience, scope=["read:data"])
        vault.set_secret(f"auth0-{cid}", app.client_secret)
        apim.authorization_server.create_or_update(rg, svc, f"as-{cid}", AuthorizationServerContract(
            display_name=f"Plain {cid}", client_registration_endpoint=f"https://{domain}/",
            authorization_endpoint=f"https://{domain}/authorize", token_endpoint=f"https://{domain}/oauth/token",
            grant_types=["clientCredentials"], client_authentication_method=["Body"],
            bearer_token_sending_methods=["authorizationHeader"], client_id=app.client_id,
            client_secret=app.client_secret))
        apim.subscription.create_or_update(rg, svc, f"sub-{cid}", SubscriptionCreateParameters(
            scope="/products/oem", display_name=f"Plain {cid}", state="active"))
        table.upsert_entity({"PartitionKey": cid, "RowKey": "state", "client_id": app.client_id,
                             "grant_id": grant.id, "status": "provisioned"})

    def remove(cid: str) -> None:
        row = table.get_entity(cid, "state")
        mgmt.client_grants.delete(row["grant_id"])
        mgmt.clients.delete(row["client_id"])
        vault.begin_delete_secret(f"auth0-{cid}").wait()
        apim.authorization_server.delete(rg, svc, f"as-{cid}", if_match="*")
        apim.subscription.delete(rg, svc, f"sub-{cid}", if_match="*")
        table.delete_entity(cid, "state")

    def timed(fn, cid: str) -> float:
        started = time.perf_counter()
        fn(cid)
        return (time.perf_counter() - started) * 1000

    timed(create, f"{prefix}-warm")  # tokens, clients, the table
    timed(remove, f"{prefix}-warm")
    ids = [f"{prefix}-{i:03d}" for i in range(customers)]
    created = [timed(create, c) for c in ids]
    removed = [timed(remove, c) for c in ids]
    for closable in (vault, apim, tables):
        closable.close()
    os.environ.pop("SSL_CERT_FILE", None)
    return {"created": Latency(created), "removed": Latency(removed)}
