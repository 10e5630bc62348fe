"""Hardware look-ups before creates are shared: one request per API key and model per minute."""

from __future__ import annotations

import asyncio

import pytest

from together_operator.hardware import HardwareCatalogue
from together_operator.together import TransientError

from .fakes import FakeTogether


def hardware_calls(api: FakeTogether) -> int:
    return sum(entry.startswith("GET /hardware") for entry in api.log)


async def test_a_burst_of_creates_shares_one_request_until_it_expires() -> None:
    now = [0.0]
    catalogue = HardwareCatalogue(ttl_seconds=60, clock=lambda: now[0])
    api = FakeTogether()

    await asyncio.gather(*(catalogue.offered("key-a", api, "m") for _ in range(100)))
    assert hardware_calls(api) == 1

    await catalogue.offered("key-b", api, "m")  # another account may be offered other hardware
    await catalogue.offered("key-a", api, "other-model")
    assert hardware_calls(api) == 3

    now[0] = 61.0
    await catalogue.offered("key-a", api, "m")
    assert hardware_calls(api) == 4


async def test_a_failed_look_up_is_not_kept() -> None:
    catalogue = HardwareCatalogue(ttl_seconds=60, clock=lambda: 0.0)
    api = FakeTogether()
    api.fail("GET /hardware?model=m", TransientError("boom", method="GET", path="hardware"))

    with pytest.raises(TransientError):
        await catalogue.offered("key-a", api, "m")
    await catalogue.offered("key-a", api, "m")

    assert hardware_calls(api) == 2


async def test_expired_look_ups_are_forgotten() -> None:
    now = [0.0]
    catalogue = HardwareCatalogue(ttl_seconds=60, clock=lambda: now[0])
    api = FakeTogether()
    for model in ("m1", "m2", "m3"):
        await catalogue.offered("key-a", api, model)

    now[0] = 61.0
    await catalogue.offered("key-a", api, "m1")

    assert len(catalogue) == 1
