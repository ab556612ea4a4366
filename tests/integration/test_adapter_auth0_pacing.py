"""Pacing against the Auth0 stand-in's tenant-wide token bucket: the static cap (AUTH0_RATE_LIMIT) and the pacing on
the tenant's rate-limit headers (RATE_LIMIT_HEADER_PACING), with which several clients share one limit."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.adapters.auth0_identity import Auth0IdentityProvider
from shared.domain.errors import TransientError

pytestmark = pytest.mark.timeout(60)


def test_paced_calls_from_several_threads_stay_within_the_tenants_limit(settings, auth0_ctl):
    auth0_ctl.config(rate=5.0, burst=3)  # a new, full bucket on the server: 3 at once, then 5/s
    # The rate of the tenant, a smaller burst (the default, one second's worth, would be 5 > 3 here): the margin
    # absorbs requests that reach Auth0 later than their slot (a TLS handshake) while its bucket is full.
    paced = Auth0IdentityProvider.from_settings(
        settings.model_copy(update=dict(auth0_rate_limit=5.0, auth0_rate_limit_burst=2,
                                        rate_limit_header_pacing=False)))
    before = auth0_ctl.calls()["calls"]
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(4) as pool:  # 12 lookups + the token request, from 4 workers at once
            found = list(pool.map(lambda i: paced.get_application(f"no-such-client-{i}"), range(12)))
    finally:
        paced.close()
    elapsed = time.monotonic() - started
    after = auth0_ctl.calls()["calls"]
    assert found == [None] * 12  # every call answered (a 429 would have raised TransientError)
    # At most one refused and repeated in the call: the first requests open their connections while their slots
    # pass, then reach the tenant together, and a bucket of 3 cannot bank what it refilled while full (a call of
    # ours reaching it late: the adapter holds until the reset and tries once more, see _hold_after_429).
    assert 12 <= after.get("clients.get", 0) - before.get("clients.get", 0) <= 13
    assert after.get("oauth.token", 0) - before.get("oauth.token", 0) == 1  # one token for all the workers
    # 13 requests = 2 from the burst + 11 at 5/s: about 2.2 s, neither much faster (429s) nor much slower.
    assert 2.0 <= elapsed <= 4.5
    assert paced.throttle.waits >= 11


def test_unpaced_calls_meet_the_limit(settings, auth0_ctl):
    """The same load without pacing: the server refuses some of it (what pacing is for)."""
    auth0_ctl.config(rate=5.0, burst=3)
    unpaced = Auth0IdentityProvider.from_settings(settings.model_copy(update=dict(rate_limit_header_pacing=False)))
    errors = []

    def lookup(i):
        try:
            unpaced.get_application(f"no-such-client-{i}")
        except TransientError as exc:
            errors.append(exc.status)

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lookup, range(12)))
    finally:
        unpaced.close()
    assert errors and set(errors) == {429}


def test_a_paced_call_refused_by_a_shared_bucket_waits_for_the_reset_and_goes_through(settings, auth0_ctl, caplog):
    """Another client of the tenant emptied the bucket: the paced adapter's own bucket is full, its first calls meet
    429s, and it holds until Auth0's reset instead of failing the event."""
    auth0_ctl.config(rate=5.0, burst=3)
    other = Auth0IdentityProvider.from_settings(settings.model_copy(update=dict(rate_limit_header_pacing=False)))
    paced = Auth0IdentityProvider.from_settings(
        settings.model_copy(update=dict(auth0_rate_limit=5.0, auth0_rate_limit_burst=3,
                                        rate_limit_header_pacing=False)))
    try:
        paced.token()  # its token first (one of the 3), then the other client takes what is left
        with pytest.raises(TransientError):
            for i in range(5):
                other.get_application(f"other-{i}")
        before = auth0_ctl.calls()["calls"].get("clients.get", 0)
        assert [paced.get_application(f"mine-{i}") for i in range(3)] == [None, None, None]
        after = auth0_ctl.calls()["calls"].get("clients.get", 0)
    finally:
        other.close(), paced.close()
    assert after - before > 3  # some were refused, then repeated after the reset
    assert any("429 from Auth0 although paced" in r.getMessage() for r in caplog.records)


def test_clients_pacing_on_the_headers_share_the_tenants_limit(settings, auth0_ctl):
    """Three clients (three instances of the app), no static cap, each with three threads: they read the same
    tenant-wide headers and together stay within the limit, each call answered without a 429 reaching the caller."""
    auth0_ctl.config(rate=10.0, burst=10)
    clients = [Auth0IdentityProvider.from_settings(settings) for _ in range(3)]
    before = auth0_ctl.calls()
    try:
        for c in clients:
            c.token()
        with ThreadPoolExecutor(9) as pool:
            found = list(pool.map(lambda i: clients[i % 3].get_application(f"no-such-{i}"), range(45)))
    finally:
        for c in clients:
            c.close()
    after = auth0_ctl.calls()
    assert found == [None] * 45
    refused = after["injected"].get("clients.get:429", 0)  # the stand-in counts only injected faults here
    gets = after["calls"].get("clients.get", 0) - before["calls"].get("clients.get", 0)
    assert refused == 0
    assert gets <= 45 + 3  # at most a handful refused by the bucket and repeated after the reset
    assert any(c.governor.waits for c in clients)
