"""The shared poller: one list per credential per cycle, and only changed resources are woken."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from together_operator.poller import Poller, PollIntervals
from together_operator.together.models import (
    CreateEndpointRequest,
    DedicatedEndpoint,
    HardwareWithStatus,
    ListEndpoint,
    UpdateEndpointRequest,
)

SLOW = PollIntervals(steady=3600, transition=3600)  # cycles happen only when a test asks for one


def item(endpoint_id: str, state: str = "STARTED") -> ListEndpoint:
    return ListEndpoint(
        object="endpoint",
        id=endpoint_id,
        name=f"devuser/m-{endpoint_id}",
        model="m",
        type="dedicated",
        owner="devuser",
        state=state,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


class FakeAccount:
    """The list side of the Together API: answers with `items`, counts the lists."""

    def __init__(self, *items: ListEndpoint) -> None:
        self.items = list(items)
        self.lists = 0
        self.listed = asyncio.Event()

    async def list_endpoints(
        self, *, type: str | None = "dedicated", usage_type: str | None = None, mine: bool | None = True
    ) -> list[ListEndpoint]:
        assert (type, mine) == ("dedicated", True)
        self.lists += 1
        self.listed.set()
        return list(self.items)

    async def get_endpoint(self, endpoint_id: str) -> DedicatedEndpoint:
        raise AssertionError("the poller never reads single endpoints")

    async def create_endpoint(self, request: CreateEndpointRequest) -> DedicatedEndpoint:
        raise AssertionError("the poller never writes")

    async def update_endpoint(self, endpoint_id: str, request: UpdateEndpointRequest) -> DedicatedEndpoint:
        raise AssertionError("the poller never writes")

    async def delete_endpoint(self, endpoint_id: str) -> None:
        raise AssertionError("the poller never writes")

    async def list_hardware(self, model: str | None = None) -> list[HardwareWithStatus]:
        raise AssertionError("not used")

    async def list_availability_zones(self) -> list[str]:
        raise AssertionError("not used")

    async def next_cycle(self, poller: Poller, credential: str) -> None:
        self.listed.clear()
        poller.poll_soon(credential)
        await asyncio.wait_for(self.listed.wait(), timeout=5)
        await asyncio.sleep(0)  # let the cycle publish what it listed


async def test_many_resources_of_one_credential_cost_one_list_per_cycle() -> None:
    account = FakeAccount(*(item(f"endpoint-{n}") for n in range(50)))
    poller = Poller(SLOW)
    woken: list[str] = []

    def waker(uid: str) -> Callable[[], None]:
        return lambda: woken.append(uid)

    for n in range(50):
        poller.watch("key-a", account, f"endpoint-{n}", f"uid-{n}", waker(f"uid-{n}"))
    try:
        await asyncio.wait_for(account.listed.wait(), timeout=5)
        await asyncio.sleep(0)
        assert account.lists == 1
        assert len(woken) == 50  # the first list tells every resource where it stands

        await account.next_cycle(poller, "key-a")
        assert account.lists == 2
        assert poller.listed("key-a", "endpoint-7") == item("endpoint-7")
    finally:
        await poller.close()


async def test_only_resources_whose_endpoint_changed_are_woken() -> None:
    account = FakeAccount(item("endpoint-a"), item("endpoint-b"))
    poller = Poller(SLOW)
    woken: list[str] = []
    poller.watch("key-a", account, "endpoint-a", "uid-a", lambda: woken.append("a"))
    poller.watch("key-a", account, "endpoint-b", "uid-b", lambda: woken.append("b"))
    try:
        await asyncio.wait_for(account.listed.wait(), timeout=5)
        await asyncio.sleep(0)
        woken.clear()

        account.items = [item("endpoint-a", state="STOPPING"), item("endpoint-b")]
        await account.next_cycle(poller, "key-a")
        assert woken == ["a"]

        account.items = [item("endpoint-a", state="STOPPING")]  # b deleted out of band
        await account.next_cycle(poller, "key-a")
        assert woken == ["a", "b"]
        assert poller.listed("key-a", "endpoint-b") is None
    finally:
        await poller.close()


async def test_each_credential_is_listed_separately_and_stops_when_unwatched() -> None:
    first, second = FakeAccount(item("endpoint-a")), FakeAccount(item("endpoint-b"))
    poller = Poller(SLOW)
    poller.watch("key-a", first, "endpoint-a", "uid-a", lambda: None)
    poller.watch("key-b", second, "endpoint-b", "uid-b", lambda: None)
    try:
        await asyncio.wait_for(asyncio.gather(first.listed.wait(), second.listed.wait()), timeout=5)
        await asyncio.sleep(0)  # let both cycles publish what they listed
        assert poller.listed("key-a", "endpoint-a") == item("endpoint-a")
        assert poller.listed("key-a", "endpoint-b") is None  # accounts see only their own endpoints

        poller.unwatch("uid-a")
        assert poller.listed("key-a", "endpoint-a") is None  # nothing watched: the account is dropped
        assert poller.listed("key-b", "endpoint-b") == item("endpoint-b")
    finally:
        await poller.close()
