"""The simulated endpoints and their lifecycle.

States are computed from timestamps when someone looks, so there is no ticker and no busy loop:
a lifecycle is a schedule of states, each held until a given time, followed by a final state.
Auto-stop is worked out the same way, from the moment the endpoint was last used.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from together_simulator.wire import EndpointState, RequestedState, UsageType


class SimulatedClock:
    """Real time plus an offset that tests can push forward, so hours of endpoint life pass at once."""

    def __init__(self) -> None:
        self._offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def wall(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        return self._offset


def iso_timestamp(unix_seconds: float) -> str:
    """The API's timestamp format, e.g. 2025-02-04T10:43:55.405Z."""
    moment = datetime.fromtimestamp(unix_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Lifecycle:
    """States each held until a (simulated monotonic) time, then `final` for good."""

    began: float
    steps: tuple[tuple[EndpointState, float], ...]
    final: EndpointState

    @classmethod
    def starting(cls, at: float, step_seconds: float) -> Lifecycle:
        return cls(at, (("PENDING", at + step_seconds), ("STARTING", at + 2 * step_seconds)), "STARTED")

    @classmethod
    def stopping(cls, at: float, step_seconds: float) -> Lifecycle:
        return cls(at, (("STOPPING", at + step_seconds),), "STOPPED")

    @classmethod
    def settled(cls, at: float, state: EndpointState) -> Lifecycle:
        return cls(at, (), state)

    @property
    def settles_at(self) -> float:
        return self.steps[-1][1] if self.steps else self.began

    def state_at(self, now: float) -> EndpointState:
        for state, until in self.steps:
            if now < until:
                return state
        return self.final


@dataclass
class EndpointRecord:
    id: str
    name: str
    display_name: str
    model: str
    hardware: str
    owner: str
    min_replicas: int
    max_replicas: int
    inactive_timeout: int | None
    availability_zone: str | None
    disable_speculative_decoding: bool
    usage_type: UsageType
    created_at: float
    lifecycle: Lifecycle
    last_traffic: float
    # When inactive_timeout last changed: a shorter timeout stops an idle endpoint from then on, not
    # retroactively.
    timeout_set_at: float
    auto_stopped: bool = False


@dataclass(frozen=True)
class NewEndpoint:
    owner: str
    model: str
    hardware: str
    display_name: str | None
    min_replicas: int
    max_replicas: int
    state: RequestedState
    inactive_timeout: int | None
    availability_zone: str | None
    disable_speculative_decoding: bool


class EndpointStore:
    """All accounts' dedicated endpoints; every read brings the record's lifecycle up to date first."""

    def __init__(
        self, clock: SimulatedClock, rng: random.Random, transition_seconds: float, minute_seconds: float
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._transition_seconds = transition_seconds
        self._minute_seconds = minute_seconds
        self._records: dict[str, EndpointRecord] = {}

    def create(self, new: NewEndpoint) -> EndpointRecord:
        now = self._clock.monotonic()
        name = f"{new.owner}/{new.model}-{self._rng.getrandbits(32):08x}"
        lifecycle = (
            Lifecycle.starting(now, self._transition_seconds)
            if new.state == "STARTED"
            else Lifecycle.settled(now, "STOPPED")
        )
        record = EndpointRecord(
            id=f"endpoint-{uuid.UUID(int=self._rng.getrandbits(128), version=4)}",
            name=name,
            # The service fills a missing display name in; the system name is the obvious stand-in.
            display_name=new.display_name if new.display_name is not None else name,
            model=new.model,
            hardware=new.hardware,
            owner=new.owner,
            min_replicas=new.min_replicas,
            max_replicas=new.max_replicas,
            inactive_timeout=new.inactive_timeout,
            availability_zone=new.availability_zone,
            disable_speculative_decoding=new.disable_speculative_decoding,
            usage_type="on-demand",
            created_at=self._clock.wall(),
            lifecycle=lifecycle,
            last_traffic=now,
            timeout_set_at=now,
        )
        self._records[record.id] = record
        return record

    def get(self, endpoint_id: str) -> EndpointRecord | None:
        record = self._records.get(endpoint_id)
        if record is not None:
            self._stop_if_idle(record)
        return record

    def by_name(self, name: str) -> EndpointRecord | None:
        """The endpoint whose system name (what inference requests send as `model`) is `name`."""
        record = next((record for record in self._records.values() if record.name == name), None)
        if record is not None:
            self._stop_if_idle(record)
        return record

    def all(self) -> list[EndpointRecord]:
        for record in self._records.values():
            self._stop_if_idle(record)
        return list(self._records.values())

    def state(self, record: EndpointRecord) -> EndpointState:
        self._stop_if_idle(record)
        return record.lifecycle.state_at(self._clock.monotonic())

    def idle_seconds(self, record: EndpointRecord) -> float | None:
        """How long a STARTED endpoint has gone without traffic; None while it is not STARTED."""
        if self.state(record) != "STARTED":
            return None
        return self._clock.monotonic() - self._idle_since(record)

    def request_state(self, record: EndpointRecord, requested: RequestedState) -> None:
        """Start or stop, as a PATCH of `state` does; asking for where it is heading changes nothing."""
        self._stop_if_idle(record)
        if record.lifecycle.final == requested:
            return
        now = self._clock.monotonic()
        if requested == "STARTED":
            record.lifecycle = Lifecycle.starting(now, self._transition_seconds)
            record.auto_stopped = False
        else:
            record.lifecycle = Lifecycle.stopping(now, self._transition_seconds)

    def set_inactive_timeout(self, record: EndpointRecord, minutes: int | None) -> None:
        self._stop_if_idle(record)
        record.inactive_timeout = minutes
        record.timeout_set_at = self._clock.monotonic()

    def fail(self, record: EndpointRecord) -> None:
        record.lifecycle = Lifecycle.settled(self._clock.monotonic(), "ERROR")

    def record_traffic(self, record: EndpointRecord) -> None:
        self._stop_if_idle(record)
        record.last_traffic = self._clock.monotonic()

    def delete(self, endpoint_id: str) -> None:
        del self._records[endpoint_id]

    def _idle_since(self, record: EndpointRecord) -> float:
        return max(record.lifecycle.settles_at, record.last_traffic)

    def _stop_if_idle(self, record: EndpointRecord) -> None:
        if record.lifecycle.final != "STARTED" or not record.inactive_timeout:
            return
        deadline = max(
            self._idle_since(record) + record.inactive_timeout * self._minute_seconds,
            record.timeout_set_at,
        )
        if self._clock.monotonic() >= deadline:
            record.lifecycle = Lifecycle.stopping(deadline, self._transition_seconds)
            record.auto_stopped = True
