"""The shared poller: one `GET /endpoints?type=dedicated&mine=true` per credential per interval.

Every TogetherEndpoint registers the endpoint id it watches under its credential. The poller lists
the account's endpoints once per interval (sooner while any watched endpoint is PENDING, STARTING or
STOPPING, jittered), keeps the latest list item of each, and wakes only the resources whose item
changed or vanished. The list lacks display name, hardware and autoscaling: the shell reads a
single endpoint only when it needs those (see `core.usable_cached_read`), or when the poller grants
the endpoint its resync turn: per credential, one turn every `resync_spacing` seconds, round-robin over
the watched endpoints, so drift checks cost a fixed budget of calls per second at any N, spread
evenly, with the first turn jittered so that a burst of creates does not come back as a burst of GETs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from together_operator.together import EndpointsAPI, TogetherError
from together_operator.together.models import TRANSITIONAL_STATES, ListEndpoint

_log = logging.getLogger(__name__)

Wake = Callable[[], None]


@dataclass(frozen=True)
class PollIntervals:
    steady: float = 30.0
    transition: float = 5.0
    jitter: float = 0.1
    """Fraction of the interval by which each wait is randomly shortened or lengthened."""
    max_backoff: float = 600.0
    """Longest wait between two lists while listing fails (the steady interval doubles per failure)."""


@dataclass(frozen=True)
class ResyncBudget:
    calls_per_second: float = 1.0
    """Drift GETs per second per credential, at most."""
    min_period: float = 60.0
    """No endpoint is re-read for drift more often than this (seconds)."""


def resync_spacing(budget: ResyncBudget, watched: int) -> float:
    """Seconds between two resync turns of one credential watching `watched` endpoints: each endpoint
    gets a turn every max(min_period, watched / calls_per_second) seconds, the turns evenly spaced."""
    return max(budget.min_period / max(1, watched), 1.0 / budget.calls_per_second)


def poll_wait(intervals: PollIntervals, *, transitioning: bool, failures: int, jitter: float) -> float:
    """Seconds until the next list: the transition interval while a watched endpoint moves, else the
    steady one; after `failures` failed lists in a row, the steady interval doubled per failure up to
    `max_backoff`. Times `jitter` (about 1), so that credentials do not list in step."""
    if failures:
        base = min(intervals.max_backoff, intervals.steady * 2.0**failures)
    else:
        base = intervals.transition if transitioning else intervals.steady
    return max(0.1, base * jitter)


@dataclass
class _Account:
    """Polling state of one credential."""

    api: EndpointsAPI
    watchers: dict[str, dict[str, Wake]] = field(default_factory=dict)
    """endpoint id -> {resource uid -> wake}"""
    listed: dict[str, ListEndpoint] | None = None
    """The last list, by endpoint id; None until the first list succeeded."""
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    failures: int = 0
    """Lists in a row that failed."""
    turns: deque[str] = field(default_factory=deque)
    """Watched endpoint ids in the order of their next resync turn."""
    resync_due: set[str] = field(default_factory=set)
    """Endpoints whose turn came and that were not read since."""
    resync_task: asyncio.Task[None] | None = None


class Poller:
    def __init__(
        self,
        intervals: PollIntervals,
        on_cycle: Callable[[float], None] = lambda seconds: None,
        resync: ResyncBudget | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._intervals = intervals
        self._on_cycle = on_cycle
        self._resync = resync or ResyncBudget()
        self._sleep = sleep
        self._accounts: dict[str, _Account] = {}
        self._watching: dict[str, tuple[str, str]] = {}
        """resource uid -> the (credential, endpoint id) it watches"""

    def watch(self, credential: str, api: EndpointsAPI, endpoint_id: str, uid: str, wake: Wake) -> None:
        """Wake `uid` whenever `endpoint_id`'s list item changes, and stop watching anything else for it
        (a changed key or endpoint id). Starts the credential's poll loop."""
        self._forget(uid, keep=(credential, endpoint_id))
        self._watching[uid] = (credential, endpoint_id)
        account = self._accounts.get(credential)
        if account is None:
            account = self._accounts[credential] = _Account(api=api)
        account.api = api
        if endpoint_id not in account.watchers:
            account.turns.append(endpoint_id)
        account.watchers.setdefault(endpoint_id, {})[uid] = wake
        if account.task is None or account.task.done():
            account.task = asyncio.create_task(self._poll(credential, account), name=f"poller-{credential}")
        if account.resync_task is None or account.resync_task.done():
            account.resync_task = asyncio.create_task(
                self._grant_resyncs(account), name=f"resync-{credential}"
            )

    def unwatch(self, uid: str) -> None:
        self._forget(uid, keep=None)

    def _forget(self, uid: str, keep: tuple[str, str] | None) -> None:
        """Stop waking `uid` for anything but `keep` (credential, endpoint id); drop a credential nobody
        watches any more. O(1) for a resource watching what it watched: every reconcile calls this."""
        watched = self._watching.get(uid)
        if watched is None or watched == keep:
            return
        del self._watching[uid]
        credential, endpoint_id = watched
        account = self._accounts.get(credential)
        if account is None:
            return
        wakes = account.watchers.get(endpoint_id, {})
        wakes.pop(uid, None)
        if not wakes and endpoint_id in account.watchers:
            del account.watchers[endpoint_id]
            account.turns.remove(endpoint_id)
            account.resync_due.discard(endpoint_id)
        if not account.watchers and (keep is None or credential != keep[0]):
            self._stop(credential)

    def listed(self, credential: str, endpoint_id: str) -> ListEndpoint | None:
        """The endpoint's item in the latest list; None if it was absent or nothing was listed yet."""
        account = self._accounts.get(credential)
        if account is None or account.listed is None:
            return None
        return account.listed.get(endpoint_id)

    def resync_due(self, credential: str, endpoint_id: str) -> bool:
        """Whether the endpoint's resync turn came and it was not read since."""
        account = self._accounts.get(credential)
        return account is not None and endpoint_id in account.resync_due

    def was_read(self, credential: str, endpoint_id: str) -> None:
        """The shell read the endpoint (for its turn or for any other reason): its turn is used."""
        account = self._accounts.get(credential)
        if account is not None:
            account.resync_due.discard(endpoint_id)

    def poll_soon(self, credential: str) -> None:
        """List again now, e.g. after a change the shell made, instead of after the full interval."""
        account = self._accounts.get(credential)
        if account is not None:
            account.kick.set()

    async def close(self) -> None:
        for credential in list(self._accounts):
            self._stop(credential)
        self._watching.clear()
        await asyncio.sleep(0)

    def _stop(self, credential: str) -> None:
        account = self._accounts.pop(credential)
        for task in (account.task, account.resync_task):
            if task is not None:
                task.cancel()

    async def _poll(self, credential: str, account: _Account) -> None:
        while account.watchers:
            started = time.monotonic()
            try:
                items = await account.api.list_endpoints(type="dedicated", mine=True)
            except TogetherError as error:
                # Resources see the same failure on their own calls and report it; here it only delays.
                account.failures += 1
                _log.warning("listing endpoints for credential %s failed: %s", credential, error)
            else:
                account.failures = 0
                self._publish(account, {item.id: item for item in items})
            self._on_cycle(time.monotonic() - started)
            account.kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(account.kick.wait(), timeout=self._next_wait(account))

    async def _grant_resyncs(self, account: _Account) -> None:
        """One resync turn per spacing, round-robin; the first after a random part of a spacing."""
        await self._sleep(random.uniform(0, resync_spacing(self._resync, len(account.watchers))))
        while account.watchers:
            endpoint_id = account.turns[0]
            account.turns.rotate(-1)
            account.resync_due.add(endpoint_id)
            for wake in list(account.watchers[endpoint_id].values()):
                wake()
            await self._sleep(resync_spacing(self._resync, len(account.watchers)))

    def _publish(self, account: _Account, current: dict[str, ListEndpoint]) -> None:
        before = account.listed
        account.listed = current
        for endpoint_id, wakes in list(account.watchers.items()):
            if before is not None and before.get(endpoint_id) == current.get(endpoint_id):
                continue
            for wake in list(wakes.values()):
                wake()

    def _next_wait(self, account: _Account) -> float:
        listed = account.listed or {}
        transitioning = any(
            item.state in TRANSITIONAL_STATES
            for item_id, item in listed.items()
            if item_id in account.watchers
        )
        spread = self._intervals.jitter
        return poll_wait(
            self._intervals,
            transitioning=transitioning,
            failures=account.failures,
            jitter=random.uniform(1 - spread, 1 + spread),
        )
