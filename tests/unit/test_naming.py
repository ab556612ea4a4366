"""Derived names: stable, valid in each service, and never shared by two customer ids."""
from __future__ import annotations

import random
import re
import string

import pytest

from shared.domain import naming
from shared.domain.events import CUSTOMER_ID

KV_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
APIM_ID = re.compile(r"^[^*#&+:<>?]+$")
HASH_TAIL = re.compile(r"-[0-9a-f]{10}$")
NAMERS = {"secret": (naming.secret_name, 127), "server": (naming.authorization_server_id, 80),
          "subscription": (naming.subscription_id, 256)}


def _ids() -> list[str]:
    rng = random.Random(20261126)
    alphabet = string.ascii_letters + string.digits + "._-"
    ids = {"acme", "Acme", "ACME", "a.cme", "a_cme", "a-cme", "acme.", "acme_", "acme-", "a", "0",
           "x" * 64, "X" * 64, "x" * 63 + ".", "x" * 63 + "_", "x" * 63 + "-", "order-1234567890"}
    for base in ("acme", "Acme", "a.cme", "x" * 60):
        # ids that look exactly like the hashed names of others
        ids.add(naming.secret_name(base, prefix=""))
        ids.add(base.lower().replace(".", "-") + "-" + naming._suffix(base))
    for _ in range(3000):
        n = rng.randint(1, 64)
        ids.add(rng.choice(string.ascii_letters + string.digits) + "".join(rng.choice(alphabet) for _ in range(n - 1)))
    ids = {i for i in ids if CUSTOMER_ID.match(i)}
    return sorted(ids)


IDS = _ids()


@pytest.mark.parametrize("kind", NAMERS)
def test_no_two_customer_ids_share_a_name_even_ignoring_case(kind):
    fn, _ = NAMERS[kind]
    seen: dict[str, str] = {}
    for cid in IDS:
        name = fn(cid).lower()  # Key Vault and ARM names are case-insensitive
        assert name not in seen, f"{cid!r} and {seen[name]!r} both map to {name!r}"
        seen[name] = cid


@pytest.mark.parametrize("kind", NAMERS)
def test_names_are_valid_and_within_length(kind):
    fn, max_len = NAMERS[kind]
    for cid in IDS:
        name = fn(cid)
        assert 1 <= len(name) <= max_len and KV_NAME.match(name) and APIM_ID.match(name), (cid, name)
        assert fn(cid) == name  # stable


def test_key_vault_secret_names_follow_the_key_vault_rule():
    for cid in IDS:
        assert KV_NAME.match(naming.secret_name(cid))


def test_simple_ids_are_kept_readable():
    assert naming.secret_name("acme") == "auth0-client-acme"
    assert naming.authorization_server_id("acme") == "auth0-acme"
    assert naming.subscription_id("acme-42") == "customer-acme-42"


@pytest.mark.parametrize("a,b", [("Acme", "acme"), ("a.cme", "a-cme"), ("a_cme", "a-cme"), ("a.cme", "a_cme"),
                                 ("ACME", "Acme")])
def test_case_and_punctuation_variants_differ(a, b):
    for fn, _ in NAMERS.values():
        assert fn(a).lower() != fn(b).lower()


def test_an_id_shaped_like_a_hashed_name_is_hashed_too():
    hashed = naming.secret_name("Acme")
    assert HASH_TAIL.search(hashed)
    lookalike = hashed.removeprefix("auth0-client-")
    assert naming.secret_name(lookalike) != hashed
    assert HASH_TAIL.search(naming.secret_name(lookalike))


def test_kept_names_never_end_like_hashed_ones():
    for cid in IDS:
        name = naming.secret_name(cid)
        if name == "auth0-client-" + cid:
            assert not HASH_TAIL.search(name)
        else:
            assert name.endswith("-" + naming._suffix(cid))


def test_long_ids_are_cut_before_the_hash():
    cid = "Z" * 64
    name = naming.authorization_server_id(cid)
    assert len(name) == 80 and name.startswith("auth0-zzz") and name.endswith(naming._suffix(cid))
