"""The Auth0 tenant configuration as code: the repository's API definition covers every scope the profiles grant
and the gateway policies require, and the plan's diffs (create, update, nothing) are what apply will send."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.domain.profiles import load_profiles, parse_profiles
from shared.domain.tenant import (APP_MANAGEMENT_SCOPES, ApiSpec, CurrentApi, CurrentGrant, TenantConfigError,
                                  load_api_spec, plan_api, plan_management_grant, undefined_scopes)

ROOT = Path(__file__).resolve().parents[2]
ENV = {"API_AUDIENCE": "https://api.contoso.local/"}


def repo_api() -> ApiSpec:
    return load_api_spec(ROOT / "config" / "auth0_api.toml", ENV)


def test_every_scope_the_profiles_grant_is_defined_by_the_api():
    profiles = load_profiles(ROOT / "config" / "client_profiles.toml", ENV)
    assert undefined_scopes(repo_api(), profiles.values()) == {}


def test_every_scope_a_gateway_policy_requires_is_defined_by_the_api():
    required = set()
    for policy in (ROOT / "infra" / "policies").glob("*.xml"):
        for claim in re.findall(r'<claim name="scope"[^>]*>(.*?)</claim>', policy.read_text(), re.S):
            required |= set(re.findall(r"<value>([^<]+)</value>", claim))
    assert required and required <= set(repo_api().scope_values)


def test_a_profile_naming_a_scope_the_api_lacks_is_found():
    text = (ROOT / "config" / "client_profiles.toml").read_text()
    text = text.replace('scopes = ["read:data"]\napim_product = "partners"',
                        'scopes = ["read:data", "delete:everything"]\napim_product = "partners"', 1)
    text = text.replace("plans = { premium", 'plans = { gold = ["export:data"], premium', 1)
    profiles = parse_profiles(text, ENV)
    assert undefined_scopes(repo_api(), profiles.values()) == {"delete:everything": ["partner-web"],
                                                               "export:data": ["partner-web/gold"]}


def test_api_file_errors_are_named(tmp_path):
    bad = tmp_path / "api.toml"
    bad.write_text('identifier = "${MISSING}"\n')
    with pytest.raises(TenantConfigError, match="MISSING is not set"):
        load_api_spec(bad, ENV)
    bad.write_text('identifier = "x"\n[scopes]\n"read data" = "no spaces"\n')
    with pytest.raises(TenantConfigError):
        load_api_spec(bad, ENV)


def test_plan_api_create_update_prune_and_nothing():
    spec = ApiSpec("https://api/", "Customer API", 86400, (("read:data", "Read"), ("write:data", "Write")))
    create = plan_api(spec, None)
    assert create.action == "create" and create.payload["scopes"][1] == {"value": "write:data", "description": "Write"}
    current = CurrentApi("rs1", "https://api/", 86400, (("read:data", "Read"), ("legacy:x", "Old")))
    update = plan_api(spec, current)
    assert update.action == "update" and "add scopes write:data" in update.detail and "keep scopes legacy:x" in update.detail
    assert [s["value"] for s in update.payload["scopes"]] == ["read:data", "write:data", "legacy:x"]
    assert update.payload["name"] == "Customer API"
    pruned = plan_api(spec, current, prune=True)
    assert [s["value"] for s in pruned.payload["scopes"]] == ["read:data", "write:data"]
    same = CurrentApi("rs1", "Customer API", 86400, spec.scopes)
    assert plan_api(spec, same).action == "none"


def test_plan_management_grant_is_exact():
    assert plan_management_grant("c", "https://t/api/v2/", None).payload["scope"] == list(APP_MANAGEMENT_SCOPES)
    wide = CurrentGrant("g1", APP_MANAGEMENT_SCOPES[1:] + ("delete:users",))
    change = plan_management_grant("c", "https://t/api/v2/", wide)
    assert change.action == "update" and "add read:clients" in change.detail and "remove delete:users" in change.detail
    assert plan_management_grant("c", "a", CurrentGrant("g1", tuple(reversed(APP_MANAGEMENT_SCOPES)))).action == "none"
