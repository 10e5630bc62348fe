"""The process-wide rate limiter spaces Together calls instead of letting them fail with 429."""

from __future__ import annotations

import asyncio

import pytest

from together_operator.together import ratelimit
from together_operator.together.ratelimit import RateLimiter


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Freeze the clock at 100.0 and record the waits instead of sleeping."""
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: 100.0)
    monkeypatch.setattr(ratelimit.asyncio, "sleep", fake_sleep)
    return recorded


async def test_a_burst_is_spaced_at_the_configured_rate(sleeps: list[float]) -> None:
    limiter = RateLimiter(calls_per_second=2)

    await asyncio.gather(*(limiter.acquire() for _ in range(4)))

    assert sleeps == [0.5, 1.0, 1.5]  # the first call goes at once
    assert limiter.waited_seconds == 3.0


async def test_zero_means_unlimited(sleeps: list[float]) -> None:
    limiter = RateLimiter(calls_per_second=0)

    for _ in range(10):
        await limiter.acquire()

    assert sleeps == []
