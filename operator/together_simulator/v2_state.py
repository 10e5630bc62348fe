"""The simulated v2 world: a project per account, its endpoints, their deployments and lifecycles.

As in `state`, states are computed from timestamps when someone looks: a deployment's lifecycle is a
schedule of states, each held until a given (simulated monotonic) time, then a final state.

- Start (create, or a restart from 0/0): PROVISIONING, SCALING, then READY, one `transition_seconds`
  per step. On hardware the catalogue marks insufficient or unavailable, PROVISIONING is followed by
  DEGRADED ("Cannot place replicas: insufficient GPU capacity") until `ready_timeout_seconds` after
  the start, then FAILED ("Timed out waiting for readiness"), as the reference says after six hours.
- A change of min replicas on a running deployment: SCALING (the replicas that were ready keep
  serving), then READY.
- 0/0: STOPPING, then STOPPED.
- DEGRADED and FAILED otherwise only by the admin API (`V2Store.degrade`, `V2Store.fail`).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from together_simulator.state import SimulatedClock
from together_simulator.v2_catalogue import ConfigRevision, ModelResource
from together_simulator.v2_wire import Autoscaling, DeploymentState, Visibility

PROVISIONING: DeploymentState = "DEPLOYMENT_STATE_PROVISIONING"
SCALING: DeploymentState = "DEPLOYMENT_STATE_SCALING"
READY: DeploymentState = "DEPLOYMENT_STATE_READY"
DEGRADED: DeploymentState = "DEPLOYMENT_STATE_DEGRADED"
FAILED: DeploymentState = "DEPLOYMENT_STATE_FAILED"
STOPPING: DeploymentState = "DEPLOYMENT_STATE_STOPPING"
STOPPED: DeploymentState = "DEPLOYMENT_STATE_STOPPED"

MESSAGES: dict[DeploymentState, str] = {
    PROVISIONING: "Scheduling replicas",
    SCALING: "Replicas starting",
    READY: "All replicas ready",
    STOPPING: "Draining replicas",
    STOPPED: "Stopped",
}
NO_CAPACITY = "Cannot place replicas: insufficient GPU capacity"
TIMED_OUT = "Timed out waiting for readiness"


@dataclass(frozen=True)
class Phase:
    state: DeploymentState
    message: str


@dataclass(frozen=True)
class DeploymentLifecycle:
    steps: tuple[tuple[Phase, float], ...]
    final: Phase

    @classmethod
    def settled(cls, state: DeploymentState, message: str | None = None) -> DeploymentLifecycle:
        return cls((), Phase(state, message if message is not None else MESSAGES[state]))

    def phase_at(self, now: float) -> Phase:
        for phase, until in self.steps:
            if now < until:
                return phase
        return self.final


@dataclass(frozen=True)
class Project:
    id: str
    slug: str
    organization_id: str
    key_id: str


@dataclass
class DeploymentRecord:
    id: str
    endpoint_id: str
    project_id: str
    name: str
    model: ModelResource
    config: ConfigRevision
    autoscaling: Autoscaling
    inactive_timeout: int | None
    max_concurrent_requests_per_replica: str | None
    created_at: float
    updated_at: float
    lifecycle: DeploymentLifecycle
    version: int = 1
    # Replicas that keep serving while it scales from one running size to another.
    serving_while_scaling: int = 0

    @property
    def etag(self) -> str:
        return _etag(self.id, self.version)

    @property
    def min_replicas(self) -> int:
        return self.autoscaling.min_replicas or 0

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas or 0


@dataclass
class EndpointRecord:
    id: str
    project_id: str
    name: str
    visibility: Visibility
    created_at: float
    updated_at: float
    traffic_split: dict[str, float] = field(default_factory=dict)
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)
    version: int = 1

    @property
    def etag(self) -> str:
        return _etag(self.id, self.version)


@dataclass(frozen=True)
class Replicas:
    desired: int
    scheduled: int
    ready: int


def _etag(resource_id: str, version: int) -> str:
    return hashlib.sha256(f"{resource_id}/{version}".encode()).hexdigest()[:16]


class V2Store:
    """Every project's endpoints and deployments."""

    def __init__(
        self,
        clock: SimulatedClock,
        rng: random.Random,
        transition_seconds: float,
        ready_timeout_seconds: float,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._transition_seconds = transition_seconds
        self._ready_timeout_seconds = ready_timeout_seconds
        self._endpoints: dict[str, EndpointRecord] = {}

    @staticmethod
    def project(account: str, api_key: str) -> Project:
        """The project an account's keys are scoped to; its slug is the account name."""
        digest = hashlib.sha256(account.encode()).hexdigest()
        return Project(
            id=f"proj_{digest[:20]}",
            slug=account,
            organization_id=f"org_{digest[20:40]}",
            # The key's id, never the key.
            key_id=f"key_{hashlib.sha256(api_key.encode()).hexdigest()[:20]}",
        )

    # --- endpoints ----------------------------------------------------------------------------------

    def endpoints(self, project_id: str) -> list[EndpointRecord]:
        return [record for record in self._endpoints.values() if record.project_id == project_id]

    def endpoint(self, project_id: str, endpoint_id: str) -> EndpointRecord | None:
        record = self._endpoints.get(endpoint_id)
        return record if record is not None and record.project_id == project_id else None

    def endpoint_named(self, project_id: str, name: str) -> EndpointRecord | None:
        return next((record for record in self.endpoints(project_id) if record.name == name), None)

    def all_endpoints(self) -> list[EndpointRecord]:
        return list(self._endpoints.values())

    def create_endpoint(self, project_id: str, name: str, visibility: Visibility) -> EndpointRecord:
        now = self._clock.wall()
        record = EndpointRecord(
            id=self._new_id("ep"),
            project_id=project_id,
            name=name,
            visibility=visibility,
            created_at=now,
            updated_at=now,
        )
        self._endpoints[record.id] = record
        return record

    def touch_endpoint(self, record: EndpointRecord) -> None:
        record.version += 1
        record.updated_at = self._clock.wall()

    def delete_endpoint(self, record: EndpointRecord) -> None:
        del self._endpoints[record.id]

    # --- deployments --------------------------------------------------------------------------------

    def deployment(self, endpoint: EndpointRecord, deployment_id: str) -> DeploymentRecord | None:
        return endpoint.deployments.get(deployment_id)

    def create_deployment(
        self,
        endpoint: EndpointRecord,
        name: str,
        model: ModelResource,
        config: ConfigRevision,
        autoscaling: Autoscaling,
        inactive_timeout: int | None,
        max_concurrent_requests_per_replica: str | None,
        *,
        validate_only: bool = False,
    ) -> DeploymentRecord:
        """The new deployment; with `validate_only`, what it would be, neither kept nor started."""
        now = self._clock.wall()
        record = DeploymentRecord(
            id=self._new_id("dep"),
            endpoint_id=endpoint.id,
            project_id=endpoint.project_id,
            name=name,
            model=model,
            config=config,
            autoscaling=autoscaling,
            inactive_timeout=inactive_timeout,
            max_concurrent_requests_per_replica=max_concurrent_requests_per_replica,
            created_at=now,
            updated_at=now,
            lifecycle=self._starting(config)
            if autoscaling.max_replicas
            else DeploymentLifecycle.settled(STOPPED),
        )
        if not validate_only:
            endpoint.deployments[record.id] = record
        return record

    def set_autoscaling(self, record: DeploymentRecord, autoscaling: Autoscaling) -> None:
        """New bounds: 0/0 stops, bounds on a stopped (or failed) deployment start it, a new floor scales."""
        was_min, state, was_ready = record.min_replicas, self.phase(record).state, self.replicas(record).ready
        record.autoscaling = autoscaling
        if not record.max_replicas:
            if state not in (STOPPING, STOPPED):
                record.lifecycle = self._schedule((STOPPING,), STOPPED)
        elif state in (STOPPING, STOPPED, FAILED):
            record.serving_while_scaling = 0
            record.lifecycle = self._starting(record.config)
        elif record.min_replicas != was_min and state in (READY, SCALING):
            record.serving_while_scaling = min(was_ready, record.min_replicas)
            record.lifecycle = self._schedule((SCALING,), READY)

    def touch_deployment(self, record: DeploymentRecord) -> None:
        record.version += 1
        record.updated_at = self._clock.wall()

    def delete_deployment(self, endpoint: EndpointRecord, record: DeploymentRecord) -> None:
        del endpoint.deployments[record.id]
        endpoint.traffic_split.pop(record.id, None)

    def phase(self, record: DeploymentRecord) -> Phase:
        return record.lifecycle.phase_at(self._clock.monotonic())

    def replicas(self, record: DeploymentRecord) -> Replicas:
        state = self.phase(record).state
        desired = record.min_replicas if state not in (STOPPING, STOPPED, FAILED) else 0
        if state == READY:
            return Replicas(desired, desired, desired)
        if state == SCALING:
            return Replicas(desired, desired, min(record.serving_while_scaling, desired))
        if state == DEGRADED:
            return Replicas(desired, max(desired - 1, 0), max(desired - 1, 0))
        return Replicas(desired, 0, 0)

    def traffic_shares(self, endpoint: EndpointRecord) -> dict[str, float]:
        """Each deployment's share of the endpoint's traffic: weight x ready replicas, normalised."""
        capacity = {
            deployment_id: weight * self.replicas(endpoint.deployments[deployment_id]).ready
            for deployment_id, weight in endpoint.traffic_split.items()
            if deployment_id in endpoint.deployments
        }
        total = sum(capacity.values())
        return {deployment_id: value / total for deployment_id, value in capacity.items()} if total else {}

    def degrade(self, record: DeploymentRecord, message: str) -> None:
        record.lifecycle = DeploymentLifecycle.settled(DEGRADED, message)

    def fail(self, record: DeploymentRecord, message: str) -> None:
        record.lifecycle = DeploymentLifecycle.settled(FAILED, message)

    def _starting(self, config: ConfigRevision) -> DeploymentLifecycle:
        now, step = self._clock.monotonic(), self._transition_seconds
        if config.availability == "available":
            return self._schedule((PROVISIONING, SCALING), READY)
        return DeploymentLifecycle(
            (
                (Phase(PROVISIONING, MESSAGES[PROVISIONING]), now + step),
                (Phase(DEGRADED, NO_CAPACITY), now + max(self._ready_timeout_seconds, step)),
            ),
            Phase(FAILED, f"{TIMED_OUT}: {NO_CAPACITY}"),
        )

    def _schedule(self, states: tuple[DeploymentState, ...], final: DeploymentState) -> DeploymentLifecycle:
        now, step = self._clock.monotonic(), self._transition_seconds
        steps = tuple(
            (Phase(state, MESSAGES[state]), now + (position + 1) * step)
            for position, state in enumerate(states)
        )
        return DeploymentLifecycle(steps, Phase(final, MESSAGES[final]))

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{self._rng.getrandbits(80):020x}"
