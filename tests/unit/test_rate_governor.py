"""RateGovernor with a fake clock: pacing on a shared bucket's headers, holds after a 429, the wait cap."""
from __future__ import annotations

import pytest

from shared.adapters.rate_governor import RateGovernor
from shared.domain.errors import TransientError


class FakeTime:
    def __init__(self, start: float = 1_000_000.0):
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def governor(**kw):
    t = FakeTime()
    kw.setdefault("jitter", 0.0)
    return RateGovernor("test", clock=t.clock, sleep=t.sleep, random=lambda: 0.5, **kw), t


def test_nothing_seen_one_probe_goes_out_and_the_others_wait_for_its_answer():
    g, t = governor()
    assert g.turn() == 0.0
    assert g.turn() == pytest.approx(g.recheck)  # the probe's answer not seen yet
    g.observe(remaining=50, limit=50, reset=t.now)
    assert g.turn() == 0.0


def test_answers_without_headers_leave_calls_unpaced():
    g, t = governor()
    g.turn()
    g.observe(remaining=None)
    assert [g.turn() for _ in range(3)] == [0.0] * 3


def test_a_probe_without_an_answer_is_given_up():
    g, t = governor()
    g.turn()
    t.now += 1.5  # its call failed before any answer
    assert g.turn() == 0.0


def test_a_full_bucket_lets_calls_through_at_once():
    g, t = governor()
    g.observe(remaining=50, limit=50, reset=t.now)  # full: nothing to refill
    assert g.spacing() == 0.0
    assert g.acquire() == 0.0 and g.acquire() == 0.0


def test_the_remaining_budget_is_spread_over_the_time_to_reset():
    g, t = governor(reserve_fraction=0.2, unseen_weight=0)
    g.observe(remaining=12, limit=20, reset=t.now + 4.0)  # reserve 4: 8 calls above it for 4 s
    assert g.spacing() == pytest.approx(0.5)
    g.acquire()
    # the second call waits its spacing (which shrinks a little while it waits: the reset comes closer)
    assert 0.4 < g.acquire() <= 0.5


def test_slows_down_as_remaining_falls():
    g, t = governor(reserve_fraction=0.2)
    spacings = []
    for remaining in (18, 12, 9, 7):
        g.observe(remaining=remaining, limit=20, reset=t.now + (20 - remaining) / 10.0)
        spacings.append(g.spacing())
    assert spacings == sorted(spacings) and spacings[0] < spacings[-1]


def test_at_the_reserve_waits_for_a_token_at_the_learnt_refill_rate():
    g, t = governor(reserve_fraction=0.2)
    g.observe(remaining=4, limit=20, reset=t.now + 1.6)  # 16 missing over 1.6 s: 10/s; reserve 4
    assert g.spacing() == pytest.approx(0.1)
    g.observe(remaining=0, limit=20, reset=t.now + 0.1)  # empty: the reset is the next token's, not a rate
    assert g.spacing() == pytest.approx(0.5)  # 5 tokens to the first above the reserve, at the learnt 10/s


def test_a_documented_rate_without_reset_header():
    """ARM: only the remaining count is sent; the bucket size and refill rate are documented."""
    g, t = governor(limit=200, rate=10.0, reserve_fraction=0.2)
    g.observe(remaining=200)
    assert g.spacing() == 0.0
    g.observe(remaining=100)  # 100 missing: 10 s to refill; 60 above the reserve of 40
    assert g.spacing() == pytest.approx(10 / 60)
    g.observe(remaining=30)
    assert g.spacing() == pytest.approx(11 / 10.0)


def test_auth0_headers():
    g, t = governor(reserve_fraction=0.2)
    g.observe_auth0({"x-ratelimit-limit": "10", "x-ratelimit-remaining": "6", "x-ratelimit-reset": str(t.now + 2)})
    assert g.spacing() == pytest.approx(1.5 / 4)  # the reset is rounded up to a second: full 1.5 s from now, at best
    g.observe_auth0({"x-ratelimit-remaining": "junk"})  # ignored
    assert g.spacing() == pytest.approx(1.5 / 4)


def test_calls_sent_since_the_last_answer_count_as_taken():
    g, t = governor(reserve_fraction=0.2, unseen_weight=2)
    g.observe(remaining=12, limit=20, reset=t.now + 4.0)
    before = g.spacing()
    assert g.turn() == 0.0
    assert g.spacing() > before  # 12 - 2 x 1 left, and 0.2 s more to refill (learnt 2/s)
    g.observe(remaining=11, limit=20, reset=t.now + 4.5)
    assert g.spacing() == pytest.approx(4.5 / 7)


def test_calls_of_one_process_are_spaced_from_the_last_one():
    g, t = governor(reserve_fraction=0.2, unseen_weight=0)
    g.observe(remaining=12, limit=20, reset=t.now + 4.0)
    assert g.acquire() == 0.0
    t.now += 0.2
    assert 0.2 < g.acquire() <= 0.3  # about 0.5 s after the previous call


def test_hold_after_a_429_delays_every_caller_until_the_reset():
    g, t = governor()
    g.observe(remaining=50, limit=50, reset=t.now)
    g.hold(1.5)
    assert g.acquire() == pytest.approx(1.5)
    assert g.holds == 1


def test_jitter_spreads_the_hold():
    t = FakeTime()
    g = RateGovernor("test", jitter=0.4, clock=t.clock, sleep=t.sleep, random=lambda: 1.0)
    g.observe(remaining=50, limit=50, reset=t.now)
    g.hold(1.0)
    assert g.acquire() == pytest.approx(1.4)


def test_a_wait_beyond_max_wait_is_left_to_the_pipeline():
    g, t = governor(max_wait=5.0)
    g.hold(60)
    with pytest.raises(TransientError) as info:
        g.acquire("create_application")
    assert info.value.retry_after == pytest.approx(60)
    assert t.slept == []


def test_n_instances_settle_at_the_refill_rate_without_emptying_the_bucket():
    """An event simulation: N processes of 4 threads each, calls taking 0.3 s, share one bucket (20, 10/s) through
    its headers only. Whatever N, together they run at the refill rate; no 429 once the first burst is over."""
    import heapq
    import math

    for n in (1, 2, 4):
        now = [0.0]
        bucket = {"tokens": 20.0, "stamp": 0.0}

        def take(t):
            bucket["tokens"] = min(20.0, bucket["tokens"] + (t - bucket["stamp"]) * 10.0)
            bucket["stamp"] = t
            ok = bucket["tokens"] >= 1
            if ok:
                bucket["tokens"] -= 1
            return ok, bucket["tokens"], t + ((20.0 - bucket["tokens"]) if ok else 1 - bucket["tokens"]) / 10.0

        govs = [RateGovernor(f"g{i}", jitter=0.0, clock=lambda: now[0]) for i in range(n)]
        queue = [(0.0, k, i, "turn", None) for i in range(n) for k in range(4)]
        heapq.heapify(queue)
        sent = refused_late = 0
        while queue:
            t, k, i, phase, data = heapq.heappop(queue)
            if t > 60.0:
                break
            now[0] = t
            if phase == "turn":
                wait = govs[i].turn()
                heapq.heappush(queue, (t + min(wait, 0.05), k, i, "turn", None) if wait > 0 else (t, k, i, "send", None))
            elif phase == "send":
                heapq.heappush(queue, (t + 0.3, k, i, "answer", take(t + 0.15)))
            else:
                ok, remaining, reset = data
                sent += ok
                if not ok:
                    refused_late += t > 5.0
                    govs[i].hold(math.ceil(reset) - t)
                govs[i].observe(remaining=math.floor(remaining), limit=20.0, reset=math.ceil(reset))
                heapq.heappush(queue, (t, k, i, "turn", None))
        assert refused_late == 0, n
        assert sent / 60.0 == pytest.approx(min(10.0, n * 4 / 0.3), rel=0.1), n


def auth0_answer(g, remaining: int, reset: float, limit: int = 50) -> None:
    g.observe_auth0({"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining),
                     "x-ratelimit-reset": str(int(reset))})


def test_a_reset_in_whole_seconds_does_not_teach_a_rate_its_rounding_made_up():
    # Auth0's reset is UNIX seconds, rounded up: 2 tokens missing at 50/s refill in 0.04 s, and the header says the
    # next whole second. Taken at its word that is 2 tokens in up to a second, a rate of 2/s; the first call after a
    # 429 would then wait (1 + reserve 20) / 2 = 10 s for a bucket that refills 50 a second.
    g, t = governor(max_wait=30.0)
    t.now = 1_000_000.05
    auth0_answer(g, 30, 1_000_001)  # 20 missing, full at most 0.95 s from now: at least 21/s
    for _ in range(5):
        auth0_answer(g, 48, 1_000_001)  # 2 missing: at least 2.1/s, which says little
    g.hold(0.0)  # a refusal: the bucket is taken as empty, and the next call waits on the refill rate
    assert g.spacing() == pytest.approx(21 / (20 / 0.95 * 0.995 ** 5))  # ~1 s, not the 10 s of a 2/s rate


def test_a_learnt_rate_fades_when_the_answers_no_longer_bear_it_out():
    g, t = governor()
    t.now = 1_000_000.5
    auth0_answer(g, 30, 1_000_001)  # at least 40/s
    high = g._learned
    for _ in range(200):
        auth0_answer(g, 40, t.now + 5)  # 10 missing over up to 5 s: 2/s
    assert 2.0 <= g._learned < high / 2
