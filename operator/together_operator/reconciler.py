"""Runs the reconcile core for one TogetherEndpoint: gathers inputs, carries out actions, writes status.

All decisions are in `reconcile`; this module does the I/O around them, in this order:
resolve the credential -> observe the remote endpoint (the poller's list, a single GET only where the
list lacks fields) -> `plan` -> record create intent -> call the API -> write status and events.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from kubernetes.client.exceptions import ApiException

from together_operator import reconcile
from together_operator.connection import ConnectionPublisher, Owner, connection_data
from together_operator.credentials import ApiKey, CredentialResolver
from together_operator.hardware import HardwareCatalogue
from together_operator.metrics import OperatorMetrics
from together_operator.poller import Poller
from together_operator.reconcile import (
    Action,
    AdoptEndpoint,
    CreateEndpoint,
    CreateInFlight,
    CredentialsMissing,
    Event,
    Found,
    Gone,
    Inputs,
    NotCreated,
    Plan,
    RemoteView,
    RetryPolicy,
)
from together_operator.resource import (
    PAUSED_ANNOTATION,
    RESTART_REQUESTED_ANNOTATION,
    ConditionType,
    DeletionPolicy,
    ManagementPolicy,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)
from together_operator.status_writer import StatusWriter
from together_operator.together import (
    AuthError,
    DedicatedEndpoint,
    EndpointsAPI,
    NotFoundError,
    RateLimiter,
    TogetherClient,
    TogetherError,
)

_log = logging.getLogger(__name__)

EventSink = Callable[[Mapping[str, Any], Event], None]
"""Posts a Kubernetes event about the resource (kopf.event in the operator)."""


@dataclass(frozen=True)
class ReconcilerSettings:
    base_url: str
    """The Together API base URL, published to applications in connection ConfigMaps."""
    resync_interval: float = 600.0
    """Seconds between full GETs of a steady endpoint, to see drift the list cannot show."""
    transition_check: float = 30.0
    """Longest wait between two looks at a resource while its endpoint is changing state."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    finalizer: str = "together.ai/finalizer"
    """kopf's finalizer: a resource is reconciled only once it holds it, so its deletion waits for us."""


class TogetherClients:
    """One pooled client per API key, shared by every resource using it."""

    def __init__(
        self,
        base_url: str,
        rate_limiter: RateLimiter,
        transport: Callable[[], httpx.AsyncBaseTransport] = httpx.AsyncHTTPTransport,
    ) -> None:
        self._base_url = base_url
        self._rate_limiter = rate_limiter
        self._transport = transport
        self._clients: dict[str, TogetherClient] = {}

    def for_key(self, key: ApiKey) -> EndpointsAPI:
        client = self._clients.get(key.fingerprint)
        if client is None:
            client = self._clients[key.fingerprint] = TogetherClient(
                self._base_url, key.value, rate_limiter=self._rate_limiter, transport=self._transport()
            )
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


@dataclass
class _Memory:
    """What one resource's loop remembers between reconciles (lost on restart, which is fine)."""

    full: DedicatedEndpoint | None = None
    full_at: datetime | None = None
    acted: bool = False
    paused: bool = False
    failures: int = 0
    """Reconciles in a row that failed on an API call, for exponential backoff."""
    written: TogetherEndpointStatus | None = None
    """The status last written, so a write is not repeated before the watch shows it."""
    create_answered: bool = False
    """The last create got an HTTP answer (an error): no part of it is still in flight."""


@dataclass
class ResourceHandle:
    """A running resource loop: the poller and watch events wake it."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    seen: tuple[object, ...] = ()


class Reconciler:
    def __init__(
        self,
        settings: ReconcilerSettings,
        credentials: CredentialResolver,
        clients: TogetherClients,
        poller: Poller,
        status_writer: StatusWriter,
        connections: ConnectionPublisher,
        metrics: OperatorMetrics,
        post_event: EventSink,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC).replace(microsecond=0),
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._clients = clients
        self._poller = poller
        self._status = status_writer
        self._connections = connections
        self._metrics = metrics
        self._post_event = post_event
        self._clock = clock
        self._handles: dict[str, ResourceHandle] = {}
        self._owners: Mapping[str, Collection[tuple[str, str]]] = {}
        self._hardware = HardwareCatalogue()
        self._latest: dict[str, TogetherEndpointStatus] = {}
        self._deletes_sent: set[str] = set()

    # --- the per-resource loop ------------------------------------------------------------------

    async def run(
        self,
        body: Mapping[str, Any],
        stopped: Awaitable[object],
        owners: Mapping[str, Collection[tuple[str, str]]],
    ) -> None:
        """Reconcile `body` (a live view kept current by kopf) until `stopped` resolves.

        `owners` maps each endpoint id recorded in any TogetherEndpoint's status to (uid, namespace/name)
        of the resources recording it (a kopf index): an interrupted create or a spec.endpointId never
        takes another resource's endpoint.
        """
        self._owners = owners
        uid = body["metadata"]["uid"]
        handle = self._handles[uid] = ResourceHandle()
        memory = _Memory()
        stop = asyncio.ensure_future(stopped)
        failures = 0
        try:
            while not stop.done():
                handle.wake.clear()
                handle.seen = _trigger_key(body)
                try:
                    delay = await self._reconcile_once(body, handle, memory)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except ApiException as error:
                    if error.status != 409:
                        raise
                    # Our view of the resource was stale (kopf or a user wrote it meanwhile): look again.
                    _log.info("%s changed while reconciling; reconciling again", _name(body))
                    memory.written = None
                    delay = 0.5
                except Exception:
                    # A bug or an unexpected API answer: back off exponentially instead of spinning.
                    failures += 1
                    delay = min(300.0, 2.0**failures)
                    _log.exception("reconciling %s failed; retrying in %.0f s", _name(body), delay)
                waiter = asyncio.ensure_future(handle.wake.wait())
                await asyncio.wait({waiter, stop}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            stop.cancel()
            self._handles.pop(uid, None)
            self._latest.pop(uid, None)
            self._poller.unwatch(uid)

    def statuses(self) -> list[TogetherEndpointStatus]:
        """The last status written for each resource this process reconciles (for metrics)."""
        return list(self._latest.values())

    def wants_wake(self, body: Mapping[str, Any]) -> bool:
        """Whether a watch event changed what a reconcile depends on: the spec or one of our annotations
        (not the status, which we write ourselves)."""
        handle = self._handles.get(body["metadata"]["uid"])
        return handle is not None and _trigger_key(body) != handle.seen

    def wake(self, body: Mapping[str, Any]) -> None:
        handle = self._handles.get(body["metadata"]["uid"])
        if handle is not None:
            handle.wake.set()

    async def _reconcile_once(
        self, body: Mapping[str, Any], handle: ResourceHandle, memory: _Memory
    ) -> float:
        meta = body["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        if self._settings.finalizer not in (meta.get("finalizers") or ()):
            # kopf adds its finalizer right after the resource appears; writing before then only
            # loses the race (a 409 on the create intent), and nothing may be created unguarded.
            return 0.5
        annotations = meta.get("annotations") or {}
        spec = TogetherEndpointSpec.model_validate(body.get("spec") or {})
        # The watch brings our own status writes back with a delay; until then, what we wrote is newer.
        previous = memory.written or StatusWriter.parse(body.get("status"))
        base_inputs = Inputs(
            spec=spec,
            generation=meta.get("generation", 1),
            namespace=namespace,
            name=name,
            previous=previous,
            remote=NotCreated(),
            now=self._clock(),
            restart_requested_at=annotations.get(RESTART_REQUESTED_ANNOTATION),
            endpoint_owned_by=self._adoption_conflict(spec, previous, uid),
            create_answered=memory.create_answered,
        )
        if annotations.get(PAUSED_ANNOTATION) == "true":
            if not memory.paused:
                memory.paused = True
                _log.info(
                    "%s/%s is paused: no Together calls until the annotation is removed", namespace, name
                )
            return self._settings.resync_interval
        memory.paused = False

        key = await self._credentials.resolve(namespace, spec.api_key_secret_ref)
        if isinstance(key, CredentialsMissing):
            return await self._fail(body, base_inputs, key, memory, action=None)
        try:
            api = self._clients.for_key(key)
        except ValueError as error:  # a key that cannot be sent as a header; the message omits it
            return await self._fail(body, base_inputs, CredentialsMissing(str(error)), memory, action=None)

        endpoint_id = previous.endpoint_id or spec.endpoint_id
        if endpoint_id is not None:
            self._poller.watch(key.fingerprint, api, endpoint_id, uid, handle.wake.set)
        try:
            inputs = await self._observe(api, key, base_inputs, endpoint_id, uid, memory)
        except TogetherError as error:
            return await self._fail(body, base_inputs, error, memory, action=None)

        plan = reconcile.plan(inputs)
        for action in plan.actions:
            try:
                plan = await self._act(body, api, key, inputs, plan, action, memory)
            except TogetherError as error:
                return await self._fail(body, inputs, error, memory, action=action)
        plan = await self._sync_connection(body, inputs, plan)
        await self._publish(body, plan, memory)
        memory.failures = 0
        if plan.stalled:
            return self._settings.resync_interval
        return self._settings.transition_check if plan.in_transition else self._settings.resync_interval

    async def _observe(
        self,
        api: EndpointsAPI,
        key: ApiKey,
        inputs: Inputs,
        endpoint_id: str | None,
        uid: str,
        memory: _Memory,
    ) -> Inputs:
        spec, previous = inputs.spec, inputs.previous
        remote: RemoteView
        hardware = None
        if endpoint_id is None:
            if previous.create_requested_at is not None:
                remote = CreateInFlight(await self._recovery_candidates(api, spec, uid))
            else:
                remote = NotCreated()
            if spec.management_policy == ManagementPolicy.FULL and not reconcile.stalled_for_this_generation(
                inputs
            ):
                hardware = await self._hardware.offered(key.fingerprint, api, spec.model)
        else:
            remote = await self._read_endpoint(api, key, endpoint_id, inputs.now, memory)
        return replace(inputs, remote=remote, hardware_options=hardware)

    async def _recovery_candidates(
        self, api: EndpointsAPI, spec: TogetherEndpointSpec, uid: str
    ) -> tuple[DedicatedEndpoint, ...]:
        """Endpoints of the model that no other resource owns, read in full for their display names."""
        listed = await api.list_endpoints(type="dedicated", mine=True)
        unowned = [
            item.id for item in listed if item.model == spec.model and not self._other_owners(item.id, uid)
        ]
        return tuple([await api.get_endpoint(endpoint_id) for endpoint_id in unowned])

    def _adoption_conflict(
        self, spec: TogetherEndpointSpec, previous: TogetherEndpointStatus, uid: str
    ) -> str | None:
        """Who already owns the endpoint spec.endpointId names, if this resource has not adopted it yet."""
        if spec.endpoint_id is None or previous.endpoint_id is not None:
            return None
        others = self._other_owners(spec.endpoint_id, uid)
        return others[0] if others else None

    def _other_owners(self, endpoint_id: str, uid: str) -> list[str]:
        return sorted(name for owner_uid, name in self._owners.get(endpoint_id, ()) if owner_uid != uid)

    async def _read_endpoint(
        self, api: EndpointsAPI, key: ApiKey, endpoint_id: str, now: datetime, memory: _Memory
    ) -> RemoteView:
        """The endpoint as the list shows it, read in full only where the list cannot tell enough."""
        listed = self._poller.listed(key.fingerprint, endpoint_id)
        full = memory.full if memory.full is not None and memory.full.id == endpoint_id else None
        fresh = (
            full is not None
            and memory.full_at is not None
            and now - memory.full_at < timedelta(seconds=self._settings.resync_interval)
        )
        list_agrees = listed is not None and full is not None and listed.state == full.state
        transitioning = listed is not None and listed.state in reconcile.TRANSITIONAL_STATES
        if full is not None and fresh and list_agrees and not transitioning and not memory.acted:
            return Found(full)
        try:
            endpoint = await api.get_endpoint(endpoint_id)
        except NotFoundError:
            memory.full = None
            return Gone(endpoint_id)
        memory.full, memory.full_at, memory.acted = endpoint, now, False
        return Found(endpoint)

    async def _act(
        self,
        body: Mapping[str, Any],
        api: EndpointsAPI,
        key: ApiKey,
        inputs: Inputs,
        plan: Plan,
        action: Action,
        memory: _Memory,
    ) -> Plan:
        """Carry out one action and plan again from what the API answered."""
        meta = body["metadata"]
        previous = plan.status
        if isinstance(action, CreateEndpoint):
            # Intent first, guarded by resourceVersion: a stale view of the resource makes this fail
            # with a conflict instead of creating twice.
            await self._write_status(body, plan.status, memory, resource_version=meta.get("resourceVersion"))
            self._post_events(body, plan)
            memory.create_answered = False
            endpoint = await api.create_endpoint(action.request)
            previous = plan.status.model_copy(update={"endpoint_id": endpoint.id})
            plan = reconcile.Plan(status=previous)
            self._poller.watch(key.fingerprint, api, endpoint.id, meta["uid"], self._wake_of(meta["uid"]))
        elif isinstance(action, AdoptEndpoint):
            endpoint = await api.get_endpoint(action.endpoint_id)
        else:
            endpoint = await api.update_endpoint(action.endpoint_id, action.request)
        memory.full, memory.full_at, memory.acted = endpoint, inputs.now, True
        self._poller.poll_soon(key.fingerprint)
        after = reconcile.plan(replace(inputs, previous=previous, remote=Found(endpoint)))
        if isinstance(action, CreateEndpoint):
            # status.endpointId is written the moment the create returns, before anything else.
            await self._write_status(body, after.status, memory)
        return reconcile.Plan(status=after.status, events=plan.events + after.events)

    async def _sync_connection(self, body: Mapping[str, Any], inputs: Inputs, plan: Plan) -> Plan:
        """Publish (or withdraw) the connection ConfigMap to match the spec and the new status."""
        owner = _owner(body)
        wanted = inputs.spec.connection.config_map_name if inputs.spec.connection else None
        published = plan.status.connection_config_map
        if published is not None and published != wanted:
            await self._connections.withdraw(owner, published)
            plan = replace(plan, status=plan.status.model_copy(update={"connection_config_map": None}))
        data = connection_data(inputs.spec, plan.status, self._settings.base_url)
        if wanted is None or data is None:
            return plan
        conflict = await self._connections.publish(owner, wanted, data)
        if conflict is not None:
            return reconcile.with_connection_conflict(inputs, plan, conflict)
        return replace(plan, status=plan.status.model_copy(update={"connection_config_map": wanted}))

    async def _fail(
        self,
        body: Mapping[str, Any],
        inputs: Inputs,
        error: TogetherError | CredentialsMissing,
        memory: _Memory,
        *,
        action: Action | None,
    ) -> float:
        if isinstance(error, TogetherError):
            _log.warning("%s: %s", _name(body), error)
            if isinstance(action, CreateEndpoint) and error.status_code is not None:
                memory.create_answered = True
        failure = reconcile.plan_failure(inputs, error, action=action, retry=self._settings.retry)
        await self._publish(body, reconcile.Plan(status=failure.status, events=failure.events), memory)
        memory.failures += 1
        return self._settings.retry.backoff(memory.failures, failure.retry_after, random.uniform(0.8, 1.2))

    async def _publish(self, body: Mapping[str, Any], plan: Plan, memory: _Memory) -> None:
        await self._write_status(body, plan.status, memory)
        self._post_events(body, plan)
        self._metrics.reconciles.labels(_outcome_reason(plan.status)).inc()

    async def _write_status(
        self,
        body: Mapping[str, Any],
        status: TogetherEndpointStatus,
        memory: _Memory,
        *,
        resource_version: str | None = None,
    ) -> None:
        meta = body["metadata"]
        if resource_version is None and status == memory.written:
            return  # the watch has not brought our last write back yet
        if await self._status.write(
            meta["namespace"], meta["name"], body.get("status"), status, resource_version=resource_version
        ):
            self._metrics.status_patches.inc()
        memory.written = status
        self._latest[meta["uid"]] = status

    def _post_events(self, body: Mapping[str, Any], plan: Plan) -> None:
        for event in plan.events:
            self._post_event(body, event)

    def _wake_of(self, uid: str) -> Callable[[], None]:
        handle = self._handles.get(uid)
        return handle.wake.set if handle is not None else (lambda: None)

    # --- deletion -------------------------------------------------------------------------------

    async def delete(self, body: Mapping[str, Any]) -> DeleteOutcome:
        """One step of deleting the remote endpoint; `done` once the finalizer may go."""
        spec = TogetherEndpointSpec.model_validate(body.get("spec") or {})
        status = StatusWriter.parse(body.get("status"))
        outcome = await self._delete_endpoint(body, spec, status)
        if outcome.done and status.connection_config_map is not None:
            await self._connections.withdraw(_owner(body), status.connection_config_map)
        return outcome

    async def _find_interrupted_create(
        self,
        api: EndpointsAPI,
        body: Mapping[str, Any],
        spec: TogetherEndpointSpec,
        status: TogetherEndpointStatus,
    ) -> str | DeleteOutcome:
        """The endpoint a create interrupted before recording its id made, so deleting the resource does
        not leave it running (and billed); an outcome instead when there is none or no telling which."""
        meta = body["metadata"]
        inputs = Inputs(
            spec=spec,
            generation=meta.get("generation", 1),
            namespace=meta["namespace"],
            name=meta["name"],
            previous=status,
            remote=NotCreated(),
            now=self._clock(),
        )
        candidates = await self._recovery_candidates(api, spec, meta["uid"])
        matches = reconcile.interrupted_create_matches(inputs, candidates)
        if not matches:
            if reconcile.create_may_still_land(inputs):
                return DeleteOutcome(
                    done=False,
                    message="waiting for the outcome of the interrupted create before releasing the "
                    "resource: its endpoint may yet show up",
                    retry_after=min(5.0, self._settings.retry.transient_seconds),
                )
            return DeleteOutcome(done=True, message="the interrupted create made no endpoint")
        if len(matches) > 1:
            ids = ", ".join(sorted(m.id for m in matches))
            return DeleteOutcome(
                done=False,
                message=f"several endpoints may be this resource's interrupted create ({ids}): delete the "
                "right one with the together CLI, or set deletionPolicy: Orphan",
                retry_after=self._settings.retry.auth_seconds,
            )
        return matches[0].id

    async def _delete_endpoint(
        self, body: Mapping[str, Any], spec: TogetherEndpointSpec, status: TogetherEndpointStatus
    ) -> DeleteOutcome:
        meta = body["metadata"]
        uid = meta["uid"]
        # Only an endpoint this resource recorded (or the one its interrupted create made) is deleted:
        # a spec.endpointId that was never adopted may belong to another resource.
        endpoint_id = status.endpoint_id
        if endpoint_id is None and status.create_requested_at is None:
            return DeleteOutcome(done=True, message="no remote endpoint was created")
        if (
            spec.deletion_policy == DeletionPolicy.ORPHAN
            or spec.management_policy == ManagementPolicy.OBSERVE_ONLY
        ):
            return DeleteOutcome(done=True, message=f"endpoint {endpoint_id} left running (orphaned)")
        key = await self._credentials.resolve(meta["namespace"], spec.api_key_secret_ref)
        if isinstance(key, CredentialsMissing):
            return DeleteOutcome(
                done=False,
                message=f"cannot delete endpoint {endpoint_id or '(interrupted create)'}: {key.message}; "
                "or set deletionPolicy: Orphan to leave it running",
                retry_after=self._settings.retry.credentials_seconds,
            )
        api = self._clients.for_key(key)
        try:
            if endpoint_id is None:
                found = await self._find_interrupted_create(api, body, spec, status)
                if isinstance(found, DeleteOutcome):
                    return found
                endpoint_id = found
            await api.get_endpoint(endpoint_id)
            if uid not in self._deletes_sent:
                await api.delete_endpoint(endpoint_id)
                self._deletes_sent.add(uid)
            await api.get_endpoint(endpoint_id)
        except NotFoundError:
            self._deletes_sent.discard(uid)
            return DeleteOutcome(done=True, message=f"endpoint {endpoint_id} deleted")
        except AuthError as error:
            return DeleteOutcome(
                done=False,
                message=f"cannot delete endpoint {endpoint_id}: {error}; fix the API key, "
                "or set deletionPolicy: Orphan to leave it running",
                retry_after=self._settings.retry.auth_seconds,
            )
        except TogetherError as error:
            retry_after = getattr(error, "retry_after", None) or self._settings.retry.transient_seconds
            return DeleteOutcome(done=False, message=str(error), retry_after=retry_after)
        return DeleteOutcome(
            done=False,
            message=f"waiting for endpoint {endpoint_id} to be gone",
            retry_after=min(5.0, self._settings.retry.transient_seconds),
        )


@dataclass(frozen=True)
class DeleteOutcome:
    done: bool
    message: str
    retry_after: float = 0.0


def _trigger_key(body: Mapping[str, Any]) -> tuple[object, ...]:
    """What a user can change that needs a reconcile: the spec (generation) and our annotations."""
    meta = body["metadata"]
    annotations = meta.get("annotations") or {}
    return (
        meta.get("generation"),
        annotations.get(PAUSED_ANNOTATION),
        annotations.get(RESTART_REQUESTED_ANNOTATION),
    )


def _outcome_reason(status: TogetherEndpointStatus) -> str:
    """The reason a reconcile ended with: what is stuck, else what is in flight, else the verdict."""
    for kind in (ConditionType.STALLED, ConditionType.RECONCILING):
        condition = status.condition(kind)
        if condition is not None and condition.status == "True":
            return condition.reason
    ready = status.condition(ConditionType.READY)
    return ready.reason if ready is not None else "Unknown"


def _owner(body: Mapping[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])


def _name(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return f"{meta.get('namespace')}/{meta.get('name')}"
