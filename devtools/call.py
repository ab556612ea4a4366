"""The customer's journey with what the app provisioned: a token from Auth0, then a call through the gateway.

    python -m devtools.call --customer acme                      # GET /api/items
    python -m devtools.call --customer acme --method POST --path /items --data '{"name": "x"}'
    python -m devtools call --customer acme --path /reports/1     # the same, through python -m devtools

Steps, each printed with its answer:

1. the customer's credentials as the CRM receives them: the client id (the secret's ``client_id`` tag) and the
   client secret from Key Vault (``auth0-client-...``, the latest version), and the subscription's key from API
   Management (``listSecrets`` on ``customer-...``; in Azure that needs the listSecrets action, which the app's own
   role does not have);
2. a client-credentials token from ``https://{AUTH0_DOMAIN}/oauth/token`` for ``API_AUDIENCE``, checked as a
   resource server would (PyJWT against the tenant's JWKS), its claims shown;
3. the call through the gateway with ``Ocp-Apim-Subscription-Key`` and ``Authorization: Bearer``, and the answer.

Never printed: the client secret, the subscription key (both shown as their length), the token (its first and
last characters). The gateway is the local stack's (``.localstack/stack.json``) unless ``--gateway`` names one.
Exit status 0 when the API answered 2xx, 1 when a step was refused, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, TextIO

import httpx

from shared.domain import naming
from shared.settings import APP_ROOT, SettingsError, tool_values

STACK_FILE = APP_ROOT / ".localstack" / "stack.json"
#: read by DefaultAzureCredential from the process environment only (the local stack's managed identity)
CREDENTIAL_ENVIRONMENT = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET")


class StepFailed(Exception):
    pass


@dataclass
class Credentials:
    client_id: str
    client_secret: str
    subscription_key: str
    secret_version: str


def mask(token: str) -> str:
    return f"{token[:8]}...{token[-4:]} ({len(token)} chars)" if len(token) > 16 else "***"


def _verify(values: Mapping[str, str]) -> ssl.SSLContext | bool:
    ca = values.get("LOCAL_STACK_CA_BUNDLE")
    return ssl.create_default_context(cafile=ca) if ca else True


def _settings(values: Mapping[str, str]):
    from shared.settings import AppSettings

    for name in CREDENTIAL_ENVIRONMENT:
        if values.get(name) and not os.environ.get(name):
            os.environ[name] = values[name]
    return AppSettings.load(values)


def read_credentials(values: Mapping[str, str], customer: str) -> Credentials:
    """What the CRM hands the customer: client id and secret (Key Vault) and the subscription key (APIM)."""
    from azure.mgmt.apimanagement import ApiManagementClient

    from shared.adapters.azure_errors import client_kwargs
    from shared.adapters.credentials import get_credential
    from shared.adapters.keyvault_secrets import KeyVaultSecretStore

    settings = _settings(values)
    credential = get_credential(values.get("AZURE_CLIENT_ID") or None)
    store = KeyVaultSecretStore.from_settings(settings, credential)
    try:
        secret = store.get_secret(naming.secret_name(customer))
    finally:
        store.close()
    if secret is None or not secret.value:
        raise StepFailed(f"Key Vault has no secret {naming.secret_name(customer)} (a public client has none; a "
                         "customer not provisioned neither)")
    client_id = secret.tags.get("client_id")
    if not client_id:
        raise StepFailed(f"the secret {naming.secret_name(customer)} has no client_id tag")
    with ApiManagementClient(credential, settings.apim_subscription_id, base_url=settings.apim_management_endpoint,
                             **client_kwargs(ca_bundle=settings.local_stack_ca_bundle,
                                             timeout=settings.azure_timeout_seconds)) as apim:
        try:
            keys = apim.subscription.list_secrets(settings.apim_resource_group, settings.apim_service_name,
                                                  naming.subscription_id(customer))
        except Exception as exc:  # noqa: BLE001 - any refusal ends the journey with its reason
            raise StepFailed(f"API Management: no keys for subscription {naming.subscription_id(customer)}: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    return Credentials(client_id, secret.value, keys.primary_key, secret.version)


def request_token(values: Mapping[str, str], client_id: str, client_secret: str) -> httpx.Response:
    domain, audience = values["AUTH0_DOMAIN"], values["API_AUDIENCE"]
    with httpx.Client(verify=_verify(values), timeout=15) as http:
        return http.post(f"https://{domain}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
            "audience": audience})


def verify_token(values: Mapping[str, str], token: str) -> dict:
    """The token checked as a resource server would: signature by a key of the tenant's JWKS, expiry, audience and
    issuer (``https://{AUTH0_DOMAIN}/``)."""
    import jwt

    domain = values["AUTH0_DOMAIN"]
    jwks = jwt.PyJWKClient(f"https://{domain}/.well-known/jwks.json", ssl_context=_ssl_context(values))
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=values["API_AUDIENCE"],
                      issuer=f"https://{domain}/")


def _ssl_context(values: Mapping[str, str]) -> ssl.SSLContext:
    ca = values.get("LOCAL_STACK_CA_BUNDLE")
    return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()


def call_api(values: Mapping[str, str], api_url: str, *, token: str | None, subscription_key: str | None,
             method: str = "GET", path: str = "/items", data: str | None = None) -> httpx.Response:
    headers = {}
    if subscription_key:
        headers["Ocp-Apim-Subscription-Key"] = subscription_key
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if data is not None:
        headers["Content-Type"] = "application/json"
    with httpx.Client(verify=_verify(values), timeout=30) as http:
        return http.request(method, api_url.rstrip("/") + "/" + path.lstrip("/"), headers=headers,
                            content=data.encode() if data is not None else None)


def local_api_url(stack_file: Path = STACK_FILE) -> str:
    try:
        info = json.loads(stack_file.read_text())
        return info["api"]["url"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StepFailed(f"no local gateway: {stack_file} has none (start the stack with `make up`, or pass "
                         "--gateway URL)") from None


def journey(values: Mapping[str, str], customer: str, api_url: str, *, method: str, path: str,
            data: str | None, out: TextIO) -> int:
    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say(f"1. credentials of {customer}, as the CRM hands them over")
    creds = read_credentials(values, customer)
    say(f"   client id {creds.client_id}; client secret from Key Vault {naming.secret_name(customer)} "
        f"version {creds.secret_version} ({len(creds.client_secret)} chars, not shown)")
    say(f"   subscription key of {naming.subscription_id(customer)} ({len(creds.subscription_key)} chars, not shown)")
    say(f"2. token from https://{values['AUTH0_DOMAIN']}/oauth/token for {values['API_AUDIENCE']}")
    answer = request_token(values, creds.client_id, creds.client_secret)
    if answer.status_code != 200:
        say(f"   refused: {answer.status_code} {answer.text}")
        return 1
    token = answer.json()["access_token"]
    claims = verify_token(values, token)
    say(f"   200: {mask(token)}, expires in {answer.json().get('expires_in')} s; valid against the tenant's JWKS")
    say("   claims: " + ", ".join(f"{k}={claims[k]}" for k in ("iss", "sub", "aud", "azp", "gty", "scope")
                                   if k in claims))
    say(f"3. {method} {api_url.rstrip('/')}/{path.lstrip('/')} with the subscription key and the token")
    answer = call_api(values, api_url, token=token, subscription_key=creds.subscription_key, method=method,
                      path=path, data=data)
    say(f"   {answer.status_code}: {answer.text}")
    return 0 if 200 <= answer.status_code < 300 else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devtools.call", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customer", required=True, help="the customer id (data.customerId of its events)")
    p.add_argument("--path", default="/items", help="the path under the API (default /items)")
    p.add_argument("--method", default="GET", type=str.upper, help="GET (read:data) or POST/PUT/PATCH/DELETE "
                                                                   "(write:data); default GET")
    p.add_argument("--data", help="a JSON body to send")
    p.add_argument("--gateway", help="the API's URL at the gateway, e.g. https://apim-contoso.azure-api.net/api "
                                     "(default: the local stack's)")
    p.add_argument("--settings", type=Path, help="local.settings.json to read (default: the repository's)")
    return p


def main(argv=None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.settings is not None and not args.settings.is_file():
            print(f"no such settings file: {args.settings}", file=err)
            return 2
        values = tool_values(args.settings)
        missing = [k for k in ("AUTH0_DOMAIN", "API_AUDIENCE") if not values.get(k)]
        if missing:
            print(f"settings missing: {', '.join(missing)} (run `make up`, or pass --settings)", file=err)
            return 2
        api_url = args.gateway or local_api_url()
        return journey(values, args.customer, api_url, method=args.method, path=args.path, data=args.data, out=out)
    except (StepFailed, SettingsError) as exc:
        print(f"   failed: {exc}", file=out)
        return 1
    except httpx.HTTPError as exc:
        print(f"   failed: {type(exc).__name__}: {exc}", file=out)
        return 1


if __name__ == "__main__":
    sys.exit(main())
