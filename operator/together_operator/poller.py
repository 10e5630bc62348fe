"""The shared poller: one `GET /endpoints?type=dedicated&mine=true` per credential per interval.

Every TogetherEndpoint registers the endpoint id it watches under its credential. The poller lists
the account's endpoints once per interval (sooner while any watched endpoint is PENDING, STARTING or
STOPPING, jittered), keeps the latest list item of each, and wakes only the resources whose item
changed or vanished. The list lacks display name, hardware and autoscaling: the shell reads a
single endpoint only when it needs those (see `core.usable_cached_read`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
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


class Poller:
    def __init__(
        self, intervals: PollIntervals, on_cycle: Callable[[float], None] = lambda seconds: None
    ) -> None:
        self._intervals = intervals
        self._on_cycle = on_cycle
        self._accounts: dict[str, _Account] = {}

    def watch(self, credential: str, api: EndpointsAPI, endpoint_id: str, uid: str, wake: Wake) -> None:
        """Wake `uid` whenever `endpoint_id`'s list item changes, and stop watching anything else for it
        (a changed key or endpoint id). Starts the credential's poll loop."""
        self._forget(uid, keep=(credential, endpoint_id))
        account = self._accounts.get(credential)
        if account is None:
            account = self._accounts[credential] = _Account(api=api)
        account.api = api
        account.watchers.setdefault(endpoint_id, {})[uid] = wake
        if account.task is None or account.task.done():
            account.task = asyncio.create_task(self._poll(credential, account), name=f"poller-{credential}")

    def unwatch(self, uid: str) -> None:
        self._forget(uid, keep=None)

    def _forget(self, uid: str, keep: tuple[str, str] | None) -> None:
        """Stop waking `uid` for anything but `keep` (credential, endpoint id); drop credentials nobody
        watches any more."""
        for credential, account in list(self._accounts.items()):
            for endpoint_id, wakes in list(account.watchers.items()):
                if (credential, endpoint_id) == keep:
                    continue
                wakes.pop(uid, None)
                if not wakes:
                    del account.watchers[endpoint_id]
            if not account.watchers and (keep is None or credential != keep[0]):
                self._stop(credential)

    def listed(self, credential: str, endpoint_id: str) -> ListEndpoint | None:
        """The endpoint's item in the latest list; None if it was absent or nothing was listed yet."""
        account = self._accounts.get(credential)
        if account is None or account.listed is None:
            return None
        return account.listed.get(endpoint_id)

    def poll_soon(self, credential: str) -> None:
        """List again now, e.g. after a change the shell made, instead of after the full interval."""
        account = self._accounts.get(credential)
        if account is not None:
            account.kick.set()

    async def close(self) -> None:
        for credential in list(self._accounts):
            self._stop(credential)
        await asyncio.sleep(0)

    def _stop(self, credential: str) -> None:
        account = self._accounts.pop(credential)
        if account.task is not None:
            account.task.cancel()

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
