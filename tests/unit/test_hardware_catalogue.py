"""Hardware look-ups before creates are shared: one request per API key and model per minute."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.test_poller import FakeAccount
from together_operator.hardware import HardwareCatalogue
from together_operator.together import HardwareWithStatus, TransientError


class CountingHardware(FakeAccount):
    def __init__(self) -> None:
        super().__init__()
        self.hardware_calls = 0
        self.fail_next = False

    async def list_hardware(self, model: str | None = None) -> list[HardwareWithStatus]:
        self.hardware_calls += 1
        await asyncio.sleep(0)
        if self.fail_next:
            self.fail_next = False
            raise TransientError("boom", method="GET", path="hardware")
        return []


async def test_a_burst_of_creates_shares_one_request_until_it_expires() -> None:
    now = [0.0]
    catalogue = HardwareCatalogue(ttl_seconds=60, clock=lambda: now[0])
    api = CountingHardware()

    await asyncio.gather(*(catalogue.offered("key-a", api, "m") for _ in range(100)))
    assert api.hardware_calls == 1

    await catalogue.offered("key-b", api, "m")  # another account may be offered other hardware
    await catalogue.offered("key-a", api, "other-model")
    assert api.hardware_calls == 3

    now[0] = 61.0
    await catalogue.offered("key-a", api, "m")
    assert api.hardware_calls == 4


async def test_a_failed_look_up_is_not_kept() -> None:
    catalogue = HardwareCatalogue(ttl_seconds=60, clock=lambda: 0.0)
    api = CountingHardware()
    api.fail_next = True

    with pytest.raises(TransientError):
        await catalogue.offered("key-a", api, "m")
    await catalogue.offered("key-a", api, "m")

    assert api.hardware_calls == 2
