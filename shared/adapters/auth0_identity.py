"""IdentityProvider over auth0-python 6.x (``auth0.management.ManagementClient``).

- Token: the Management API token comes from our own :class:`ManagementToken` (client credentials at
  ``https://{domain}/oauth/token``), not the SDK's ``TokenProvider``: that one opens its own ``httpx.Client()``, so it
  cannot be given the local stack's CA, and it classifies nothing. Ours shares the adapter's httpx client, is
  thread-safe, refreshes before expiry and turns failures into TransientError/PermanentError.
- Retries: the SDK retries 408/409/429/5xx and dropped connections on *every* method, POST included, so a retried
  ``POST /clients`` can create a second application. Every call here passes ``max_retries=0``: retrying is the
  message pipeline's job, and for the create it is the service layer's (intent + ``find_applications``) to decide.
- Errors: 429 -> TransientError with ``retry_after`` from ``x-ratelimit-reset`` (else ``Retry-After``); 5xx, timeouts
  and connection failures -> TransientError; 404 -> None/False; 409 on a grant create -> None; 401 -> one fresh token
  and one more try, then PermanentError; other 4xx -> PermanentError with Auth0's message (never a request body).
- Pacing: the limit is the tenant's, shared by every instance of the app, so the adapter paces on what the tenant
  says: an httpx response hook feeds every answer's ``x-ratelimit-limit``/``-remaining``/``-reset`` to a
  ``rate_governor.RateGovernor``, which spreads the bucket's remaining budget over the time to its reset (with a
  reserve and jitter) and holds at zero until the reset. Instances never talk to each other; they read the same
  headers (``RATE_LIMIT_HEADER_PACING``, on by default). ``AUTH0_RATE_LIMIT`` adds an optional static cap per
  instance (``throttle.Throttle``). Every HTTP call, the token request included, waits for both. A paced call that
  still meets a 429 holds every paced call until ``x-ratelimit-reset`` and is tried again, up to twice: a 429 is
  refused before anything is applied, so even a create is safe to repeat. Unpaced calls raise it at once.
"""
from __future__ import annotations

import logging
import math
import ssl
import threading
import time
from typing import Any, Callable

import httpx
from auth0.management import ManagementClient
from auth0.management.core.api_error import ApiError
from auth0.management.core.parse_error import ParsingError

from ..domain.errors import PermanentError, ProvisioningError, TransientError
from ..service_layer.ports import Application, ApplicationSpec, ApplicationUpdate, ClientGrant, IdentityProvider
from .failure_rules import is_transient_status, redact, retry_after_seconds
from .rate_governor import RateGovernor
from .telemetry import external_call, observe_status
from .throttle import Throttle

SERVICE = "auth0"
PER_PAGE = 100  # the Management API's maximum
LIST_FIELDS = "client_id,name,description,client_metadata,app_type,is_first_party,grant_types,callbacks"
NO_RETRIES = {"max_retries": 0}
#: a paced call refused with 429 is tried again after the reset at most this many times in-call
MAX_PACED_429_RETRIES = 2
_ABSENT = object()

log = logging.getLogger(__name__)


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True


class ManagementToken:
    """A cached client-credentials token for the Management API; call it to get a valid token."""

    def __init__(self, http: httpx.Client, *, domain: str, client_id: str, client_secret: str, audience: str,
                 on_fetch: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.time):
        self._http = http
        self._url = f"https://{domain}/oauth/token"
        self._form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
                      "audience": audience}
        self._secret = client_secret
        self._on_fetch = on_fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    def __call__(self) -> str:
        token = self._token
        if token and self._clock() < self._refresh_at:
            return token
        with self._lock:  # one fetch at a time; the others then take its token
            if self._token and self._clock() < self._refresh_at:
                return self._token
            self._fetch()
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        """Forget the token (after a 401), unless another thread already replaced it."""
        with self._lock:
            if token is None or token == self._token:
                self._token, self._refresh_at = None, 0.0

    @property
    def current(self) -> str | None:
        return self._token

    def _fetch(self) -> None:
        with external_call(SERVICE, "token"):
            self._request_token()

    def _request_token(self) -> None:
        self._on_fetch()
        kw = dict(service=SERVICE, operation="token")
        try:
            response = self._http.post(self._url, data=self._form, headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            raise TransientError(f"token request failed: {type(exc).__name__}", **kw) from None
        status = response.status_code
        if status != 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            detail = body.get("error_description") or body.get("message") or response.reason_phrase
            code = body.get("error") or ""
            text = redact(f"{status} {code}: {detail}", (self._secret,))
            if is_transient_status(status):
                raise TransientError(f"token request: {text}",
                                     retry_after=retry_after_seconds(response.headers, status=status), status=status,
                                     **kw)
            raise PermanentError(f"token request refused (check AUTH0_CLIENT_ID/AUTH0_CLIENT_SECRET and that the "
                                 f"application may call the Management API): {text}", status=status, **kw)
        try:
            data = response.json()
            token = str(data["access_token"])
            lifetime = float(data.get("expires_in") or 86400)
        except (ValueError, KeyError, TypeError):
            raise TransientError("token response is not the expected JSON", status=status, **kw) from None
        # Refresh ahead of expiry (a tenth of the lifetime, at most 5 min), so no call goes out with a token that
        # expires on its way.
        self._token = token
        self._refresh_at = self._clock() + lifetime - min(300.0, lifetime / 10)


class Auth0IdentityProvider(IdentityProvider):
    def __init__(self, domain: str, client_id: str, client_secret: str, *, audience: str | None = None,
                 timeout: float = 10.0, ca_bundle: str | None = None, rate_limit: float | None = None,
                 rate_limit_burst: int | None = None, header_pacing: bool = True, max_wait: float = 30.0):
        self.domain = domain
        self._secret = client_secret
        self.throttle = (Throttle(rate_limit, rate_limit_burst or max(1, math.ceil(rate_limit)), service=SERVICE,
                                  max_wait=max_wait) if rate_limit else None)
        self.governor = RateGovernor(SERVICE, max_wait=max_wait) if header_pacing else None
        self._http = httpx.Client(verify=_ssl_context(ca_bundle), timeout=timeout)
        # Every answer, the token request's and errors included, tells the call's span its status and (with header
        # pacing) the tenant's bucket what is left.
        hooks = dict(self._http.event_hooks)
        hooks["response"] = [*hooks.get("response", []), self._observe]
        self._http.event_hooks = hooks
        self.token = ManagementToken(self._http, domain=domain, client_id=client_id, client_secret=client_secret,
                                     audience=audience or f"https://{domain}/api/v2/",
                                     on_fetch=lambda: self._pace("token"))
        self._mgmt = ManagementClient(domain=domain, token=self.token, httpx_client=self._http)

    @classmethod
    def from_settings(cls, settings) -> "Auth0IdentityProvider":
        return cls(settings.auth0_domain, settings.auth0_client_id, settings.auth0_client_secret,
                   audience=settings.auth0_management_audience, timeout=settings.auth0_timeout_seconds,
                   ca_bundle=settings.local_stack_ca_bundle, rate_limit=settings.auth0_rate_limit or None,
                   rate_limit_burst=settings.auth0_rate_limit_burst or None,
                   header_pacing=settings.rate_limit_header_pacing, max_wait=settings.pacing_max_wait_seconds)

    def warm_up(self) -> None:
        """Fetch the Management API token, which also opens the connection the calls reuse."""
        self.token()

    # -- plumbing ------------------------------------------------------------------------------------------------
    @property
    def paced(self) -> bool:
        return self.throttle is not None or self.governor is not None

    def _observe(self, response: httpx.Response) -> None:
        observe_status(response.status_code)
        if self.governor is not None:
            self.governor.observe_auth0(response.headers)

    def _pace(self, operation: str) -> None:
        """Wait for this HTTP call's slot: the static cap first, then the tenant's shared budget."""
        if self.throttle is not None:
            self.throttle.acquire(operation)
        if self.governor is not None:
            self.governor.acquire(operation)

    def _call(self, operation: str, fn: Callable[[], Any], *, absent_on: tuple[int, ...] = ()) -> Any:
        """Run one SDK call; returns ``_ABSENT`` for a status in ``absent_on``, raises only our error kinds. One span
        per call (``telemetry.external_call``), its in-call tries (a fresh token, a held 429) included."""
        with external_call(SERVICE, operation) as call:
            result = self._run_call(operation, fn, absent_on)
            if result is _ABSENT:
                call.outcome = "absent"
            return result

    def _run_call(self, operation: str, fn: Callable[[], Any], absent_on: tuple[int, ...]) -> Any:
        refreshed = False
        rate_limited = 0
        while True:
            if self.paced:
                # A token fetch inside fn() would hold this call's slot while it waits for its own, and the call
                # would then go out bunched with others: fetch first, so the slot is used the moment it comes.
                self.token()
            used = self.token.current
            self._pace(operation)
            try:
                return fn()
            except ProvisioningError:  # from the token fetch, already classified
                raise
            except ApiError as exc:
                if exc.status_code in absent_on:
                    return _ABSENT
                if exc.status_code == 401 and not refreshed:
                    # Revoked or expired early: a 401 means nothing was applied, so a fresh token and one more
                    # try is safe, even for a create.
                    refreshed = True
                    self.token.invalidate(used)
                    continue
                if exc.status_code == 429 and self._hold_after_429(exc.headers, rate_limited, operation):
                    rate_limited += 1
                    continue
                raise self._classify(exc.status_code, exc.headers, exc.body, operation) from None
            except ParsingError as exc:
                # After a create, the application may exist: transient, so that the next delivery adopts it through
                # the intent record instead of the message dead-lettering with an application nobody knows.
                kind = TransientError if operation == "create_application" else PermanentError
                raise kind(f"unexpected response (status {exc.status_code}) that the SDK could not parse",
                           service=SERVICE, operation=operation, status=exc.status_code) from None
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                # No answer: the call may or may not have been applied (for a create, the service layer's intent
                # record and find_applications settle which).
                raise TransientError(f"no response: {type(exc).__name__}", service=SERVICE,
                                     operation=operation) from None
            except httpx.HTTPError as exc:
                raise PermanentError(f"request failed: {type(exc).__name__}", service=SERVICE,
                                     operation=operation) from None

    def _hold_after_429(self, headers: Any, earlier: int, operation: str) -> bool:
        """Paced calls only: the tenant's bucket was emptier than this process knew (other instances or other
        clients share it, or a call of ours reached it late), so hold every paced call until its reset and try this
        one again. A 429 is refused before anything is applied, so even a create is safe to repeat. Unpaced calls
        leave the wait to the message pipeline, as does a reset further away than the pacing's max_wait."""
        if not self.paced or earlier >= MAX_PACED_429_RETRIES:
            return False
        wait = retry_after_seconds(headers, status=429)
        if wait is None:
            wait = 1.0 / self.throttle.rate if self.throttle is not None else 1.0
        limit = min(p.max_wait for p in (self.throttle, self.governor) if p is not None)
        if wait > limit:
            return False
        for pacer in (self.throttle, self.governor):
            if pacer is not None:
                pacer.hold(wait)
        # Worth a warning: repeated, it means the instances ask more of the tenant than it gives (AUTH0_RATE_LIMIT
        # above this instance's share, or another client of the tenant busy).
        log.warning("auth0.%s: 429 from Auth0 although paced; paced calls held %.1f s until its reset",
                    operation, wait)
        return True

    def _classify(self, status: int | None, headers: Any, body: Any, operation: str) -> ProvisioningError:
        if isinstance(body, dict):
            message = body.get("message") or body.get("error_description") or body.get("error") or ""
            code = body.get("errorCode") or body.get("error") or ""
        else:
            message, code = "", ""
        head = " ".join(str(p) for p in (status, code) if p)
        text = redact(f"{head}: {message or 'no message'}", (self._secret,))
        kw = dict(service=SERVICE, operation=operation, status=status)
        if is_transient_status(status):
            return TransientError(text, retry_after=retry_after_seconds(headers, status=status), **kw)
        return PermanentError(text, **kw)

    @staticmethod
    def _application(client: Any, *, with_secret: bool) -> Application:
        app_type = getattr(client, "app_type", None)
        return Application(
            client_id=client.client_id,
            name=client.name or "",
            client_metadata={str(k): str(v) for k, v in (client.client_metadata or {}).items()},
            client_secret=getattr(client, "client_secret", None) if with_secret else None,
            is_first_party=getattr(client, "is_first_party", None),
            app_type=str(app_type) if app_type is not None else None,
            grant_types=_strings(getattr(client, "grant_types", None)),
            callbacks=_strings(getattr(client, "callbacks", None)),
            description=getattr(client, "description", None))

    # -- applications ----------------------------------------------------------------------------------------------
    def create_application(self, spec: ApplicationSpec) -> Application:
        body: dict[str, Any] = dict(
            name=spec.name,
            app_type=spec.app_type,
            is_first_party=spec.is_first_party,
            oidc_conformant=True,
            grant_types=list(spec.grant_types),
            token_endpoint_auth_method=spec.token_endpoint_auth_method,
            client_metadata=dict(spec.client_metadata),
            jwt_configuration={"lifetime_in_seconds": int(spec.token_lifetime)},
        )
        if spec.description:
            body["description"] = spec.description
        if spec.callbacks:
            body["callbacks"] = list(spec.callbacks)
        created = self._call("create_application",
                             lambda: self._mgmt.clients.create(**body, request_options=NO_RETRIES))
        return self._application(created, with_secret=True)

    def get_application(self, client_id: str, *, with_secret: bool = False) -> Application | None:
        fields = LIST_FIELDS + (",client_secret" if with_secret else "")
        found = self._call("get_application",
                           lambda: self._mgmt.clients.get(client_id, fields=fields, include_fields=True,
                                                          request_options=NO_RETRIES),
                           absent_on=(404,))
        return None if found is _ABSENT else self._application(found, with_secret=with_secret)

    def find_applications(self, customer_id: str) -> list[Application]:
        return [app for app in self.list_applications() if app.client_metadata.get("customer_id") == customer_id]

    def list_applications(self) -> list[Application]:
        # The Management API cannot filter on client_metadata (the /clients search endpoint is eventually
        # consistent), so read every page. include_totals=True: auth0-python 6.8 fails to parse the bare-array answer
        # of include_totals=False (auth0-python issue 856), and the total tells where to stop without the extra
        # empty page the SDK's pager asks for. Offset paging shifts when clients are deleted meanwhile and could skip
        # one, so a scan during which the total changed is done again.
        for _ in range(3):
            found, stable = self._scan()
            if stable:
                break
        return found

    def _scan(self) -> tuple[list[Application], bool]:
        found: list[Application] = []
        first_total = None
        page = 0
        while True:
            pager = self._call("list_applications",
                               lambda p=page: self._mgmt.clients.list(
                                   page=p, per_page=PER_PAGE, include_totals=True,
                                   fields=LIST_FIELDS, include_fields=True, request_options=NO_RETRIES))
            items = pager.items or []
            found.extend(self._application(client, with_secret=False) for client in items)
            total = getattr(pager.response, "total", None)
            if first_total is None:
                first_total = total
            page += 1
            if len(items) < PER_PAGE or (total is not None and page * PER_PAGE >= total):
                return found, total == first_total

    def delete_application(self, client_id: str) -> bool:
        result = self._call("delete_application",
                            lambda: self._mgmt.clients.delete(client_id, request_options=NO_RETRIES),
                            absent_on=(404,))
        return result is not _ABSENT

    def set_application_metadata(self, client_id: str, metadata: dict[str, str]) -> Application | None:
        # PATCH /clients/{id} merges client_metadata: the application's other keys and properties stay.
        updated = self._call("update_application",
                             lambda: self._mgmt.clients.update(client_id, client_metadata=dict(metadata),
                                                               request_options=NO_RETRIES),
                             absent_on=(404,))
        return None if updated is _ABSENT else self._application(updated, with_secret=False)

    def rotate_secret(self, client_id: str) -> Application | None:
        # POST /clients/{id}/rotate-secret answers with the whole client, the new secret included. NO_RETRIES like
        # every call here, and here it matters most: a rotation repeated after a lost answer rotates twice.
        rotated = self._call("rotate_secret",
                             lambda: self._mgmt.clients.rotate_secret(client_id, request_options=NO_RETRIES),
                             absent_on=(404,))
        return None if rotated is _ABSENT else self._application(rotated, with_secret=True)

    def update_application(self, client_id: str, update: ApplicationUpdate) -> bool:
        # PATCH /api/v2/clients/{id}: only the properties sent change; client_metadata is merged (null removes).
        sent = dict(name=update.name, app_type=update.app_type,
                    grant_types=None if update.grant_types is None else list(update.grant_types),
                    token_endpoint_auth_method=update.token_endpoint_auth_method,
                    jwt_configuration=None if update.token_lifetime is None
                    else {"lifetime_in_seconds": int(update.token_lifetime)},
                    client_metadata=dict(update.client_metadata) or None,
                    callbacks=None if update.callbacks is None else list(update.callbacks))
        body: dict[str, Any] = {k: v for k, v in sent.items() if v is not None}
        if not body:
            return True
        result = self._call("update_application",
                            lambda: self._mgmt.clients.update(client_id, **body, request_options=NO_RETRIES),
                            absent_on=(404,))
        return result is not _ABSENT

    # -- client grants -----------------------------------------------------------------------------------------------
    def get_client_grant(self, client_id: str, audience: str) -> str | None:
        pager = self._call("get_client_grant",
                           lambda: self._mgmt.client_grants.list(client_id=client_id, audience=audience,
                                                                 request_options=NO_RETRIES))
        for grant in pager.items or []:
            if grant.client_id == client_id and grant.audience == audience:
                return grant.id
        return None

    def create_client_grant(self, client_id: str, audience: str, scopes: tuple[str, ...]) -> str | None:
        created = self._call("create_client_grant",
                             lambda: self._mgmt.client_grants.create(client_id=client_id, audience=audience,
                                                                     scope=list(scopes), request_options=NO_RETRIES),
                             absent_on=(409,))
        return None if created is _ABSENT else created.id

    def update_client_grant(self, grant_id: str, scopes: tuple[str, ...]) -> bool:
        result = self._call("update_client_grant",
                            lambda: self._mgmt.client_grants.update(grant_id, scope=list(scopes),
                                                                    request_options=NO_RETRIES),
                            absent_on=(404,))
        return result is not _ABSENT

    def delete_client_grant(self, grant_id: str) -> bool:
        result = self._call("delete_client_grant",
                            lambda: self._mgmt.client_grants.delete(grant_id, request_options=NO_RETRIES),
                            absent_on=(404,))
        return result is not _ABSENT

    def list_client_grants(self, audience: str) -> list[ClientGrant]:
        # Checkpoint pagination (from/take): each page is fetched through _call, so it is paced and classified.
        pager = self._call("list_client_grants",
                           lambda: self._mgmt.client_grants.list(audience=audience, take=PER_PAGE,
                                                                 request_options=NO_RETRIES))
        grants: list[ClientGrant] = []
        while pager is not None:
            grants.extend(ClientGrant(grant_id=g.id, client_id=g.client_id, audience=g.audience,
                                      scopes=tuple(g.scope or ())) for g in pager.items or [])
            if not pager.has_next or not pager.items:
                break
            pager = self._call("list_client_grants", pager.next_page)
        return grants

    def close(self) -> None:
        self._http.close()


def _strings(values: Any) -> tuple[str, ...] | None:
    return None if values is None else tuple(str(getattr(v, "value", v)) for v in values)
