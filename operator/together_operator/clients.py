"""One pooled Together client per API key, shared by every resource using it; a client nobody has used
for a while (a rotated key, a deleted resource) is closed and forgotten."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from together_operator.credentials import ApiKey
from together_operator.together import EndpointsAPI, RateLimiter, TogetherClient


class TogetherClients:
    def __init__(
        self,
        base_url: str,
        rate_limiter: RateLimiter,
        transport: Callable[[], httpx.AsyncBaseTransport] = httpx.AsyncHTTPTransport,
        idle_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url
        self._rate_limiter = rate_limiter
        self._transport = transport
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._clients: dict[str, tuple[TogetherClient, float]] = {}
        """fingerprint -> (client, when last handed out)"""
        self._closing: set[asyncio.Task[None]] = set()

    def for_key(self, key: ApiKey) -> EndpointsAPI:
        """The client of `key`; ValueError if the key cannot be sent as a header (the message omits it)."""
        now = self._clock()
        self._retire_idle(now, keep=key.fingerprint)
        entry = self._clients.get(key.fingerprint)
        client = (
            entry[0]
            if entry is not None
            else TogetherClient(
                self._base_url, key.value, rate_limiter=self._rate_limiter, transport=self._transport()
            )
        )
        self._clients[key.fingerprint] = (client, now)
        return client

    def __len__(self) -> int:
        return len(self._clients)

    def _retire_idle(self, now: float, keep: str) -> None:
        for fingerprint, (client, used) in list(self._clients.items()):
            if fingerprint != keep and now - used >= self._idle_seconds:
                del self._clients[fingerprint]
                closing = asyncio.get_running_loop().create_task(client.aclose())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for client, _ in self._clients.values():
            await client.aclose()
        self._clients.clear()
        await asyncio.gather(*self._closing)
