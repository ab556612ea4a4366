"""Derived names: stable, valid in each service, and never shared by two customer ids, in this scheme or across it
and the scheme before issue 23 (whose names the ledger still records for older customers)."""
from __future__ import annotations

import hashlib
import random
import re
import string

import pytest

from shared.domain import naming
from shared.domain.events import CUSTOMER_ID

KV_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
APIM_ID = re.compile(r"^[^*#&+:<>?]+$")
HASH_TAIL = re.compile(r"-[0-9a-f]{32}$")
NAMERS = {"secret": (naming.secret_name, naming.legacy_secret_name, 127),
          "server": (naming.authorization_server_id, naming.legacy_authorization_server_id, 80),
          "subscription": (naming.subscription_id, naming.legacy_subscription_id, 256)}
PREFIXES = {"secret": "auth0-client-", "server": "auth0-", "subscription": "customer-"}
#: two case variants of one id whose names under the scheme before issue 23 were all the same (40 bits of hash: found
#: by trying the 2**20 variants of this id, a few seconds)
LEGACY_COLLISION = ("AcMeCOrPoRATiOn-Eu-weSt", "AcmEcORPORaTiOn-eU-weSt")


def _ids() -> list[str]:
    rng = random.Random(20261126)
    alphabet = string.ascii_letters + string.digits + "._-"
    ids = {"acme", "Acme", "ACME", "a.cme", "a_cme", "a-cme", "acme.", "acme_", "acme-", "a", "0",
           "x" * 64, "X" * 64, "x" * 63 + ".", "x" * 63 + "_", "x" * 63 + "-", "order-1234567890", *LEGACY_COLLISION}
    for base in ("acme", "Acme", "a.cme", "x" * 30, "Acme.Corp"):
        # ids that look exactly like the hashed names (of either scheme) of others
        for fn in (naming.secret_name, naming.legacy_secret_name):
            name = fn(base).removeprefix("auth0-client-")
            ids.update({name, name.lstrip("-")})
        ids.add(base.lower().replace(".", "-") + "-" + hashlib.sha256(base.encode()).hexdigest()[:32])
        ids.add(base.lower().replace(".", "-") + "-" + hashlib.sha256(base.encode()).hexdigest()[:10])
    for _ in range(3000):
        n = rng.randint(1, 64)
        ids.add(rng.choice(string.ascii_letters + string.digits) + "".join(rng.choice(alphabet) for _ in range(n - 1)))
    return sorted(i for i in ids if CUSTOMER_ID.fullmatch(i))


IDS = _ids()


@pytest.mark.parametrize("kind", NAMERS)
def test_no_two_customer_ids_share_a_name_even_ignoring_case(kind):
    fn, _, _ = NAMERS[kind]
    seen: dict[str, str] = {}
    for cid in IDS:
        name = fn(cid).lower()  # Key Vault and ARM names are case-insensitive
        assert name not in seen, f"{cid!r} and {seen[name]!r} both map to {name!r}"
        seen[name] = cid


@pytest.mark.parametrize("kind", NAMERS)
def test_no_new_name_is_any_other_customers_legacy_name(kind):
    """The migration's premise: a customer recorded under an old name and a new customer can never meet."""
    fn, legacy, _ = NAMERS[kind]
    legacy_owner = {legacy(cid).lower(): cid for cid in IDS}
    for cid in IDS:
        owner = legacy_owner.get(fn(cid).lower())
        assert owner in (None, cid), f"{cid!r}'s name is {owner!r}'s legacy name"


def test_the_legacy_collision_is_gone():
    """Issue 23, case 2: the scheme before it gave these two ids every name in common (the second customer took
    over the first's secret, entry and subscription, and removing it deleted them)."""
    a, b = LEGACY_COLLISION
    for fn, legacy, _ in NAMERS.values():
        assert legacy(a) == legacy(b)
        assert fn(a).lower() != fn(b).lower()
        assert HASH_TAIL.search(fn(a)) and HASH_TAIL.search(fn(b))  # 128 bits of SHA-256 each


@pytest.mark.parametrize("kind", NAMERS)
def test_names_are_valid_and_within_length(kind):
    fn, legacy, max_len = NAMERS[kind]
    for cid in IDS:
        for name in (fn(cid), legacy(cid)):
            assert 1 <= len(name) <= max_len and KV_NAME.match(name) and APIM_ID.match(name), (cid, name)
        assert fn(cid) == fn(cid)  # stable


def test_simple_ids_are_kept_readable_and_the_same_in_both_schemes():
    assert naming.secret_name("acme") == "auth0-client-acme" == naming.legacy_secret_name("acme")
    assert naming.authorization_server_id("acme") == "auth0-acme"
    assert naming.subscription_id("acme-42") == "customer-acme-42" == naming.legacy_subscription_id("acme-42")


@pytest.mark.parametrize("a,b", [("Acme", "acme"), ("a.cme", "a-cme"), ("a_cme", "a-cme"), ("a.cme", "a_cme"),
                                 ("ACME", "Acme")])
def test_case_and_punctuation_variants_differ(a, b):
    for fn, _, _ in NAMERS.values():
        assert fn(a).lower() != fn(b).lower()


@pytest.mark.parametrize("kind", NAMERS)
def test_hashed_names_carry_a_dash_after_the_prefix_and_128_bits_of_the_id(kind):
    fn, _, _ = NAMERS[kind]
    prefix = PREFIXES[kind]
    for cid in IDS:
        name = fn(cid)
        if name == prefix + cid:
            assert not name.startswith(prefix + "-")
        else:
            assert name.startswith(prefix + "-")
            assert name.endswith("-" + hashlib.sha256(cid.encode()).hexdigest()[:32])


def test_an_id_shaped_like_a_hashed_name_is_hashed_too():
    for hashed in (naming.legacy_secret_name("Acme"), naming.secret_name("Acme")):
        lookalike = hashed.removeprefix("auth0-client-").lstrip("-")
        assert naming.secret_name(lookalike) not in (naming.secret_name("Acme"), naming.legacy_secret_name("Acme"))


def test_long_ids_are_cut_before_the_hash():
    cid = "Z" * 64
    name = naming.authorization_server_id(cid)
    assert len(name) == 80 and name.startswith("auth0--zzz")
    assert name.endswith(hashlib.sha256(cid.encode()).hexdigest()[:32])
