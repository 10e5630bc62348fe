"""The shared poller: one list per credential per cycle, and only changed resources are woken."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from together_operator.poller import Poller, PollIntervals, poll_wait
from together_operator.together.models import ListEndpoint

from .builders import endpoint
from .fakes import FakeTogether, list_item

SLOW = PollIntervals(steady=3600, transition=3600)  # cycles happen only when a test asks for one


def item(endpoint_id: str, state: str = "STARTED") -> ListEndpoint:
    return list_item(endpoint(id=endpoint_id, state=state))


def account_listing(*items: ListEndpoint) -> FakeTogether:
    """An account whose list shows `items`."""
    return FakeTogether(*(endpoint(id=i.id, state=i.state) for i in items))


def show(account: FakeTogether, *items: ListEndpoint) -> None:
    account.endpoints = {i.id: endpoint(id=i.id, state=i.state) for i in items}


async def next_cycle(account: FakeTogether, poller: Poller, credential: str) -> None:
    account.listed.clear()
    poller.poll_soon(credential)
    await asyncio.wait_for(account.listed.wait(), timeout=5)
    await asyncio.sleep(0)  # let the cycle publish what it listed


async def test_many_resources_of_one_credential_cost_one_list_per_cycle() -> None:
    account = account_listing(*(item(f"endpoint-{n}") for n in range(50)))
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

        await next_cycle(account, poller, "key-a")
        assert account.lists == 2
        assert poller.listed("key-a", "endpoint-7") == item("endpoint-7")
    finally:
        await poller.close()


async def test_only_resources_whose_endpoint_changed_are_woken() -> None:
    account = account_listing(item("endpoint-a"), item("endpoint-b"))
    poller = Poller(SLOW)
    woken: list[str] = []
    poller.watch("key-a", account, "endpoint-a", "uid-a", lambda: woken.append("a"))
    poller.watch("key-a", account, "endpoint-b", "uid-b", lambda: woken.append("b"))
    try:
        await asyncio.wait_for(account.listed.wait(), timeout=5)
        await asyncio.sleep(0)
        woken.clear()

        show(account, item("endpoint-a", state="STOPPING"), item("endpoint-b"))
        await next_cycle(account, poller, "key-a")
        assert woken == ["a"]

        show(account, item("endpoint-a", state="STOPPING"))  # b deleted out of band
        await next_cycle(account, poller, "key-a")
        assert woken == ["a", "b"]
        assert poller.listed("key-a", "endpoint-b") is None
    finally:
        await poller.close()


async def test_each_credential_is_listed_separately_and_stops_when_unwatched() -> None:
    first, second = account_listing(item("endpoint-a")), account_listing(item("endpoint-b"))
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


async def test_a_resource_whose_key_changed_is_dropped_from_the_old_key() -> None:
    old, new = account_listing(item("endpoint-a")), account_listing(item("endpoint-a"))
    poller = Poller(SLOW)
    poller.watch("key-a", old, "endpoint-a", "uid-a", lambda: None)
    try:
        await asyncio.wait_for(old.listed.wait(), timeout=5)
        await asyncio.sleep(0)
        assert poller.listed("key-a", "endpoint-a") == item("endpoint-a")

        poller.watch("key-b", new, "endpoint-a", "uid-a", lambda: None)

        assert poller.listed("key-a", "endpoint-a") is None  # nobody watches under key-a: not listed
    finally:
        await poller.close()


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, 30.0), (1, 60.0), (2, 120.0), (5, 600.0), (20, 600.0)],
)
def test_a_failing_list_backs_off_doubling_up_to_a_cap(failures: int, expected: float) -> None:
    intervals = PollIntervals(steady=30.0, transition=5.0, max_backoff=600.0)

    assert poll_wait(intervals, transitioning=failures > 0, failures=failures, jitter=1.0) == expected
