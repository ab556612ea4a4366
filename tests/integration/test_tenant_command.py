"""`python -m opstool tenant plan|apply` against the Auth0 stand-in, through the real auth0-python client: the plan
names every change and changes nothing, apply makes the API and the app's Management API grant what the files say,
a second apply changes nothing, and a profile scope the API does not define stops the command."""
from __future__ import annotations

import io
import ssl

import httpx
import pytest

from opstool.cli import main as opstool
from shared.domain.tenant import APP_MANAGEMENT_SCOPES

pytestmark = pytest.mark.timeout(60)
API = "https://api.contoso.local/"


@pytest.fixture
def admin_env(stack_env, local_stack, monkeypatch):
    client_id, secret = local_stack.admin_credentials
    monkeypatch.setenv("AUTH0_ADMIN_CLIENT_ID", client_id)
    monkeypatch.setenv("AUTH0_ADMIN_CLIENT_SECRET", secret)
    return stack_env


def tenant(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = opstool(["tenant", *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def app_grant(local_stack) -> list[str]:
    state = local_stack.control("auth0").state()
    [grant] = [g for g in state["client_grants"] if g["client_id"] == local_stack.settings["AUTH0_CLIENT_ID"]
               and g["audience"].endswith("/api/v2/")]
    return grant["scope"]


def api_record(local_stack) -> dict | None:
    return next((r for r in local_stack.control("auth0").state()["resource_servers"] if r["identifier"] == API), None)


def test_plan_then_apply_then_nothing_to_do(admin_env, local_stack):
    before = local_stack.control("auth0").state()
    code, out, err = tenant("plan")
    assert code == 0, err
    assert "~ API https://api.contoso.local/" in out and "describe read:data, write:data" in out
    assert "remove read:resource_servers" in out  # the app's grant is wider than its calls
    assert "Nothing was changed." in out
    assert local_stack.control("auth0").state()["resource_servers"] == before["resource_servers"]

    code, out, err = tenant("apply", "--yes")
    assert code == 0, err
    assert "Applied: 2 change(s)." in out
    assert sorted(app_grant(local_stack)) == sorted(APP_MANAGEMENT_SCOPES)
    api = api_record(local_stack)
    assert api["name"] == "Customer API"
    assert [s["value"] for s in api["scopes"]] == ["read:data", "write:data"]
    assert api["scopes"][0]["description"] == "Read the customer's data"

    code, out, _ = tenant("apply", "--yes")
    assert code == 0 and "Plan: 0 to change. Nothing to do." in out
    # The narrowed grant is all the app needs: its token carries exactly those scopes.
    settings = local_stack.settings
    with httpx.Client(verify=ssl.create_default_context(cafile=settings["LOCAL_STACK_CA_BUNDLE"])) as http:
        token = http.post(f"https://{settings['AUTH0_DOMAIN']}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": settings["AUTH0_CLIENT_ID"],
            "client_secret": settings["AUTH0_CLIENT_SECRET"],
            "audience": f"https://{settings['AUTH0_DOMAIN']}/api/v2/"}).json()
    assert sorted(token["scope"].split()) == sorted(APP_MANAGEMENT_SCOPES)


def test_apply_creates_a_missing_api(admin_env, local_stack):
    settings = local_stack.settings
    with httpx.Client(verify=ssl.create_default_context(cafile=settings["LOCAL_STACK_CA_BUNDLE"])) as http:
        cid, secret = local_stack.admin_credentials
        token = http.post(f"{local_stack.auth0.url}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": cid, "client_secret": secret,
            "audience": local_stack.auth0.management_audience}).json()["access_token"]
        gone = http.delete(f"{local_stack.auth0.url}/api/v2/resource-servers/{api_record(local_stack)['id']}",
                           headers={"Authorization": f"Bearer {token}"})
        assert gone.status_code == 204
    code, out, err = tenant("apply", "--yes")
    assert code == 0, err
    assert "+ API https://api.contoso.local/" in out
    assert [s["value"] for s in api_record(local_stack)["scopes"]] == ["read:data", "write:data"]


def test_a_profile_scope_the_api_does_not_define_stops_the_command(admin_env, local_stack, tmp_path):
    api_file = tmp_path / "api.toml"
    api_file.write_text('identifier = "${API_AUDIENCE}"\nname = "Customer API"\n[scopes]\n"read:data" = "Read"\n')
    before = local_stack.control("auth0").state()
    code, _, err = tenant("apply", "--yes", "--api-file", str(api_file))
    assert code == 1
    assert "scope write:data is granted by oem, partner-web/premium" in err
    assert local_stack.control("auth0").state() == before


def test_without_an_admin_credential_it_says_what_is_needed(stack_env, monkeypatch):
    for name in ("AUTH0_ADMIN_TOKEN", "AUTH0_ADMIN_CLIENT_ID", "AUTH0_ADMIN_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = tenant("plan")
    assert code == 1 and "AUTH0_ADMIN_TOKEN" in err


def test_apply_without_a_terminal_asks_for_yes_and_changes_nothing(admin_env, local_stack):
    before = local_stack.control("auth0").state()
    code, _, err = tenant("apply", "--prune")
    assert code == 2 and "without confirmation: stdin is not a terminal" in err and "opstool tenant plan" in err
    assert local_stack.control("auth0").state() == before
