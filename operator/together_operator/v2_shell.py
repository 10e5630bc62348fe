"""The I/O shell of a TogetherEndpoint on Together v2: gathers the inputs of `v2_core`, carries out the
one call each plan returns, and plans again with the answer, until nothing is left to do.

The shell (`shell.Reconciler`) hands a resource over here once `v2_core.api_in_use` says v2, with a
`V2Host` to write status, post events and publish the connection ConfigMap through. Reads: the
project's endpoint list from `V2EndpointLists` (one paginated list per project per interval, which
carries every deployment's state and autoscaling), also before anything is created, then from a list
asked after our last call (a stale one could hide our own lost create), shared by every resource waiting
for one; a single GET of the endpoint after each of our calls (the list is older than our change), of an
endpoint to adopt that the shared list does not show, and of a deployment for its `status.message`
(FAILED, DEGRADED) once per change of its state and per resync interval.

Reading the catalogue (`ResolveTarget`, its answer remembered per spec generation) and claiming an
adopted endpoint are reads: they change nothing at Together, so they neither kick the list nor count as
a step of the status the next plan compares with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import httpx

from together_operator.core import (
    AdoptionClaim,
    ConnectionSteps,
    Event,
    KeepFinalizer,
    Released,
    RetryPolicy,
)
from together_operator.credentials import ApiKey, CredentialsMissing
from together_operator.poller import PollIntervals, Wake
from together_operator.resource import (
    ConditionType,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)
from together_operator.together import EndpointsAPI, NotFoundError, RateLimiter, TogetherError
from together_operator.together.v2_client import DedicatedInferenceAPI, TogetherV2Client
from together_operator.together.v2_models import Config, DeploymentState, Endpoint, SupportedModel
from together_operator.v2_core import (
    ClaimEndpoint,
    CreateV2Deployment,
    CreateV2Endpoint,
    DeleteV2Deployment,
    DeleteV2Endpoint,
    DeploymentTarget,
    RetireV1Endpoint,
    SetTrafficSplit,
    SetV2Autoscaling,
    SetV2InactiveTimeout,
    V2Action,
    V2Call,
    V2DeletionInputs,
    V2Inputs,
    V2Plan,
    V2Read,
    V2Released,
    WaitForCreateOutcome,
    WaitForStopped,
    adoption_id,
    configs_to_read,
    endpoint_name,
    known_name,
    migrating_from,
    models_named,
    needs_adoption_consent,
    plan_v2,
    plan_v2_deletion,
    plan_v2_failure,
    released_without_calls,
    resolve_target,
    v2_connection_steps,
    with_v2_connection,
)

_log = logging.getLogger(__name__)
_Key = TypeVar("_Key")
_Value = TypeVar("_Value")

MAX_STEPS = 8
"""Calls in one reconcile at most (endpoint, deployment, split, autoscaling, with room to spare)."""
STEADY_STATES = frozenset({DeploymentState.READY, DeploymentState.STOPPED, DeploymentState.FAILED})
MESSAGE_STATES = frozenset({DeploymentState.FAILED, DeploymentState.DEGRADED})


class V1Clients(Protocol):
    """The v1 clients (`clients.TogetherClients`): a migration deletes the v1 endpoint it replaces."""

    def for_key(self, key: ApiKey) -> EndpointsAPI: ...


class V2Host(Protocol):
    """What the v2 shell needs of the resource's loop in `shell.Reconciler`."""

    def deleting(self) -> bool: ...

    async def write_intent(self, status: TogetherEndpointStatus) -> None:
        """Write status guarded by resourceVersion: a stale view fails instead of creating twice."""

    async def publish(self, status: TogetherEndpointStatus, events: tuple[Event, ...]) -> None:
        """Write the status and post the events."""

    def backoff(self, suggested: float) -> float:
        """The wait after one more failure in a row (`RetryPolicy.backoff`, jittered)."""

    async def connection(self, steps: ConnectionSteps) -> str | None: ...

    async def claim(self, endpoint_id: str) -> AdoptionClaim:
        """Claim the endpoint for the resource (`ownership.Ownership.claim`)."""

    async def allows_adoption(self) -> bool:
        """Whether the resource's namespace lets the operator-wide key adopt (core.ADOPTION_LABEL)."""


@dataclass(frozen=True)
class V2Settings:
    inference_url: str
    """Published as TOGETHER_BASE_URL in v2 connection ConfigMaps (--v2-inference-url)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    resync_interval: float = 600.0
    transition_check: float = 30.0


class V2Clients:
    """One pooled v2 client per API key (its project looked up once), shared by every resource."""

    def __init__(
        self,
        base_url: str,
        rate_limiter: RateLimiter,
        transport: Callable[[], httpx.AsyncBaseTransport] = httpx.AsyncHTTPTransport,
    ) -> None:
        self._base_url = base_url
        self._rate_limiter = rate_limiter
        self._transport = transport
        self._clients: dict[str, TogetherV2Client] = {}

    def for_key(self, key: ApiKey) -> DedicatedInferenceAPI:
        client = self._clients.get(key.fingerprint)
        if client is None:
            client = self._clients[key.fingerprint] = TogetherV2Client(
                self._base_url, key.value, rate_limiter=self._rate_limiter, transport=self._transport()
            )
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


class CatalogueCache:
    """The v2 catalogue per key for a short while (the supported models, and the config revisions whose
    draft model the choice of config reads); concurrent callers share one request."""

    def __init__(self, ttl_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._models: dict[str, tuple[float, asyncio.Future[list[SupportedModel]]]] = {}
        self._configs: dict[tuple[str, str], tuple[float, asyncio.Future[Config]]] = {}

    async def supported_models(self, credential: str, api: DedicatedInferenceAPI) -> list[SupportedModel]:
        models: list[SupportedModel] = await self._shared(self._models, credential, api.list_supported_models)
        return list(models)  # a copy: the cached list is shared

    async def config(self, credential: str, api: DedicatedInferenceAPI, config: str) -> Config:
        return await self._shared(self._configs, (credential, config), lambda: api.get_config(config))

    def _shared(
        self,
        entries: dict[_Key, tuple[float, asyncio.Future[_Value]]],
        key: _Key,
        call: Callable[[], Awaitable[_Value]],
    ) -> Awaitable[_Value]:
        now = self._clock()
        entry = entries.get(key)
        if entry is None or now - entry[0] >= self._ttl or (entry[1].done() and entry[1].exception()):
            entry = entries[key] = (now, asyncio.ensure_future(call()))
        return asyncio.shield(entry[1])


@dataclass
class _Project:
    api: DedicatedInferenceAPI
    watchers: dict[str, dict[str, Wake]] = field(default_factory=dict)
    """endpoint name -> {resource uid -> wake}"""
    listed: dict[str, Endpoint] | None = None
    listed_at: float = 0.0
    """time.monotonic() when the list was asked for: a change made after it may be missing from it."""
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    walking_since: float | None = None
    """time.monotonic() when the list under way was asked for; None between lists."""
    walked: asyncio.Future[TogetherError | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """The outcome of the list under way (or of the next one): its error, or None."""


class V2EndpointLists:
    """One paginated endpoint list per project per interval, feeding every v2 resource of it: it wakes
    the resources whose endpoint (its deployments' state and autoscaling included) changed."""

    def __init__(self, intervals: PollIntervals) -> None:
        self._intervals = intervals
        self._projects: dict[str, _Project] = {}

    def watch(self, project_id: str, api: DedicatedInferenceAPI, name: str, uid: str, wake: Wake) -> None:
        project = self._projects.get(project_id)
        if project is None:
            project = self._projects[project_id] = _Project(api=api)
        for other, wakes in list(project.watchers.items()):  # an adopted endpoint's name replaces ours
            if other != name and wakes.pop(uid, None) is not None and not wakes:
                del project.watchers[other]
        project.watchers.setdefault(name, {})[uid] = wake
        if project.task is None or project.task.done():
            project.task = asyncio.create_task(
                self._poll(project_id, project), name=f"v2-poller-{project_id}"
            )

    def unwatch(self, uid: str) -> None:
        for project_id, project in list(self._projects.items()):
            for name, wakes in list(project.watchers.items()):
                wakes.pop(uid, None)
                if not wakes:
                    del project.watchers[name]
            if not project.watchers:
                self._stop(project_id)

    def listed(self, project_id: str, since: float) -> Mapping[str, Endpoint] | None:
        """The project's endpoints by name in the latest list, if that list was asked for after `since`
        (a time.monotonic() of our last change); None otherwise."""
        project = self._projects.get(project_id)
        if project is None or project.listed is None or project.listed_at <= since:
            return None
        return project.listed

    async def listed_after(self, project_id: str, since: float) -> Mapping[str, Endpoint]:
        """The project's endpoints by name from a list asked for after `since`: the latest one, else the
        one under way if it was asked late enough, else the next one (one list for every caller waiting).
        The project is watched (`watch`)."""
        project = self._projects[project_id]
        while project.listed is None or project.listed_at <= since:
            if project.walking_since is None or project.walking_since <= since:
                project.kick.set()
            error = await asyncio.shield(project.walked)
            if error is not None:
                raise error
        return project.listed

    def poll_soon(self, project_id: str) -> None:
        project = self._projects.get(project_id)
        if project is not None:
            project.kick.set()

    async def close(self) -> None:
        for project_id in list(self._projects):
            self._stop(project_id)
        await asyncio.sleep(0)

    def _stop(self, project_id: str) -> None:
        project = self._projects.pop(project_id)
        if project.task is not None:
            project.task.cancel()
        project.walked.cancel()

    async def _poll(self, project_id: str, project: _Project) -> None:
        while project.watchers:
            # Cleared before the list: a kick while it is under way asks for the next one.
            project.kick.clear()
            asked_at = project.walking_since = time.monotonic()
            outcome: TogetherError | None = None
            try:
                endpoints = await project.api.list_endpoints()
            except TogetherError as error:
                _log.warning("listing the v2 endpoints of project %s failed: %s", project_id, error)
                outcome = error
            else:
                before, project.listed = project.listed, {e.short_name: e for e in endpoints}
                project.listed_at = asked_at
                for name, wakes in list(project.watchers.items()):
                    if before is None or before.get(name) != project.listed.get(name):
                        for wake in list(wakes.values()):
                            wake()
            project.walking_since = None
            walked, project.walked = project.walked, asyncio.get_running_loop().create_future()
            walked.set_result(outcome)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(project.kick.wait(), timeout=self._next_wait(project))

    def _next_wait(self, project: _Project) -> float:
        moving = any(
            deployment.state not in STEADY_STATES
            for name, endpoint in (project.listed or {}).items()
            if name in project.watchers
            for deployment in endpoint.deployments
        )
        base = self._intervals.transition if moving else self._intervals.steady
        spread = base * self._intervals.jitter
        return max(0.1, base + random.uniform(-spread, spread))


@dataclass(frozen=True)
class _Message:
    state: str
    text: str
    read_at: float
    """time.monotonic() of the GET"""


@dataclass(frozen=True)
class V2Resource:
    """What the v2 shell is told about one resource by `shell.Reconciler`."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: TogetherEndpointSpec
    previous: TogetherEndpointStatus
    wake: Wake
    endpoint_owned_by: str | None = None
    """`namespace/name` of another resource whose status recorded the id spec.endpointId names."""


class V2Reconciler:
    def __init__(
        self,
        settings: V2Settings,
        clients: V2Clients,
        lists: V2EndpointLists,
        v1_clients: V1Clients,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC).replace(microsecond=0),
        catalogue: CatalogueCache | None = None,
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._lists = lists
        self._v1_clients = v1_clients
        self._clock = clock
        self._catalogue = catalogue or CatalogueCache()
        self._changed_at: dict[str, float] = {}
        """uid -> time.monotonic() after its last call to change something (answered or not)"""
        self._timeout_settled: dict[str, int] = {}
        """uid -> the generation whose inactiveTimeout is applied (absent: its status.observedGeneration)"""
        self._targets: dict[str, tuple[int, DeploymentTarget, frozenset[str]]] = {}
        """uid -> (generation, its resolved target, `models_named`): the catalogue is read once per spec"""
        self._messages: dict[str, dict[str, _Message]] = {}
        """uid -> deployment id -> the `status.message` read for its FAILED or DEGRADED state"""

    async def reconcile(self, host: V2Host, key: ApiKey, resource: V2Resource) -> float:
        """One reconcile: observe, then one call per plan until the plan asks for none; the seconds until
        the next look."""
        api = self._clients.for_key(key)
        name = known_name(resource.spec, resource.previous, resource.namespace, resource.name)
        inputs = V2Inputs(
            spec=resource.spec,
            generation=resource.generation,
            namespace=resource.namespace,
            name=resource.name,
            previous=resource.previous,
            now=self._clock(),
            project_id=resource.previous.project_id or "",
            endpoint=None,
            endpoint_owned_by=resource.endpoint_owned_by,
        )
        remembered = self._targets.get(resource.uid)
        if remembered is not None and remembered[0] == resource.generation:
            inputs = replace(inputs, target=remembered[1], spec_models=remembered[2])
        action: V2Action | None = None
        carried_out: list[Event] = []
        """The events of the plans whose call was made: each is the next plan's previous status."""
        try:
            project = await api.project()
            inputs = replace(inputs, project_id=project.id)
            self._lists.watch(project.id, api, name, resource.uid, resource.wake)
            since = self._changed_at.get(resource.uid, 0.0)
            adopting = adoption_id(resource.spec) if resource.previous.endpoint_id is None else None
            if adopting is not None:
                endpoint = await self._find_to_adopt(api, project.id, adopting, since)
            else:
                endpoint = await self._find(api, project.id, name, resource.previous, since)
            inputs = replace(inputs, endpoint=endpoint)
            if needs_adoption_consent(resource.spec):
                inputs = replace(inputs, namespace_allows_adoption=await host.allows_adoption())
            inputs = await self._with_message(api, inputs, resource.uid)
            inputs = await self._with_inactive_timeout(api, inputs, resource.uid)
            plan = plan_v2(inputs)
            for _ in range(MAX_STEPS):
                action = plan.action
                if action is None or host.deleting():
                    break
                if isinstance(action, V2Read):
                    inputs = await self._read(host, api, key, inputs, action, resource)
                else:
                    try:
                        inputs = await self._act(host, api, key, inputs, plan, action, resource.uid)
                    finally:  # a failed call may have changed something too: the next look reads anew
                        self._changed_at[resource.uid] = time.monotonic()
                    carried_out.extend(plan.events)
                    self._lists.poll_soon(project.id)
                plan = plan_v2(replace(inputs, now=self._clock()))
        except TogetherError as error:
            _log.warning("%s/%s: %s", resource.namespace, resource.name, error)
            self._timeout_settled[resource.uid] = -1  # the failure's status names this generation: read again
            failure = plan_v2_failure(inputs, error, action, self._settings.retry)
            await host.publish(failure.plan.status, (*carried_out, *failure.plan.events))
            return host.backoff(failure.retry_after)
        steps = v2_connection_steps(resource.spec, plan, self._settings.inference_url)
        plan = with_v2_connection(inputs, plan, steps, await host.connection(steps))
        await host.publish(plan.status, (*carried_out, *plan.events))
        if plan.status.rollout is None:  # a deployment a rollout makes live was created with an older spec
            self._timeout_settled[resource.uid] = resource.generation
        reconciling = plan.status.condition(ConditionType.RECONCILING)
        if plan.action is not None or (reconciling is not None and reconciling.status == "True"):
            return self._settings.transition_check
        return self._settings.resync_interval

    async def _find(
        self,
        api: DedicatedInferenceAPI,
        project_id: str,
        name: str,
        previous: TogetherEndpointStatus,
        since: float,
    ) -> Endpoint | None:
        """Our endpoint by name: from the shared list when it is newer than our last change; else by a
        GET of the recorded id; before one is recorded, from the shared list once it is newer than our
        last change, waiting for the next one if need be (a stale one could hide our own lost create,
        and creating again would then fail on the name)."""
        if previous.endpoint_id is None:
            return (await self._lists.listed_after(project_id, since)).get(name)
        listed = self._lists.listed(project_id, since)
        if listed is not None:
            return listed.get(name)
        endpoint = await _endpoint_or_none(api, previous.endpoint_id)
        return endpoint if endpoint is not None and endpoint.short_name == name else None

    async def _find_to_adopt(
        self, api: DedicatedInferenceAPI, project_id: str, endpoint_id: str, since: float
    ) -> Endpoint | None:
        """The endpoint spec.endpointId names: from the shared list, else (not listed yet, or not in a
        list that may be stale) a GET of the id."""
        listed = self._lists.listed(project_id, since)
        found = next((e for e in listed.values() if e.id == endpoint_id), None) if listed else None
        return found or await _endpoint_or_none(api, endpoint_id)

    async def _with_message(self, api: DedicatedInferenceAPI, inputs: V2Inputs, uid: str) -> V2Inputs:
        """The platform's message of each FAILED or DEGRADED deployment (the list lacks it), read by a
        single GET once per change of its state and per resync interval."""
        endpoint = inputs.endpoint
        if endpoint is None:
            return inputs
        known = self._messages.get(uid, {})
        read: dict[str, _Message] = {}
        for summary in endpoint.deployments:
            if summary.state not in MESSAGE_STATES:
                continue
            message = known.get(summary.id)
            now = time.monotonic()
            if (
                message is None
                or message.state != summary.state
                or now - message.read_at >= self._settings.resync_interval
            ):
                deployment = await api.get_deployment(endpoint.id, summary.id)
                message = _Message(summary.state, deployment.status.message, now)
            read[summary.id] = message
        self._messages[uid] = read
        return replace(inputs, deployment_messages={id_: m.text for id_, m in read.items()})

    async def _with_inactive_timeout(
        self, api: DedicatedInferenceAPI, inputs: V2Inputs, uid: str
    ) -> V2Inputs:
        """The live deployment's inactiveTimeout (the list lacks it), read by a single GET only while a
        spec generation is not known to be applied: a change of the spec costs one GET, a steady
        resource none (a change made by hand is not watched)."""
        endpoint, live = inputs.endpoint, inputs.previous.deployment_id
        if endpoint is None or live is None or all(d.id != live for d in endpoint.deployments):
            return inputs
        if self._timeout_settled.get(uid, inputs.previous.observed_generation) == inputs.generation:
            return inputs
        deployment = await api.get_deployment(endpoint.id, live)
        return replace(inputs, inactive_timeouts={live: deployment.inactive_timeout or 0})

    async def _read(
        self,
        host: V2Host,
        api: DedicatedInferenceAPI,
        key: ApiKey,
        inputs: V2Inputs,
        action: V2Read,
        resource: V2Resource,
    ) -> V2Inputs:
        """Read what the plan lacks; the inputs of the next plan, whose previous status is still the
        one before this look (nothing changed, so nothing transitions)."""
        if isinstance(action, ClaimEndpoint):
            return replace(inputs, adoption_claim=await host.claim(action.endpoint_id))
        supported = await self._catalogue.supported_models(key.fingerprint, api)
        drafts = {
            config: (await self._catalogue.config(key.fingerprint, api, config)).draft_model
            for config in configs_to_read(inputs.spec, supported)
        }
        target = resolve_target(inputs.spec, supported, drafts)
        spec_models = models_named(inputs.spec, supported)
        if isinstance(target, DeploymentTarget):  # a rejection is read again: the offer may change
            self._targets[resource.uid] = (resource.generation, target, spec_models)
        return replace(inputs, target=target, spec_models=spec_models)

    async def _act(
        self,
        host: V2Host,
        api: DedicatedInferenceAPI,
        key: ApiKey,
        inputs: V2Inputs,
        plan: V2Plan,
        action: V2Call,
        uid: str,
    ) -> V2Inputs:
        """Carry out one call; the inputs of the next plan (this plan's status fed back, fresh reads)."""
        inputs = replace(inputs, previous=plan.status)
        if isinstance(action, CreateV2Endpoint):
            await host.write_intent(plan.status)  # the intent, before the one POST
            return replace(inputs, endpoint=await api.create_endpoint(action.name))
        if isinstance(action, CreateV2Deployment):
            await api.create_deployment(action.endpoint_id, action.request)
        elif isinstance(action, SetTrafficSplit):
            return replace(
                inputs,
                endpoint=await api.set_traffic_split(
                    action.endpoint_id, list(action.split), etag=action.etag
                ),
            )
        elif isinstance(action, RetireV1Endpoint):
            gone = await _retire_v1(self._v1_clients.for_key(key), action.endpoint_id)
            return replace(inputs, v1_endpoint_gone=gone)
        elif isinstance(action, DeleteV2Deployment):
            with contextlib.suppress(NotFoundError):  # gone already: a repeat after a lost answer
                await api.delete_deployment(action.endpoint_id, action.deployment_id)
        elif isinstance(action, SetV2InactiveTimeout):
            deployment = await api.set_inactive_timeout(
                action.endpoint_id, action.deployment_id, action.minutes
            )
            timeouts = {**inputs.inactive_timeouts, deployment.id: deployment.inactive_timeout or 0}
            inputs = replace(inputs, inactive_timeouts=timeouts)
        else:
            await api.set_autoscaling(action.endpoint_id, action.deployment_id, action.autoscaling, etag=None)
        return await self._with_message(
            api, replace(inputs, endpoint=await api.get_endpoint(action.endpoint_id)), uid
        )

    def unwatch(self, uid: str) -> None:
        self._lists.unwatch(uid)
        self._changed_at.pop(uid, None)
        self._timeout_settled.pop(uid, None)
        self._targets.pop(uid, None)
        self._messages.pop(uid, None)

    # --- deletion -----------------------------------------------------------------------------------

    async def delete(
        self,
        spec: TogetherEndpointSpec,
        status: TogetherEndpointStatus,
        namespace: str,
        name: str,
        key: Callable[[], Awaitable[ApiKey | CredentialsMissing]],
        allows_adoption: Callable[[], Awaitable[bool]],
    ) -> Released | KeepFinalizer:
        """Steps of deletion in the platform's order until one has to wait; `Released` once it is gone
        (with the claim on an adopted endpoint to give up)."""
        withdraw, claim = status.connection_config_map, adoption_id(spec)
        consent = needs_adoption_consent(spec) and await allows_adoption()
        released = released_without_calls(spec, status, namespace_allows_adoption=consent)
        v1_endpoint = migrating_from(status)
        if released is not None:
            return Released(released.message, withdraw_connection=withdraw, release_claim=claim)
        resolved = await key()
        if isinstance(resolved, CredentialsMissing):
            return KeepFinalizer(
                f"cannot delete the v2 endpoint: {resolved.message}; "
                "or set deletionPolicy: Orphan to leave it",
                self._settings.retry.credentials_seconds,
            )
        api = self._clients.for_key(resolved)
        try:
            endpoint = await self._our_endpoint(api, spec, status, namespace, name)
            for _ in range(MAX_STEPS):
                step = plan_v2_deletion(
                    V2DeletionInputs(
                        spec=spec,
                        status=status,
                        endpoint=endpoint,
                        now=self._clock(),
                        namespace_allows_adoption=consent,
                    )
                )
                # An unfinished migration: the v1 endpoint it was replacing goes too.
                if (
                    isinstance(step, V2Released)
                    and v1_endpoint is not None
                    and not await _retire_v1(self._v1_clients.for_key(resolved), v1_endpoint)
                ):
                    return KeepFinalizer(
                        f"waiting for v1 endpoint {v1_endpoint} to be gone",
                        self._settings.transition_check,
                    )
                if isinstance(step, V2Released):
                    return Released(step.message, withdraw_connection=withdraw, release_claim=claim)
                if isinstance(step, WaitForCreateOutcome):
                    return KeepFinalizer(
                        f"waiting until {step.until.isoformat()} for the outcome of the v2 create: its "
                        "endpoint may yet show up",
                        self._settings.transition_check,
                    )
                if isinstance(step, WaitForStopped):
                    return KeepFinalizer(
                        f"waiting for deployment {step.deployment_id} to stop",
                        self._settings.transition_check,
                    )
                endpoint = await self._deletion_call(api, step)
        except TogetherError as error:
            return KeepFinalizer(
                f"deleting the v2 endpoint: {error}", self._settings.retry.transient_wait(error)
            )
        return KeepFinalizer("deleting the v2 endpoint", self._settings.transition_check)

    async def _our_endpoint(
        self,
        api: DedicatedInferenceAPI,
        spec: TogetherEndpointSpec,
        status: TogetherEndpointStatus,
        namespace: str,
        name: str,
    ) -> Endpoint | None:
        """By the recorded id; after an interrupted create (intent, no id), by our name."""
        if status.endpoint_id is not None:
            return await _endpoint_or_none(api, status.endpoint_id)
        if status.create_requested_at is None:  # no create was sent: an endpoint of our name is not ours
            return None
        wanted = endpoint_name(spec, namespace, name)
        return next((e for e in await api.list_endpoints() if e.short_name == wanted), None)

    async def _deletion_call(
        self,
        api: DedicatedInferenceAPI,
        step: SetV2Autoscaling | SetTrafficSplit | DeleteV2Deployment | DeleteV2Endpoint,
    ) -> Endpoint | None:
        if isinstance(step, SetV2Autoscaling):
            await api.set_autoscaling(step.endpoint_id, step.deployment_id, step.autoscaling, etag=None)
        elif isinstance(step, SetTrafficSplit):
            await api.set_traffic_split(step.endpoint_id, list(step.split), etag=None)
        elif isinstance(step, DeleteV2Deployment):
            with contextlib.suppress(NotFoundError):  # gone already: a repeat after a lost answer
                await api.delete_deployment(step.endpoint_id, step.deployment_id)
        else:
            with contextlib.suppress(NotFoundError):
                await api.delete_endpoint(step.endpoint_id)
        return await _endpoint_or_none(api, step.endpoint_id)


async def _retire_v1(api: EndpointsAPI, endpoint_id: str) -> bool:
    """DELETE a v1 endpoint (again, if need be: a repeat is harmless); whether it is gone now."""
    with contextlib.suppress(NotFoundError):
        await api.delete_endpoint(endpoint_id)
    try:
        await api.get_endpoint(endpoint_id)
    except NotFoundError:
        return True
    return False


async def _endpoint_or_none(api: DedicatedInferenceAPI, endpoint_id: str) -> Endpoint | None:
    try:
        return await api.get_endpoint(endpoint_id)
    except NotFoundError:
        return None
