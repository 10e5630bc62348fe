"""The process-wide rate limiter spaces Together calls instead of letting them fail with 429."""

from __future__ import annotations

import asyncio

from together_operator.together.ratelimit import RateLimiter


class FrozenTime:
    """A clock that stands still at 100.0 and records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return 100.0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


async def test_a_burst_is_spaced_at_the_configured_rate() -> None:
    time = FrozenTime()
    limiter = RateLimiter(calls_per_second=2, clock=time.clock, sleep=time.sleep)

    await asyncio.gather(*(limiter.acquire() for _ in range(4)))

    assert time.sleeps == [0.5, 1.0, 1.5]  # the first call goes at once
    assert limiter.waited_seconds == 3.0


async def test_zero_means_unlimited() -> None:
    time = FrozenTime()
    limiter = RateLimiter(calls_per_second=0, clock=time.clock, sleep=time.sleep)

    for _ in range(10):
        await limiter.acquire()

    assert time.sleeps == []


async def test_calls_in_flight_are_capped() -> None:
    limiter = RateLimiter(calls_per_second=0, max_concurrent=2)
    in_flight = 0
    peak = 0
    release = asyncio.Event()

    async def call() -> None:
        nonlocal in_flight, peak
        async with limiter.slot():
            in_flight += 1
            peak = max(peak, in_flight)
            await release.wait()
            in_flight -= 1

    calls = [asyncio.create_task(call()) for _ in range(5)]
    for _ in range(10):  # let every task run as far as it can
        await asyncio.sleep(0)
    assert in_flight == 2
    release.set()
    await asyncio.gather(*calls)

    assert peak == 2
