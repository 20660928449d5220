"""engine/ratelimit.py: burst then rate, a bounded wait, and a bucket shared by threads."""

from __future__ import annotations

import threading
import time

import pytest

from engine.cli.output import exit_code
from engine.exceptions import RateLimitTimeoutError
from engine.ratelimit import TokenBucket


class FakeTime:
    """A clock that only moves when the bucket sleeps (or the test says so).

    Rates in these tests are powers of two so that every wait is an exact binary fraction:
    with float rounding a refill can land a hair under one token, and the bucket then asks
    for a sleep smaller than the clock's resolution (harmless with a real clock, which moves
    on its own, but a fake one would stand still).
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        assert len(self.sleeps) < 10_000, "the bucket keeps asking for sleeps"
        self.sleeps.append(seconds)
        self.now += seconds


def bucket(t: FakeTime, rate: float, burst: int, timeout_s: float = 60.0) -> TokenBucket:
    return TokenBucket(rate, burst, timeout_s, clock=t.clock, sleep=t.sleep)


def test_burst_is_free_then_tokens_come_at_the_rate() -> None:
    t = FakeTime()
    b = bucket(t, rate=8, burst=5)
    for _ in range(5):
        b.acquire()
    assert t.sleeps == []
    b.acquire()
    assert t.sleeps == [0.125]
    for _ in range(10):
        b.acquire()
    assert t.sleeps == [0.125] * 11
    assert t.now == pytest.approx(11 / 8)


def test_refill_is_capped_at_burst() -> None:
    t = FakeTime()
    b = bucket(t, rate=64, burst=3)
    for _ in range(3):
        b.acquire()
    t.now += 3600  # idle for an hour
    for _ in range(3):
        b.acquire()
    assert t.sleeps == []
    b.acquire()
    assert t.sleeps == [1 / 64]


def test_partial_refill_waits_only_for_the_missing_fraction() -> None:
    t = FakeTime()
    b = bucket(t, rate=2, burst=1)
    b.acquire()
    t.now += 0.25  # half a token back
    b.acquire()
    assert t.sleeps == [0.25]


def test_wait_longer_than_timeout_raises_without_sleeping() -> None:
    t = FakeTime()
    b = bucket(t, rate=1, burst=1, timeout_s=0.5)
    b.acquire()
    with pytest.raises(RateLimitTimeoutError) as info:
        b.acquire()
    assert t.sleeps == []
    assert exit_code(info.value) == 1
    assert "0.5" in str(info.value)


def test_wait_equal_to_timeout_is_allowed() -> None:
    t = FakeTime()
    b = bucket(t, rate=1, burst=1, timeout_s=1.0)
    b.acquire()
    b.acquire()
    assert t.sleeps == [1.0]


def test_zero_timeout_succeeds_while_tokens_last() -> None:
    t = FakeTime()
    b = bucket(t, rate=1, burst=2, timeout_s=0.0)
    b.acquire()
    b.acquire()
    with pytest.raises(RateLimitTimeoutError):
        b.acquire()


def test_a_failed_acquire_does_not_consume_a_token() -> None:
    t = FakeTime()
    b = bucket(t, rate=1, burst=1, timeout_s=0.1)
    b.acquire()
    with pytest.raises(RateLimitTimeoutError):
        b.acquire()
    t.now += 1.0
    b.acquire()  # one full token has come back
    assert t.sleeps == []


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (1, -5)])
def test_invalid_parameters(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate, burst, 1.0)


def test_threads_sharing_a_bucket_never_exceed_burst_plus_rate() -> None:
    rate, burst, threads, run_s = 2000.0, 20, 8, 0.3
    counts = [0] * threads
    b = TokenBucket(rate, burst, timeout_s=5.0)
    # The run starts once every thread is up (a loaded machine may take longer than run_s to
    # start eight threads), and the bound uses the time the run really took.
    ready = threading.Barrier(threads + 1, timeout=30)
    window: list[float] = []

    def worker(i: int) -> None:
        ready.wait()
        while time.monotonic() < window[1]:
            b.acquire()
            counts[i] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for th in pool:
        th.start()
    start = time.monotonic()
    window.extend([start, start + run_s])
    ready.wait()
    for th in pool:
        th.join(timeout=30)
    elapsed = time.monotonic() - start
    total = sum(counts)
    assert not any(th.is_alive() for th in pool)
    assert total <= burst + rate * elapsed + 1e-6
    assert total > burst  # the bucket kept handing out tokens after the burst
    assert sum(1 for c in counts if c > 0) >= 2  # several threads did get tokens
