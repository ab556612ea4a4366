"""The tenant configuration's reads and writes over auth0-python 6.x: the API (resource server) and the app's client
grant to the Management API. The logic (what to change) is ``shared/domain/tenant.py``; this only talks.

The credential is a person's, not the app's: a Management API token with ``read:resource_servers
create:resource_servers update:resource_servers read:client_grants create:client_grants update:client_grants``
(``AUTH0_ADMIN_TOKEN``, e.g. from the dashboard's API Explorer), or the id and secret of a machine-to-machine
application granted those scopes (``AUTH0_ADMIN_CLIENT_ID`` / ``AUTH0_ADMIN_CLIENT_SECRET``). Only from the
environment: never a setting of the app, never in a file of the repository.
"""
from __future__ import annotations

import ssl
from typing import Mapping

import httpx
from auth0.management import ManagementClient
from auth0.management.core.api_error import ApiError
from auth0.management.types import ResourceServerScope

from ..domain.tenant import Change, CurrentApi, CurrentGrant

NO_RETRIES = {"max_retries": 0}


class TenantAdminError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def credential_refused(self) -> bool:
        return self.status in (401, 403)


def _verify(ca_bundle: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True


def admin_token(domain: str, env: Mapping[str, str], ca_bundle: str | None = None) -> str:
    token = env.get("AUTH0_ADMIN_TOKEN")
    if token:
        return token
    client_id, secret = env.get("AUTH0_ADMIN_CLIENT_ID"), env.get("AUTH0_ADMIN_CLIENT_SECRET")
    if not (client_id and secret):
        raise TenantAdminError("no admin credential: set AUTH0_ADMIN_TOKEN (a Management API token, e.g. from the "
                               "dashboard's API Explorer) or AUTH0_ADMIN_CLIENT_ID and AUTH0_ADMIN_CLIENT_SECRET in "
                               "the environment")
    with httpx.Client(verify=_verify(ca_bundle), timeout=30) as http:
        answer = http.post(f"https://{domain}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "audience": f"https://{domain}/api/v2/"})
    if answer.status_code != 200:
        raise TenantAdminError(f"the admin credential was refused: {answer.status_code} "
                               f"{answer.json().get('error_description', '') if answer.content else ''}",
                               status=answer.status_code)
    return answer.json()["access_token"]


class Auth0Tenant:
    def __init__(self, domain: str, token: str, ca_bundle: str | None = None):
        self.domain = domain
        self.management_audience = f"https://{domain}/api/v2/"
        self._client = ManagementClient(domain=domain, token=token,
                                        httpx_client=httpx.Client(verify=_verify(ca_bundle), timeout=30))

    def _call(self, what: str, fn):
        try:
            return fn()
        except ApiError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            raise TenantAdminError(f"{what}: {exc.status_code} {body.get('message') or body or ''}".strip(),
                                   status=exc.status_code) from None

    def get_api(self, identifier: str) -> CurrentApi | None:
        found = [r for r in self._call("list APIs", lambda: list(self._client.resource_servers.list(
            identifiers=[identifier], request_options=NO_RETRIES))) if r.identifier == identifier]
        if not found:
            return None
        r = found[0]
        return CurrentApi(r.id, r.name or "", r.token_lifetime,
                          tuple((s.value, s.description or "") for s in (r.scopes or [])))

    def get_management_grant(self, client_id: str) -> CurrentGrant | None:
        grants = self._call("list client grants", lambda: list(self._client.client_grants.list(
            client_id=client_id, audience=self.management_audience, request_options=NO_RETRIES)))
        if not grants:
            return None
        return CurrentGrant(grants[0].id, tuple(grants[0].scope or ()))

    def apply(self, change: Change) -> None:
        p = dict(change.payload)
        if change.what == "api" and change.action == "create":
            self._call("create the API", lambda: self._client.resource_servers.create(
                identifier=p["identifier"], name=p["name"], token_lifetime=p["token_lifetime"],
                scopes=[ResourceServerScope(**s) for s in p["scopes"]], request_options=NO_RETRIES))
        elif change.what == "api" and change.action == "update":
            api_id = p.pop("id")
            if "scopes" in p:
                p["scopes"] = [ResourceServerScope(**s) for s in p["scopes"]]
            self._call("update the API", lambda: self._client.resource_servers.update(
                api_id, **p, request_options=NO_RETRIES))
        elif change.what == "management_grant" and change.action == "create":
            self._call("create the Management API grant", lambda: self._client.client_grants.create(
                client_id=p["client_id"], audience=p["audience"], scope=p["scope"], request_options=NO_RETRIES))
        elif change.what == "management_grant" and change.action == "update":
            self._call("update the Management API grant", lambda: self._client.client_grants.update(
                p["id"], scope=p["scope"], request_options=NO_RETRIES))
