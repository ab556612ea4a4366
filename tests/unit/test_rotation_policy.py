"""The profile option max_secret_age_days and the pure function the reconciliation timer calls."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.domain.profiles import ProfileConfigError, parse_profiles
from shared.domain.records import PROVISIONED, ROTATING, CustomerRecord
from shared.domain.rotation_policy import rotation_request_id, secrets_due_for_rotation
from tests.unit.world import make_profiles

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
BASE = """
[profiles.p]
app_type = "non_interactive"
grant_types = ["client_credentials"]
token_endpoint_auth_method = "client_secret_post"
first_party = false
audience = "https://api.example/"
scopes = ["read:data"]
apim_product = "oem"
"""


def _rec(cid: str, profile: str, days_old: float | None, status: str = PROVISIONED) -> CustomerRecord:
    issued = None if days_old is None else NOW - dt.timedelta(days=days_old)
    return CustomerRecord(customer_id=cid, status=status, profile=profile, auth0_client_id=f"tpc_{cid}",
                          secret_issued_at=issued)


@pytest.mark.parametrize("value,words", [(0, "1-3650"), (3651, "1-3650"), ("90", "whole number"), (True, "whole"),
                                         (1.5, "whole number")])
def test_max_secret_age_days_is_validated(value, words):
    with pytest.raises(ProfileConfigError, match=words):
        parse_profiles(BASE + f"max_secret_age_days = {value!r}".replace("'", '"').replace("True", "true"), {})


def test_a_public_profile_cannot_have_a_maximum_age():
    spa = BASE.replace('"non_interactive"', '"spa"').replace('["client_credentials"]', '["authorization_code"]') \
        .replace('"client_secret_post"', '"none"')
    with pytest.raises(ProfileConfigError, match="public client"):
        parse_profiles(spa + "max_secret_age_days = 30", {})
    assert parse_profiles(BASE + "max_secret_age_days = 30", {})["p"].max_secret_age_days == 30


def test_due_are_the_old_enough_provisioned_confidential_ones_oldest_first():
    profiles = make_profiles()
    assert profiles["oem"].max_secret_age_days == 90 and profiles["partner-web"].max_secret_age_days is None
    records = [_rec("young", "oem", 10), _rec("old", "oem", 120), _rec("older", "oem", 400),
               _rec("exact", "oem", 90), _rec("unknown", "oem", None), _rec("web", "partner-web", 1000),
               _rec("spa", "partner-spa", 1000), _rec("busy", "oem", 500, status=ROTATING)]
    due = secrets_due_for_rotation(records, profiles, NOW)
    assert [d.customer_id for d in due] == ["unknown", "older", "old", "exact"]
    assert due[1].age_days == 400 and due[1].max_age_days == 90


def test_the_request_id_is_stable_per_secret_generation():
    t = NOW - dt.timedelta(days=100)
    assert rotation_request_id("acme", t) == rotation_request_id("acme", t)
    assert rotation_request_id("acme", t) != rotation_request_id("acme", NOW)
    assert rotation_request_id("acme", t) != rotation_request_id("acmf", t)
    assert len(rotation_request_id("acme", None)) <= 128
