"""Auth0IdentityProvider against the Auth0 stand-in, through auth0-python's real ManagementClient over TLS."""
from __future__ import annotations

import math
import ssl
import time
import uuid

import httpx
import pytest

from shared.adapters.auth0_identity import Auth0IdentityProvider, ManagementToken
from shared.domain.errors import PermanentError, TransientError
from shared.service_layer.ports import ApplicationSpec, ApplicationUpdate

pytestmark = pytest.mark.timeout(60)

API = "https://api.contoso.local/"


@pytest.fixture
def auth0(settings, auth0_ctl):
    adapter = Auth0IdentityProvider.from_settings(settings)
    yield adapter
    adapter.close()


def spec(customer_id: str, *, first_party: bool = False, name: str | None = None, public: bool = False
         ) -> ApplicationSpec:
    return ApplicationSpec(
        name=name or f"Customer {customer_id}",
        app_type="spa" if public else "non_interactive",
        grant_types=("authorization_code", "refresh_token") if public else ("client_credentials",),
        token_endpoint_auth_method="none" if public else "client_secret_post",
        is_first_party=first_party,
        token_lifetime=3600,
        client_metadata={"customer_id": customer_id, "profile": "oem"},
        callbacks=("https://app.example.com/callback",) if public else (),
        description="integration test",
    )


def new_id() -> str:
    return "cust-" + uuid.uuid4().hex[:12]


def no_sdk_exception_attached(err: BaseException) -> bool:
    """A traceback of ``err`` shows no SDK exception (whose text could hold a response body)."""
    return err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def standin_calls(ctl, op: str) -> int:
    return ctl.calls()["calls"].get(op, 0)


# -- token ---------------------------------------------------------------------------------------------------------
def test_token_is_fetched_once_and_reused_across_calls(auth0, auth0_ctl):
    before = standin_calls(auth0_ctl, "oauth.token")
    assert auth0.get_application("no-such-client") is None
    auth0.find_applications(new_id())
    assert auth0.get_client_grant("no-such-client", API) is None
    assert standin_calls(auth0_ctl, "oauth.token") - before == 1


def test_token_is_refreshed_before_it_expires(settings, auth0_ctl):
    auth0_ctl.config(token_lifetime=100)  # the fixture restores it
    now = [1_000_000.0]
    fetches = []
    with httpx.Client(verify=ssl.create_default_context(cafile=settings.local_stack_ca_bundle)) as http:
        token = ManagementToken(http, domain=settings.auth0_domain, client_id=settings.auth0_client_id,
                                client_secret=settings.auth0_client_secret, audience=settings.auth0_management_audience,
                                on_fetch=lambda: fetches.append(now[0]), clock=lambda: now[0])
        first = token()
        now[0] += 80  # 20 s left of 100: still outside the refresh margin (a tenth of the lifetime)
        assert token() == first
        now[0] += 11  # 9 s left: inside the margin
        token()
    assert len(fetches) == 2


def test_a_rejected_token_is_replaced_once(auth0, auth0_ctl):
    auth0.get_application("warm-up")  # fetches and caches a token
    auth0.token._token = "not.a.token"  # as if revoked: the API answers 401
    before = standin_calls(auth0_ctl, "clients.get")
    tokens = standin_calls(auth0_ctl, "oauth.token")
    assert auth0.get_application("no-such-client") is None
    assert standin_calls(auth0_ctl, "oauth.token") - tokens == 1
    assert standin_calls(auth0_ctl, "clients.get") - before == 2


def test_wrong_credentials_are_permanent_and_the_secret_stays_out_of_the_error(settings):
    wrong = "wrong-" + uuid.uuid4().hex
    adapter = Auth0IdentityProvider(settings.auth0_domain, settings.auth0_client_id, wrong,
                                    ca_bundle=settings.local_stack_ca_bundle)
    with pytest.raises(PermanentError) as info:
        adapter.get_application("anything")
    adapter.close()
    err = info.value
    assert err.status == 401 and err.operation == "token"
    assert "access_denied" in err.message
    assert wrong not in str(err) and wrong not in repr(err.args)
    assert no_sdk_exception_attached(err)


# -- applications --------------------------------------------------------------------------------------------------
def test_create_returns_a_third_party_application_with_its_secret(auth0, stack):
    customer = new_id()
    app = auth0.create_application(spec(customer))
    assert app.client_id.startswith("tpc_")
    assert app.client_secret and app.client_secret not in repr(app)
    assert app.client_metadata == {"customer_id": customer, "profile": "oem"}
    assert app.is_first_party is False and app.app_type == "non_interactive"
    stored = stack.auth0.clients[app.client_id]
    assert stored["jwt_configuration"]["lifetime_in_seconds"] == 3600
    assert stored["grant_types"] == ["client_credentials"]
    assert stored["token_endpoint_auth_method"] == "client_secret_post"
    assert stored["description"] == "integration test"


def test_a_public_client_has_no_secret_and_keeps_its_callbacks(auth0, stack):
    app = auth0.create_application(spec(new_id(), public=True))
    assert app.client_secret is None
    assert stack.auth0.clients[app.client_id]["callbacks"] == ["https://app.example.com/callback"]


def test_get_application_reads_the_secret_only_when_asked(auth0):
    created = auth0.create_application(spec(new_id()))
    plain = auth0.get_application(created.client_id)
    assert plain.client_id == created.client_id and plain.client_secret is None
    assert plain.client_metadata == created.client_metadata
    assert auth0.get_application(created.client_id, with_secret=True).client_secret == created.client_secret


def test_get_and_delete_of_a_missing_application(auth0):
    assert auth0.get_application("tpc_doesnotexist") is None
    assert auth0.delete_application("tpc_doesnotexist") is False


def test_delete_application(auth0):
    app = auth0.create_application(spec(new_id()))
    assert auth0.delete_application(app.client_id) is True
    assert auth0.get_application(app.client_id) is None


def test_find_applications_reads_every_page(auth0, auth0_ctl, stack):
    customer, other = new_id(), new_id()
    # Enough applications for three pages of 100, with ours on the first, second and last page.
    wanted = {auth0.create_application(spec(customer)).client_id}
    for i in range(205):
        if i in (100, 204):
            wanted.add(auth0.create_application(spec(customer, first_party=True)).client_id)
        else:
            auth0.create_application(spec(other))
    before = standin_calls(auth0_ctl, "clients.list")
    found = auth0.find_applications(customer)
    assert {a.client_id for a in found} == wanted
    assert all(a.client_metadata["customer_id"] == customer for a in found)
    # One request per page: the total says where to stop, so no trailing empty page is asked for.
    assert standin_calls(auth0_ctl, "clients.list") - before == math.ceil(len(stack.auth0.clients) / 100)
    assert sorted(a.is_first_party for a in found) == [False, True, True]


def test_find_applications_of_an_unknown_customer_is_empty(auth0):
    assert auth0.find_applications(new_id()) == []


# -- client grants -------------------------------------------------------------------------------------------------
def test_client_grant_lifecycle(auth0, auth0_ctl):
    app = auth0.create_application(spec(new_id()))
    grant_id = auth0.create_client_grant(app.client_id, API, ("read:data",))
    assert grant_id and grant_id.startswith("cgr_")
    assert auth0.get_client_grant(app.client_id, API) == grant_id

    before = standin_calls(auth0_ctl, "client_grants.create")
    assert auth0.create_client_grant(app.client_id, API, ("read:data",)) is None  # 409: it exists
    assert standin_calls(auth0_ctl, "client_grants.create") - before == 1  # the SDK did not retry the 409

    assert auth0.delete_client_grant(grant_id) is True
    assert auth0.delete_client_grant(grant_id) is False
    assert auth0.get_client_grant(app.client_id, API) is None


def test_list_client_grants_reads_every_page_and_updates_go_in_place(auth0, auth0_ctl):
    audience = "https://api.contoso.local/"
    apps = [auth0.create_application(spec(new_id())).client_id for _ in range(101)]
    grants = {auth0.create_client_grant(cid, audience, ("read:data",)) for cid in apps}
    before = standin_calls(auth0_ctl, "client_grants.list")
    listed = auth0.list_client_grants(audience)
    assert grants <= {g.grant_id for g in listed}
    assert standin_calls(auth0_ctl, "client_grants.list") - before >= 2  # checkpoint pages of at most 100

    grant = next(g for g in listed if g.client_id == apps[0])
    assert auth0.update_client_grant(grant.grant_id, ("read:data", "write:data")) is True
    assert {g.grant_id: set(g.scopes) for g in auth0.list_client_grants(audience)}[grant.grant_id] == \
        {"read:data", "write:data"}
    assert auth0.update_client_grant("cgr_nosuchgrant", ("read:data",)) is False

    assert auth0.update_application(apps[0], ApplicationUpdate(callbacks=("https://x.example/cb",))) is True
    assert auth0.get_application(apps[0]).callbacks == ("https://x.example/cb",)
    assert auth0.update_application("no-such-client", ApplicationUpdate(callbacks=())) is False


def test_a_grant_for_an_unknown_api_is_permanent(auth0):
    app = auth0.create_application(spec(new_id()))
    with pytest.raises(PermanentError) as info:
        auth0.create_client_grant(app.client_id, "https://unknown.example.com/", ("read:data",))
    assert info.value.status == 404


# -- failures ------------------------------------------------------------------------------------------------------
def test_a_failed_create_is_not_retried_by_the_sdk(auth0, auth0_ctl, stack):
    customer = new_id()
    auth0.get_application("warm-up")
    auth0_ctl.fail_next("clients.create", 503)
    before = standin_calls(auth0_ctl, "clients.create")
    with pytest.raises(TransientError) as info:
        auth0.create_application(spec(customer))
    assert info.value.status == 503 and info.value.operation == "create_application"
    assert standin_calls(auth0_ctl, "clients.create") - before == 1
    assert auth0.find_applications(customer) == []


def test_a_dropped_create_is_transient_and_the_application_can_be_found(auth0, auth0_ctl):
    customer = new_id()
    auth0.get_application("warm-up")
    auth0_ctl.fail_next("clients.create", "drop_after")  # applied, then the connection closes
    with pytest.raises(TransientError):
        auth0.create_application(spec(customer))
    assert len(auth0.find_applications(customer)) == 1


def test_rate_limited_calls_are_transient_with_the_reset_time(settings, auth0_ctl):
    """Unpaced (no static cap, header pacing off): a 429 goes to the message pipeline at once."""
    auth0 = Auth0IdentityProvider.from_settings(settings.model_copy(update=dict(rate_limit_header_pacing=False)))
    try:
        auth0.get_application("warm-up")
        auth0_ctl.config(rate=0.5, burst=1)  # one request, then one every 2 s
        before = standin_calls(auth0_ctl, "clients.get")
        started = time.time()
        with pytest.raises(TransientError) as info:
            for _ in range(3):
                auth0.get_application("no-such-client")
    finally:
        auth0.close()
    err = info.value
    assert err.status == 429
    assert err.retry_after is not None and 0 < err.retry_after <= 3
    assert time.time() - started < 1.5  # no in-call waiting for the bucket
    assert standin_calls(auth0_ctl, "clients.get") - before <= 2


def test_server_errors_are_transient(auth0, auth0_ctl):
    auth0.get_application("warm-up")
    auth0_ctl.fail_next("clients.get", 503)
    with pytest.raises(TransientError) as info:
        auth0.get_application("no-such-client")
    assert info.value.status == 503 and info.value.service == "auth0"
    # The 503 carries x-ratelimit-reset like every Auth0 answer, but that is the bucket's time, not the outage's:
    # the app's own backoff decides.
    assert info.value.retry_after is None


def test_a_dropped_connection_is_transient(auth0, auth0_ctl):
    auth0.get_application("warm-up")
    auth0_ctl.fail_next("client_grants.list", "drop")
    with pytest.raises(TransientError):
        auth0.get_client_grant("any", API)


def test_an_unreachable_tenant_is_transient(settings):
    adapter = Auth0IdentityProvider("127.0.0.1:9", "id", "secret", ca_bundle=settings.local_stack_ca_bundle,
                                    timeout=2)
    with pytest.raises(TransientError) as info:
        adapter.find_applications("x")
    adapter.close()
    assert info.value.operation == "token"


def test_a_rejected_payload_is_permanent_with_auth0s_message(auth0, settings):
    with pytest.raises(PermanentError) as info:
        auth0.create_application(spec(new_id(), name="Bad <name>"))
    err = info.value
    assert err.status == 400
    assert "Payload validation error" in err.message and "on property name" in err.message
    assert settings.auth0_client_secret not in str(err)
    assert no_sdk_exception_attached(err)
