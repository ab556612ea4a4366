"""The client-side token bucket that paces Auth0 calls, and the two settings that turn it on."""
from __future__ import annotations

import threading

import pytest

from shared.settings import AppSettings, SettingsError
from shared.adapters.throttle import Throttle
from shared.domain.errors import TransientError
from tests.unit.test_settings import base_env


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def throttle(rate=10.0, burst=2, max_wait=30.0):
    t = FakeTime()
    return Throttle(rate, burst, max_wait=max_wait, service="auth0", clock=t.clock, sleep=t.sleep), t


def test_a_burst_passes_at_once_then_calls_are_spaced_at_the_rate():
    th, t = throttle(rate=10.0, burst=2)
    waits = [th.acquire() for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([0.1, 0.1, 0.1])
    assert t.now - 1000.0 == pytest.approx(0.3)  # 5 calls = 2 from the bucket + 3 at 10/s
    assert th.waits == 3 and th.waited_seconds == pytest.approx(0.3)


def test_an_idle_bucket_refills_up_to_its_burst_only():
    th, t = throttle(rate=10.0, burst=2)
    th.acquire(), th.acquire()
    t.now += 60  # a minute idle: two tokens back, not six hundred
    assert [th.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.1])


def test_waiting_callers_get_consecutive_slots():
    """Slots are reserved under the lock, so callers that arrive together are spread out, not released at once."""
    clock_value = [0.0]
    slept: list[float] = []
    th = Throttle(4.0, 1, clock=lambda: clock_value[0], sleep=slept.append)  # sleep does not move the clock
    for _ in range(4):
        th.acquire()
    assert slept == pytest.approx([0.25, 0.5, 0.75])


def test_a_wait_longer_than_max_wait_is_left_to_the_message_pipeline():
    clock_value = [0.0]
    th = Throttle(1.0, 1, max_wait=2.0, service="auth0", clock=lambda: clock_value[0], sleep=lambda s: None)
    assert [th.acquire(), th.acquire(), th.acquire()] == [0.0, 1.0, 2.0]  # three callers waiting together
    with pytest.raises(TransientError) as info:
        th.acquire("create_application")  # its slot would be 3 s away
    assert info.value.retry_after == pytest.approx(3.0)
    assert info.value.service == "auth0" and info.value.operation == "create_application"
    clock_value[0] = 3.0  # the refused caller took no slot: once the others are through, the next is free
    assert th.acquire() == 0.0


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (1, 0)])
def test_nonsense_limits_are_refused(rate, burst):
    with pytest.raises(ValueError):
        Throttle(rate, burst)


def test_rate_limit_settings_default_to_no_pacing():
    s = AppSettings.load(base_env())
    assert s.auth0_rate_limit == 0.0 and s.auth0_rate_limit_burst == 0


def test_rate_limit_settings_are_read():
    s = AppSettings.load(base_env(AUTH0_RATE_LIMIT="16", AUTH0_RATE_LIMIT_BURST="50"))
    assert s.auth0_rate_limit == 16.0 and s.auth0_rate_limit_burst == 50


def test_rate_limit_settings_are_validated():
    with pytest.raises(SettingsError) as info:
        AppSettings.load(base_env(AUTH0_RATE_LIMIT="fast", AUTH0_RATE_LIMIT_BURST="2.5"))
    by_name = {p.split(":")[0]: p for p in info.value.problems}
    assert set(by_name) == {"AUTH0_RATE_LIMIT", "AUTH0_RATE_LIMIT_BURST"}
    assert "requests per second" in by_name["AUTH0_RATE_LIMIT"]
    assert "whole number" in by_name["AUTH0_RATE_LIMIT_BURST"]
    with pytest.raises(SettingsError) as info:
        AppSettings.load(base_env(AUTH0_RATE_LIMIT="0", AUTH0_RATE_LIMIT_BURST="0"))
    assert len(info.value.problems) == 2


def test_the_adapter_paces_only_when_a_rate_is_set():
    from shared.adapters.auth0_identity import Auth0IdentityProvider
    off = Auth0IdentityProvider.from_settings(AppSettings.load(base_env()))
    on = Auth0IdentityProvider.from_settings(AppSettings.load(base_env(AUTH0_RATE_LIMIT="2.5")))
    try:
        assert off.throttle is None
        assert on.throttle.rate == 2.5 and on.throttle.burst == 3  # burst defaults to the rate, rounded up
    finally:
        off.close(), on.close()


def test_hold_delays_the_next_slot_until_the_servers_reset():
    th, t = throttle(rate=10.0, burst=5)
    th.hold(0.75)
    assert th.acquire() == pytest.approx(0.75)
    assert th.acquire() == pytest.approx(0.1)  # then the normal pace
    th.hold(0.0)  # a reset already past leaves at most the next slot free
    assert th.acquire() == pytest.approx(0.1)
