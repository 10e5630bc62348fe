"""One pooled Together client per API key, shared by every resource using it."""

from __future__ import annotations

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
    ) -> None:
        self._base_url = base_url
        self._rate_limiter = rate_limiter
        self._transport = transport
        self._clients: dict[str, TogetherClient] = {}

    def for_key(self, key: ApiKey) -> EndpointsAPI:
        """The client of `key`; ValueError if the key cannot be sent as a header (the message omits it)."""
        client = self._clients.get(key.fingerprint)
        if client is None:
            client = self._clients[key.fingerprint] = TogetherClient(
                self._base_url, key.value, rate_limiter=self._rate_limiter, transport=self._transport()
            )
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
