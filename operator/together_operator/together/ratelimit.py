"""Process-wide limits on Together API calls: every client of the operator draws from one budget of
calls per second and one cap on calls in flight."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable


class RateLimiter:
    """Spaces calls at least `1 / calls_per_second` apart, in arrival order; `calls_per_second` <= 0
    means unlimited. Waiting here rather than failing keeps bursts (thousands of resources at start)
    under the account's limit instead of turning them into 429s."""

    def __init__(
        self,
        calls_per_second: float,
        *,
        max_concurrent: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = 1.0 / calls_per_second if calls_per_second > 0 else 0.0
        self._in_flight = asyncio.Semaphore(max_concurrent) if max_concurrent > 0 else None
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._lock = asyncio.Lock()
        self.waited_seconds = 0.0
        """Total time calls spent waiting for a slot."""

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the `max_concurrent` call slots (0: no cap) for a call, after its turn came."""
        if self._in_flight is None:
            await self.acquire()
            yield
            return
        async with self._in_flight:
            await self.acquire()
            yield

    async def acquire(self) -> None:
        """Wait for this call's turn under the calls-per-second limit."""
        if not self._interval:
            return
        async with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        if slot > now:
            self.waited_seconds += slot - now
            await self._sleep(slot - now)
