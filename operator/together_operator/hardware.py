"""The hardware offered per model, shared by every resource of one API key for a short while.

A burst of new TogetherEndpoints for one model would otherwise send one `GET /hardware?model=` each
before their creates, all queued ahead of the first POST under the rate limit. One look per key and
model per minute is fresh enough: the catalogue changes on the scale of days.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from together_operator.together import EndpointsAPI, HardwareWithStatus


class HardwareCatalogue:
    def __init__(self, ttl_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, asyncio.Task[list[HardwareWithStatus]]]] = {}

    async def offered(self, credential: str, api: EndpointsAPI, model: str) -> list[HardwareWithStatus]:
        """The hardware offered for `model`; concurrent callers share one request, failures are not kept."""
        key = (credential, model)
        now = self._clock()
        # Expired look-ups are forgotten, so models and keys no longer used take no memory.
        self._entries = {k: e for k, e in self._entries.items() if now - e[0] < self._ttl or not e[1].done()}
        entry = self._entries.get(key)
        if entry is None or now - entry[0] >= self._ttl or (entry[1].done() and entry[1].exception()):
            entry = (now, asyncio.ensure_future(api.list_hardware(model)))
            self._entries[key] = entry
        return list(await asyncio.shield(entry[1]))

    def __len__(self) -> int:
        """How many look-ups are kept."""
        return len(self._entries)
