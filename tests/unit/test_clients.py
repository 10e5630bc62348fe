"""One Together client per API key, and none kept for a key nobody has used for a while (a rotated key)."""

from __future__ import annotations

from together_operator.clients import TogetherClients
from together_operator.credentials import ApiKey
from together_operator.together import RateLimiter


async def test_a_client_is_shared_per_key_and_forgotten_once_idle() -> None:
    now = [0.0]
    clients = TogetherClients(
        "https://api.example.test/v1", RateLimiter(0), idle_seconds=600, clock=lambda: now[0]
    )
    old_key, new_key = ApiKey("old-key-0123456789"), ApiKey("new-key-0123456789")
    try:
        first = clients.for_key(old_key)
        assert clients.for_key(old_key) is first

        now[0] = 601.0
        clients.for_key(new_key)  # the key was rotated: only the new one is used from now on

        assert len(clients) == 1
        assert clients.for_key(old_key) is not first
    finally:
        await clients.close()
