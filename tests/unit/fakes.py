"""In-memory stand-ins for everything the shell (`shell.Reconciler`) and the poller talk to, for fast
tests of their I/O order: a Together account, the poller's list, the status subresource, the connection
ConfigMaps, the events and a fixed clock. Every call lands in one shared `Log`, so a test can assert
the order of what was sent, e.g. the create intent before the POST."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from together_operator.budget import BudgetBook
from together_operator.connection import Owner
from together_operator.core import AdoptionClaim, ConnectionSteps, Event, OtherResources
from together_operator.credentials import ApiKey, CredentialsMissing
from together_operator.metrics import OperatorMetrics
from together_operator.poller import Wake
from together_operator.resource import SecretKeyRef, TogetherEndpointStatus
from together_operator.shell import Reconciler, ReconcilerSettings
from together_operator.status_writer import StoredResource
from together_operator.together.errors import NotFoundError, TogetherError, TransientError
from together_operator.together.models import (
    CreateEndpointRequest,
    DedicatedEndpoint,
    HardwareWithStatus,
    ListEndpoint,
    UpdateEndpointRequest,
)
from together_operator.together.v2_models import (
    Autoscaling,
    Config,
    CreateDeploymentRequest,
    Deployment,
    DeploymentProfile,
    DeploymentStatus,
    DeploymentSummary,
    Endpoint,
    Project,
    SupportedModel,
    TrafficSplitEntry,
)
from together_operator.v2_shell import V2Reconciler

from .builders import HARDWARE, MODEL, NAME, NAMESPACE, NOW, OFFERED, endpoint

Log = list[str]


def list_item(of: DedicatedEndpoint) -> ListEndpoint:
    """The endpoint as `GET /endpoints` shows it (without display name, hardware, autoscaling)."""
    return ListEndpoint.model_validate(
        {k: v for k, v in of.model_dump().items() if k not in ("display_name", "hardware", "autoscaling")}
    )


def kopf_index(function: Any, *bodies: Mapping[str, Any]) -> dict[Any, list[Any]]:
    """What kopf builds from an index function (a kopf handler, typed loosely) over these bodies."""
    index: dict[Any, list[Any]] = {}
    for body in bodies:
        for key, value in function(body=body).items():
            index.setdefault(key, []).append(value)
    return index


class FixedClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeTogether:
    """A Together account in memory (an `EndpointsAPI`). `fail` queues errors for the next calls of an
    operation; `lost_create_answer` makes the next POST create its endpoint, then raise (a lost
    response)."""

    def __init__(
        self, *endpoints: DedicatedEndpoint, log: Log | None = None, clock: FixedClock | None = None
    ) -> None:
        self.endpoints = {e.id: e for e in endpoints}
        self.log: Log = log if log is not None else []
        self.clock = clock
        self.slot_waits: dict[str, float] = {}
        """operation -> seconds it waits on `clock` (which it moves on) for a rate-limiter slot before it
        is sent"""
        self.takes: dict[str, float] = {}
        """operation -> seconds it takes on `clock` (which it moves on) before it answers"""
        self.meanwhile: dict[str, Callable[[], None]] = {}
        """operation -> what else happens while it is in flight"""
        self.held: dict[str, asyncio.Event] = {}
        """operation -> an event it stays in flight until (set by the test)"""
        self.hardware: list[HardwareWithStatus] = list(OFFERED)
        self.failures: dict[str, list[BaseException]] = {}
        self.deletes_take_effect = True
        """False: a DELETE is accepted (2xx) but the endpoint stays, as while Together tears it down."""
        self.lost_create_answer: TogetherError | None = None
        self.created_at = NOW
        self.lists = 0
        self.listed = asyncio.Event()
        self._created = 0

    def fail(self, operation: str, *errors: BaseException) -> None:
        """Raise `errors`, one per call, on the next calls of `operation` (e.g. "POST /endpoints")."""
        self.failures.setdefault(operation, []).extend(errors)

    async def _call(self, operation: str, before_send: Callable[[], Awaitable[None]] | None = None) -> None:
        await asyncio.sleep(0)  # a call yields to the event loop, as I/O does
        if self.clock is not None:
            self.clock.advance(seconds=self.slot_waits.get(operation, 0.0))
        if before_send is not None:
            await before_send()  # in the slot, as the client does: if it raises, nothing is sent
        self.log.append(operation)
        if self.clock is not None:
            self.clock.advance(seconds=self.takes.get(operation, 0.0))
        if operation in self.meanwhile:
            self.meanwhile[operation]()
        if operation in self.held:
            await self.held[operation].wait()
        queued = self.failures.get(operation)
        if queued:
            raise queued.pop(0)

    def _get(self, endpoint_id: str, method: str) -> DedicatedEndpoint:
        found = self.endpoints.get(endpoint_id)
        if found is None:
            raise NotFoundError(
                "endpoint not found", method=method, path=f"endpoints/{endpoint_id}", status_code=404
            )
        return found

    async def list_endpoints(
        self, *, type: str | None = "dedicated", usage_type: str | None = None, mine: bool | None = True
    ) -> list[ListEndpoint]:
        assert (type, mine) == ("dedicated", True)
        await self._call("GET /endpoints")
        self.lists += 1
        self.listed.set()
        return [list_item(e) for e in self.endpoints.values()]

    async def get_endpoint(self, endpoint_id: str) -> DedicatedEndpoint:
        await self._call(f"GET /endpoints/{endpoint_id}")
        return self._get(endpoint_id, "GET")

    async def create_endpoint(
        self, request: CreateEndpointRequest, *, before_send: Callable[[], Awaitable[None]] | None = None
    ) -> DedicatedEndpoint:
        await self._call("POST /endpoints", before_send)
        self._created += 1
        made = endpoint(
            id=f"endpoint-{self._created}",
            model=request.model,
            hardware=request.hardware,
            display_name=request.display_name,
            min_replicas=request.autoscaling.min_replicas,
            max_replicas=request.autoscaling.max_replicas,
            state="PENDING",
            created_at=self.created_at,
        )
        self.endpoints[made.id] = made
        if self.lost_create_answer is not None:
            error, self.lost_create_answer = self.lost_create_answer, None
            raise error
        return made

    async def update_endpoint(self, endpoint_id: str, request: UpdateEndpointRequest) -> DedicatedEndpoint:
        await self._call(f"PATCH /endpoints/{endpoint_id}")
        before = self._get(endpoint_id, "PATCH").model_dump()
        changed = DedicatedEndpoint.model_validate({**before, **request.model_dump(exclude_none=True)})
        self.endpoints[endpoint_id] = changed
        return changed

    async def delete_endpoint(self, endpoint_id: str) -> None:
        await self._call(f"DELETE /endpoints/{endpoint_id}")
        self._get(endpoint_id, "DELETE")
        if self.deletes_take_effect:
            del self.endpoints[endpoint_id]

    async def list_hardware(self, model: str | None = None) -> list[HardwareWithStatus]:
        await self._call(f"GET /hardware?model={model}")
        return list(self.hardware)

    async def list_availability_zones(self) -> list[str]:
        await self._call("GET /clusters/availability-zones")
        return []


class FakeLists:
    """The shared poller as the shell sees it: `items` is its latest list, set by the test."""

    def __init__(self) -> None:
        self.items: dict[str, ListEndpoint] = {}
        self.watched: dict[str, set[str]] = {}
        """uid -> endpoint ids it watches"""
        self.kicks = 0
        self.resync_turns: set[str] = set()
        """Endpoints whose resync turn the poller granted and that were not read since."""

    def show(self, *endpoints: DedicatedEndpoint) -> None:
        """A poll cycle listed exactly these endpoints."""
        self.items = {e.id: list_item(e) for e in endpoints}

    def watch(self, credential: str, api: Any, endpoint_id: str, uid: str, wake: Wake) -> None:
        self.watched.setdefault(uid, set()).add(endpoint_id)

    def unwatch(self, uid: str) -> None:
        self.watched.pop(uid, None)

    def listed(self, credential: str, endpoint_id: str) -> ListEndpoint | None:
        return self.items.get(endpoint_id)

    def poll_soon(self, credential: str) -> None:
        self.kicks += 1

    def resync_due(self, credential: str, endpoint_id: str) -> bool:
        return endpoint_id in self.resync_turns

    def was_read(self, credential: str, endpoint_id: str) -> None:
        self.resync_turns.discard(endpoint_id)


class FakeStatusWriter:
    """The status subresource of one apiserver. A write guarded by a resourceVersion other than the
    stored object's fails with 409, as the apiserver's does; every write moves the version on."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.writes: list[TogetherEndpointStatus] = []
        self.resource_version = 1
        self.stored: dict[str, Any] | None = None
        self.refuse_guarded_writes = False
        """Someone else writes the resource before every guarded write of ours."""
        self.refusal: ApiException | None = None
        """The apiserver refuses every write so (a 422 for a status over its limits, say)."""

    async def read(self, namespace: str, name: str) -> StoredResource:
        self.log.append("read resource")
        return StoredResource(status=self.stored, resource_version=str(self.resource_version))

    async def write(
        self,
        namespace: str,
        name: str,
        current: Mapping[str, Any] | None,
        status: TogetherEndpointStatus,
        *,
        resource_version: str | None = None,
    ) -> bool:
        if self.refusal is not None:
            raise self.refusal
        stale = resource_version is not None and resource_version != str(self.resource_version)
        if stale or (resource_version is not None and self.refuse_guarded_writes):
            self.log.append("status write refused: 409")
            if self.refuse_guarded_writes:
                self.resource_version += 1
            raise ApiException(status=409, reason="Conflict")
        self.log.append("status write (guarded)" if resource_version is not None else "status write")
        self.writes.append(status)
        self.stored = status.to_patch()
        self.resource_version += 1
        return True


class FakeConnections:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.config_maps: dict[str, Mapping[str, str]] = {}
        self.taken: set[str] = set()

    async def publish(self, owner: Owner, config_map: str, data: Mapping[str, str]) -> str | None:
        self.log.append(f"publish ConfigMap {config_map}")
        if config_map in self.taken:
            return f"ConfigMap {config_map} is not ours"
        self.config_maps[config_map] = dict(data)
        return None

    async def withdraw(self, owner: Owner, config_map: str) -> None:
        self.log.append(f"withdraw ConfigMap {config_map}")
        self.config_maps.pop(config_map, None)


class FakeOwnership:
    """Claims held per endpoint id (uid, namespace/name), as the apiserver's create-once keeps them;
    and which namespaces carry the adoption label: the bed's own does, so tests that adopt with the
    operator-wide key need not say so (a test of that rule empties `allowing`)."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.claims: dict[str, tuple[str, str]] = {}
        self.allowing: set[str] = {NAMESPACE}

    async def claim(self, endpoint_id: str, owner: Owner) -> AdoptionClaim:
        self.log.append(f"claim {endpoint_id}")
        uid, holder = self.claims.setdefault(endpoint_id, (owner.uid, f"{owner.namespace}/{owner.name}"))
        return AdoptionClaim(holder=holder, ours=uid == owner.uid)

    async def release(self, endpoint_id: str, owner: Owner) -> None:
        if self.claims.get(endpoint_id, ("", ""))[0] == owner.uid:
            self.log.append(f"release claim {endpoint_id}")
            del self.claims[endpoint_id]

    async def allow_adoption(self, namespace: str) -> bool:
        self.log.append(f"read namespace {namespace}")
        return namespace in self.allowing


class FakeSecrets:
    """Which Secrets carry the in-use finalizer."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.held: set[str] = set()

    async def hold(self, namespace: str, name: str) -> None:
        if name not in self.held:
            self.log.append(f"hold Secret {name}")
            self.held.add(name)

    async def release(self, namespace: str, name: str) -> None:
        self.log.append(f"release Secret {name}")
        self.held.discard(name)


@dataclass
class FakeCredentials:
    key: ApiKey | CredentialsMissing = field(default_factory=lambda: ApiKey("test-key-0123456789"))

    async def resolve(self, namespace: str, ref: SecretKeyRef | None) -> ApiKey | CredentialsMissing:
        return self.key


@dataclass
class FakeClients:
    api: FakeTogether

    def for_key(self, key: ApiKey) -> FakeTogether:
        return self.api


FINALIZER = "together.ai/finalizer"


class ShellBed:
    """A `Reconciler` wired to the fakes, and one TogetherEndpoint body as kopf would pass it."""

    def __init__(
        self,
        *endpoints: DedicatedEndpoint,
        settings: ReconcilerSettings | None = None,
        v2: V2Reconciler | None = None,
    ) -> None:
        self.log: Log = []
        self.clock = FixedClock()
        self.together = FakeTogether(*endpoints, log=self.log, clock=self.clock)
        self.lists = FakeLists()
        self.status = FakeStatusWriter(self.log)
        self.connections = FakeConnections(self.log)
        self.ownership = FakeOwnership(self.log)
        self.secrets = FakeSecrets(self.log)
        self.credentials = FakeCredentials()
        self.events: list[Event] = []
        self.others = OtherResources()
        self.budgets = BudgetBook()
        self.settings = settings or ReconcilerSettings(base_url="https://api.together.ai/v1")
        self.v2 = v2
        self.reconciler = self._start()

    def restart(self) -> None:
        """The operator restarts: a new `Reconciler`, with nothing remembered but what the fakes hold."""
        self.reconciler = self._start()

    def _start(self) -> Reconciler:
        return Reconciler(
            self.settings,
            self.credentials,
            FakeClients(self.together),
            self.lists,
            self.status,
            self.connections,
            OperatorMetrics(),
            self._post_event,
            self.ownership,
            self.secrets,
            clock=self.clock,
            jitter=lambda: 1.0,
            budgets=self.budgets,
            v2=self.v2,
        )

    def _post_event(self, body: Mapping[str, Any], event: Event) -> None:
        self.events.append(event)
        self.log.append(f"event {event.type} {event.reason}")

    def resource(
        self,
        spec: Mapping[str, Any] | None = None,
        status: Mapping[str, Any] | None = None,
        uid: str = "uid-1",
    ) -> dict[str, Any]:
        """A body kopf would pass: finalizer held, generation 1, at the writer's resourceVersion."""
        return {
            "metadata": {
                "namespace": NAMESPACE,
                "name": NAME,
                "uid": uid,
                "generation": 1,
                "resourceVersion": str(self.status.resource_version),
                "finalizers": [FINALIZER],
            },
            "spec": dict(spec if spec is not None else {"model": MODEL, "hardware": HARDWARE}),
            "status": dict(status or {}),
        }

    def watch_event(self, body: dict[str, Any]) -> None:
        """The watch brings the stored object back: the body shows the last write and its version."""
        body["status"] = dict(self.status.stored or {})
        body["metadata"]["resourceVersion"] = str(self.status.resource_version)

    async def reconcile(self, body: Mapping[str, Any]) -> float:
        return await self.reconciler.reconcile_once(body, self.others)

    def calls(self) -> list[str]:
        """The Together calls in the log, in order."""
        methods = ("GET ", "POST ", "PATCH ", "DELETE ")
        return [entry for entry in self.log if entry.startswith(methods)]


# --- Together v2 ------------------------------------------------------------------------------------

V2_PROJECT = Project(id="proj_1", name="dev", slug="devproj")
V2_MODEL_RESOURCE = "projects/platform/models/ml_mixtral/revisions/rv_1"
V2_CONFIG = "projects/platform/configs/cr_h100x2"
V2_CONFIG_X4 = "projects/platform/configs/cr_h100x4"
V2_CATALOGUE = [
    SupportedModel(
        id="sm_1",
        name=MODEL,
        base_model="projects/platform/models/ml_mixtral",
        deployment_profiles=[
            DeploymentProfile(
                config=V2_CONFIG, model=V2_MODEL_RESOURCE, gpu_count=2, gpu_type="nvidia-h100-80gb"
            ),
            DeploymentProfile(
                config=V2_CONFIG_X4, model=V2_MODEL_RESOURCE, gpu_count=4, gpu_type="nvidia-h100-80gb"
            ),
        ],
    )
]


class FakeV2Together:
    """A Together v2 project in memory (a `DedicatedInferenceAPI` as far as the v2 shell uses it): a
    deployment is READY once created; a list lets other tasks run while it is under way; `messages`
    holds each deployment's `status.message`; `lost_create_answer` makes the next endpoint create
    happen, then raise (a lost response). Every call lands in `log` (`list` for a whole endpoint
    list)."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.endpoints: dict[str, Endpoint] = {}
        self.messages: dict[str, str] = {}
        self.lost_create_answer = False

    async def project(self) -> Project:
        return V2_PROJECT

    async def list_supported_models(self) -> list[SupportedModel]:
        self.log.append("GET supported models")
        return list(V2_CATALOGUE)

    async def get_config(self, config: str) -> Config:
        self.log.append(f"GET {config}")
        return Config(id=config.rpartition("/")[2], project_id="platform", reference_model=V2_MODEL_RESOURCE)

    async def list_endpoints(self, *, filter: str | None = None) -> list[Endpoint]:
        self.log.append("list")
        await asyncio.sleep(0)  # a list is a wait on the network: others run meanwhile
        return list(self.endpoints.values())

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        self.log.append(f"GET {endpoint_id}")
        if endpoint_id not in self.endpoints:
            raise NotFoundError(f"no endpoint {endpoint_id}", method="GET", path=endpoint_id, status_code=404)
        return self.endpoints[endpoint_id]

    async def create_endpoint(self, name: str) -> Endpoint:
        self.log.append(f"POST endpoint {name}")
        created = Endpoint(
            id=f"ep_{name}",
            name=f"{V2_PROJECT.slug}/{name}",
            project_id=V2_PROJECT.id,
            etag="e1",
            visibility="VISIBILITY_PRIVATE",
        )
        self.endpoints[created.id] = created
        if self.lost_create_answer:
            self.lost_create_answer = False
            raise TransientError("connection dropped", method="POST", path="endpoints")
        return created

    async def create_deployment(self, endpoint_id: str, request: CreateDeploymentRequest) -> Deployment:
        self.log.append(f"POST deployment {endpoint_id}")
        endpoint = self.endpoints[endpoint_id]
        summary = DeploymentSummary(
            id=f"dep_{len(endpoint.deployments) + 1}",
            name=f"{endpoint.name}/{request.name}",
            state="DEPLOYMENT_STATE_READY",
            autoscaling=request.autoscaling,
            model=request.model,
            hardware="4xnvidia-h100-80gb" if request.config == V2_CONFIG_X4 else "2xnvidia-h100-80gb",
            desired_replicas=request.autoscaling.max_replicas,
            ready_replicas=request.autoscaling.max_replicas,
        )
        deployments = [*endpoint.deployments, summary]
        self.endpoints[endpoint_id] = endpoint.model_copy(update={"deployments": deployments})
        return self._deployment(endpoint_id, summary)

    async def set_traffic_split(
        self, endpoint_id: str, split: list[TrafficSplitEntry], *, etag: str | None = None
    ) -> Endpoint:
        self.log.append(f"PATCH split {endpoint_id}")
        endpoint = self.endpoints[endpoint_id].model_copy(update={"traffic_split": list(split)})
        self.endpoints[endpoint_id] = endpoint
        return endpoint

    async def set_autoscaling(
        self, endpoint_id: str, deployment_id: str, autoscaling: Autoscaling, *, etag: str | None = None
    ) -> Deployment:
        self.log.append(f"PATCH autoscaling {deployment_id}")
        endpoint = self.endpoints[endpoint_id]
        deployments = [
            d.model_copy(update={"autoscaling": autoscaling}) if d.id == deployment_id else d
            for d in endpoint.deployments
        ]
        self.endpoints[endpoint_id] = endpoint.model_copy(update={"deployments": deployments})
        return await self.get_deployment(endpoint_id, deployment_id)

    async def get_deployment(self, endpoint_id: str, deployment_id: str) -> Deployment:
        self.log.append(f"GET {deployment_id}")
        summary = next(d for d in self.endpoints[endpoint_id].deployments if d.id == deployment_id)
        return self._deployment(endpoint_id, summary)

    def _deployment(self, endpoint_id: str, summary: DeploymentSummary) -> Deployment:
        return Deployment(
            id=summary.id,
            name=summary.name,
            endpoint_id=endpoint_id,
            etag="d1",
            model=summary.model,
            config=V2_CONFIG,
            hardware=summary.hardware or "",
            autoscaling=summary.autoscaling,
            status=DeploymentStatus(state=summary.state, message=self.messages.get(summary.id, "")),
        )

    def set_state(self, endpoint_id: str, state: str) -> None:
        """An out-of-band change of every deployment's state (`DEPLOYMENT_STATE_<state>`)."""
        endpoint = self.endpoints[endpoint_id]
        deployments = [
            d.model_copy(update={"state": f"DEPLOYMENT_STATE_{state}"}) for d in endpoint.deployments
        ]
        self.endpoints[endpoint_id] = endpoint.model_copy(update={"deployments": deployments})


@dataclass
class FakeV2Clients:
    api: FakeV2Together

    def for_key(self, key: ApiKey) -> FakeV2Together:
        return self.api


@dataclass
class FakeV2Host:
    """The resource's loop as the v2 shell sees it: status written and events posted, in `log`."""

    log: Log
    written: TogetherEndpointStatus | None = None
    events: list[Event] = field(default_factory=list)

    def deleting(self) -> bool:
        return False

    async def write_intent(self, status: TogetherEndpointStatus) -> None:
        self.log.append("write intent")
        self.written = status

    async def publish(self, status: TogetherEndpointStatus, events: tuple[Event, ...]) -> None:
        if status != self.written:
            self.log.append("write status")
        self.written = status
        self.events.extend(events)

    def backoff(self, suggested: float) -> float:
        return suggested

    async def connection(self, steps: ConnectionSteps) -> str | None:
        return None

    async def claim(self, endpoint_id: str) -> AdoptionClaim:
        return AdoptionClaim(holder=f"{NAMESPACE}/{NAME}", ours=True)

    async def allows_adoption(self) -> bool:
        return False
