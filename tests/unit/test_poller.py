"""The shared poller: one list per credential per cycle, and only changed resources are woken."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from together_operator.poller import Poller, PollIntervals, ResyncBudget, poll_wait, resync_spacing
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


# --- the resync budget ----------------------------------------------------------------------------

BUDGET = ResyncBudget(calls_per_second=1.0, min_period=60.0)


class VirtualTime:
    """The resync loop's sleep on a fake clock: each sleep moves `now` on at once; at `until` the loop
    is left asleep and `done` is set."""

    def __init__(self, until: float) -> None:
        self.now = 0.0
        self.until = until
        self.done = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.now >= self.until:
            self.done.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0)


async def resync_reads(endpoints: int, seconds: float) -> dict[str, list[float]]:
    """endpoint id -> the virtual times at which its resync turn was taken (read, as the shell does)."""
    clock = VirtualTime(until=seconds)
    account = account_listing()
    poller = Poller(SLOW, resync=BUDGET, sleep=clock.sleep)
    reads: dict[str, list[float]] = {}

    def reader(endpoint_id: str) -> Callable[[], None]:
        def wake() -> None:
            if poller.resync_due("key-a", endpoint_id):
                reads.setdefault(endpoint_id, []).append(clock.now)
                poller.was_read("key-a", endpoint_id)

        return wake

    for n in range(endpoints):
        poller.watch("key-a", account, f"endpoint-{n}", f"uid-{n}", reader(f"endpoint-{n}"))
    try:
        await asyncio.wait_for(clock.done.wait(), timeout=30)
    finally:
        await poller.close()
    return reads


@pytest.mark.parametrize("endpoints", [1, 10, 100, 1000])
async def test_resync_reads_per_minute_do_not_depend_on_the_number_of_endpoints(endpoints: int) -> None:
    reads = await resync_reads(endpoints, seconds=3000)

    times = sorted(t for per_endpoint in reads.values() for t in per_endpoint)
    minute = 60 - 1e-6  # the clock sums floats: a read exactly a minute later may land a hair early
    per_minute = max(sum(1 for t in times if start <= t < start + minute) for start in times)
    assert per_minute <= BUDGET.calls_per_second * 60
    assert per_minute == min(endpoints, 60)  # the budget is used once there are enough endpoints


@pytest.mark.parametrize("endpoints", [1, 10, 100, 1000])
async def test_every_endpoint_is_read_again_within_the_bound(endpoints: int) -> None:
    bound = max(BUDGET.min_period, endpoints / BUDGET.calls_per_second)

    reads = await resync_reads(endpoints, seconds=3 * bound)

    assert len(reads) == endpoints
    for per_endpoint in reads.values():
        assert per_endpoint[0] <= bound
        gaps = [later - earlier for earlier, later in itertools.pairwise(per_endpoint)]
        assert gaps
        assert all(gap == pytest.approx(bound) for gap in gaps)


@pytest.mark.parametrize("endpoints", [10, 1000])
async def test_resync_reads_never_come_in_a_burst(endpoints: int) -> None:
    reads = await resync_reads(endpoints, seconds=2000)

    times = sorted(t for per_endpoint in reads.values() for t in per_endpoint)
    spacing = resync_spacing(BUDGET, endpoints)
    assert all(later - earlier == pytest.approx(spacing) for earlier, later in itertools.pairwise(times))


async def test_an_unwatched_endpoint_gets_no_more_turns_and_a_new_one_joins_the_round() -> None:
    account = account_listing()
    clock = VirtualTime(until=10_000)
    poller = Poller(SLOW, resync=BUDGET, sleep=clock.sleep)
    poller.watch("key-a", account, "endpoint-a", "uid-a", lambda: None)
    poller.watch("key-a", account, "endpoint-b", "uid-b", lambda: None)
    try:
        poller.unwatch("uid-a")
        poller.watch("key-a", account, "endpoint-c", "uid-c", lambda: None)
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the first (jittered) sleep and the first turns
        for _ in range(4):
            await asyncio.sleep(0)

        assert not poller.resync_due("key-a", "endpoint-a")
        assert poller.resync_due("key-a", "endpoint-b")
        assert poller.resync_due("key-a", "endpoint-c")
    finally:
        await poller.close()
