"""The I/O shell around the pure core (`core`): for one TogetherEndpoint it gathers the inputs, asks the
core, carries out what the core returned, in order, and writes the status the core decided.

One reconcile, in controller-runtime's shape: read (the credential; the remote endpoint from the
poller's list, with a GET only where `core.usable_cached_read` says so; the hardware offered when a
create may follow) -> `core.plan` -> the budget gate (`budget_shell`, at the price `pricing_shell`
looks up) -> act in order (a create: its turn among the creates under way, its intent written first,
guarded by resourceVersion, then the POST unless its call slot came past `core.CREATE_SEND_DEADLINE`,
then the endpoint id at once) ->
the connection ConfigMap -> one status write and the events. Deletion runs `core.plan_deletion` the
same way, one read or call per step. A resource on Together v2 is handed to `v2_shell`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from together_operator import budget, core, pricing, v2_core
from together_operator import schedule as schedules
from together_operator.budget import BudgetBook
from together_operator.budget_shell import BudgetGate
from together_operator.connection import Owner
from together_operator.core import (
    Action,
    AdoptEndpoint,
    CachedRead,
    ConnectionSteps,
    CreateEndpoint,
    CreateInFlight,
    DeletionInputs,
    Event,
    FindInterruptedCreate,
    Found,
    Gone,
    Inputs,
    KeepFinalizer,
    NotCreated,
    Observation,
    OtherResources,
    Plan,
    ReadEndpoint,
    ReadNamespace,
    Released,
    RemoteView,
    ResolveKey,
    RetryPolicy,
    SendDelete,
)
from together_operator.credentials import ApiKey, CredentialsMissing
from together_operator.hardware import HardwareCatalogue
from together_operator.metrics import OperatorMetrics
from together_operator.poller import Wake
from together_operator.pricing import KnownPrice, NamespaceCost
from together_operator.pricing_shell import PriceLookUp
from together_operator.resource import (
    PAUSED_ANNOTATION,
    RESTART_REQUESTED_ANNOTATION,
    ConditionType,
    SecretKeyRef,
    TogetherAPI,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)
from together_operator.status_writer import StatusWriter, StoredResource
from together_operator.together import (
    DedicatedEndpoint,
    EndpointsAPI,
    ListEndpoint,
    NotFoundError,
    TogetherError,
)
from together_operator.v2_shell import V2Reconciler, V2Resource

_log = logging.getLogger(__name__)

EventSink = Callable[[Mapping[str, Any], Event], None]
"""Posts a Kubernetes event about the resource (kopf.event in the operator)."""


class Credentials(Protocol):
    async def resolve(self, namespace: str, ref: SecretKeyRef | None) -> ApiKey | CredentialsMissing: ...


class EndpointLists(Protocol):
    """The shared poller (`poller.Poller`): who watches which endpoint, and the latest list."""

    def watch(self, credential: str, api: EndpointsAPI, endpoint_id: str, uid: str, wake: Wake) -> None: ...

    def unwatch(self, uid: str) -> None: ...

    def listed(self, credential: str, endpoint_id: str) -> ListEndpoint | None: ...

    def poll_soon(self, credential: str) -> None: ...

    def resync_due(self, credential: str, endpoint_id: str) -> bool: ...

    def was_read(self, credential: str, endpoint_id: str) -> None: ...


class Clients(Protocol):
    def for_key(self, key: ApiKey) -> EndpointsAPI: ...


class StatusSink(Protocol):
    async def read(self, namespace: str, name: str) -> StoredResource: ...

    async def write(
        self,
        namespace: str,
        name: str,
        current: Mapping[str, Any] | None,
        status: TogetherEndpointStatus,
        *,
        resource_version: str | None = None,
    ) -> bool: ...


class Ownership(Protocol):
    """Adoption's claims and the namespaces' consent (`ownership.Ownership`)."""

    async def claim(self, endpoint_id: str, owner: Owner) -> core.AdoptionClaim: ...

    async def release(self, endpoint_id: str, owner: Owner) -> None: ...

    async def allow_adoption(self, namespace: str) -> bool: ...


class SecretFinalizers(Protocol):
    """The in-use finalizer on Secrets named by apiKeySecretRef (`secret_guard.SecretGuard`)."""

    async def hold(self, namespace: str, name: str) -> None: ...

    async def release(self, namespace: str, name: str) -> None: ...


class Connections(Protocol):
    async def publish(self, owner: Owner, config_map: str, data: Mapping[str, str]) -> str | None: ...

    async def withdraw(self, owner: Owner, config_map: str) -> None: ...


@dataclass(frozen=True)
class ReconcilerSettings:
    base_url: str
    """The Together API base URL, published to applications in connection ConfigMaps."""
    steady_look_interval: float = 600.0
    """Longest wait between two looks at a steady or held resource. A look calls Together only when
    the list changed or the poller granted the endpoint its resync turn (each of which wakes the
    resource itself), so this is a safety net, not the drift check."""
    transition_check: float = 30.0
    """Longest wait between two looks at a resource while its endpoint is changing state."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    finalizer: str = "together.ai/finalizer"
    """kopf's finalizer: a resource is reconciled only once it holds it, so its deletion waits for us."""
    default_api: TogetherAPI = TogetherAPI.V1
    """The API of a resource whose spec.api is omitted and whose status.api records none (--default-api)."""
    creates_under_way: int = 32
    """Creates between their intent and their answer at once (`OperatorConfig.creates_under_way`); in a
    burst of thousands, the rest wait before writing their intent."""


class CreateNotSentError(Exception):
    """A create's POST was given up in its call slot (`core.may_send_create`): nothing was sent."""


@dataclass
class _Resource:
    """One resource's loop: what wakes it, and what it remembers between reconciles (lost on restart,
    which is fine)."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    seen: tuple[object, ...] = ()
    """What a user can change (see `_trigger_key`) as of the last reconcile."""
    cached_read: CachedRead | None = None
    held: str | None = None
    """Why the last reconcile touched nothing (logged once per reason)."""
    failures: int = 0
    """Reconciles in a row that failed, for the backoff."""
    written: TogetherEndpointStatus | None = None
    """The status last written, so a write is not repeated before the watch shows it."""
    create_answered: bool = False
    """The last create got a 4xx answer: no part of it is still in flight."""
    create_sent_at: datetime | None = None
    """When the last create's POST was sent (its intent's time); None: the create sent nothing."""
    secret_in_use: str | None = None
    """The Secret this resource last needed (`core.secret_in_use`), to release it once it does not."""
    price: KnownPrice | None = None
    """The price of the hardware the resource is priced on, as last read."""
    reread: StoredResource | None = None
    """The resource read after a 409, used while the watch's copy is still at `stale_version`."""
    stale_version: str | None = None


class Reconciler:
    def __init__(
        self,
        settings: ReconcilerSettings,
        credentials: Credentials,
        clients: Clients,
        poller: EndpointLists,
        status_writer: StatusSink,
        connections: Connections,
        metrics: OperatorMetrics,
        post_event: EventSink,
        ownership: Ownership,
        secrets: SecretFinalizers,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC).replace(microsecond=0),
        jitter: Callable[[], float] = lambda: random.uniform(0.8, 1.2),
        budgets: BudgetBook | None = None,
        v2: V2Reconciler | None = None,
    ) -> None:
        self._settings = settings
        self._v2 = v2
        self._credentials = credentials
        self._clients = clients
        self._poller = poller
        self._status = status_writer
        self._connections = connections
        self._metrics = metrics
        self._post_event = post_event
        self._ownership = ownership
        self._secrets = secrets
        self._clock = clock
        self._jitter = jitter
        self._resources: dict[str, _Resource] = {}
        # On the reconciler's clock, so a test's clock ages the cache as it ages prices.
        self._hardware = HardwareCatalogue(clock=lambda: self._clock().timestamp())
        self._prices = PriceLookUp(self._hardware, refresh=timedelta(seconds=settings.steady_look_interval))
        self._budget_gate = BudgetGate(budgets or BudgetBook())
        self._creates_under_way = asyncio.Semaphore(settings.creates_under_way)
        self._deletes_sent: dict[str, datetime] = {}
        """uid -> when a DELETE of its endpoint was last answered"""

    # --- the per-resource loop ------------------------------------------------------------------

    async def run(self, body: Mapping[str, Any], stopped: Awaitable[object], others: OtherResources) -> None:
        """Reconcile `body` (a live view kept current by kopf) until `stopped` resolves.

        `others` (kopf indexes) names what the other resources recorded: an interrupted create or a
        spec.endpointId never takes another resource's endpoint.
        """
        uid = body["metadata"]["uid"]
        resource = self._resources[uid] = _Resource()
        stop = asyncio.ensure_future(stopped)
        try:
            while not stop.done():
                delay = await self.reconcile_once(body, others)
                waiter = asyncio.ensure_future(resource.wake.wait())
                await asyncio.wait({waiter, stop}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            stop.cancel()
            self._resources.pop(uid, None)
            freed = self._budget_gate.forget(uid)
            if freed is not None:
                self.wake_namespace(freed)  # a resource waiting for budget may proceed
            self._poller.unwatch(uid)
            if self._v2 is not None:
                self._v2.unwatch(uid)

    async def reconcile_once(self, body: Mapping[str, Any], others: OtherResources) -> float:
        """One reconcile of `body`; the seconds until the next one is due."""
        resource = self._resources.setdefault(body["metadata"]["uid"], _Resource())
        resource.wake.clear()
        resource.seen = _trigger_key(body)
        try:
            return await self._reconcile(body, resource, others)
        except ApiException as error:
            if error.status == 409:
                return await self._after_conflict(body, resource)
            return self._after_unexpected(body, resource)
        except Exception:
            return self._after_unexpected(body, resource)

    async def _after_conflict(self, body: Mapping[str, Any], resource: _Resource) -> float:
        """Our view of the resource was stale (kopf or a user wrote it meanwhile): read it again rather
        than wait for the watch, and back off in case someone keeps writing it."""
        meta = body["metadata"]
        resource.written = None
        resource.stale_version = meta.get("resourceVersion")
        try:
            resource.reread = await self._status.read(meta["namespace"], meta["name"])
        except ApiException:
            _log.warning("re-reading %s failed; waiting for the watch instead", _name(body), exc_info=True)
        resource.failures += 1
        retry = self._settings.retry
        delay = retry.backoff(resource.failures, retry.conflict_seconds, self._jitter())
        _log.info("%s changed while reconciling; reconciling again in %.1f s", _name(body), delay)
        return delay

    def _after_unexpected(self, body: Mapping[str, Any], resource: _Resource) -> float:
        """A bug or an unexpected answer (the apiserver refusing a status, say): back off instead of
        spinning, and keep the loop alive."""
        resource.failures += 1
        retry = self._settings.retry
        delay = retry.backoff(resource.failures, retry.transient_seconds, self._jitter())
        _log.exception("reconciling %s failed; retrying in %.0f s", _name(body), delay)
        return delay

    def statuses(self) -> list[TogetherEndpointStatus]:
        """The last status written for each resource this process reconciles (for metrics)."""
        return self._budget_gate.statuses()

    def hourly_costs(self) -> list[NamespaceCost]:
        """What each namespace's resources commit per hour, as last written (for metrics)."""
        return self._budget_gate.hourly_costs()

    def committed(self, namespace: str) -> budget.Committed:
        """What the namespace's resources commit, or were just allowed to (for its budgets' status)."""
        return self._budget_gate.committed(namespace)

    def wake_namespace(self, namespace: str) -> None:
        """Reconcile the namespace's resources now: its budgets changed."""
        for uid in self._budget_gate.resources_in(namespace):
            if uid in self._resources:
                self._resources[uid].wake.set()

    def wants_wake(self, body: Mapping[str, Any]) -> bool:
        """Whether a watch event changed what a reconcile depends on: the spec or one of our annotations
        (not the status, which we write ourselves)."""
        resource = self._resources.get(body["metadata"]["uid"])
        return resource is not None and _trigger_key(body) != resource.seen

    def wake(self, body: Mapping[str, Any]) -> None:
        resource = self._resources.get(body["metadata"]["uid"])
        if resource is not None:
            resource.wake.set()

    async def _reconcile(self, body: Mapping[str, Any], resource: _Resource, others: OtherResources) -> float:
        meta = body["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        annotations = meta.get("annotations") or {}
        held = self._hold(body)
        if held is not None:
            if resource.held != held.reason:
                _log.info("%s: %s", _name(body), held.reason)
            resource.held = held.reason
            return held.seconds
        resource.held = None
        stored = self._stored(body, resource)
        spec = TogetherEndpointSpec.model_validate(body.get("spec") or {})
        # The watch brings our own status writes back with a delay; until then, what we wrote is newer.
        previous = resource.written or StatusWriter.parse(stored.status)
        inputs = Inputs(
            spec=spec,
            generation=meta.get("generation", 1),
            namespace=namespace,
            name=name,
            previous=previous,
            remote=NotCreated(),
            now=self._clock(),
            restart_requested_at=annotations.get(RESTART_REQUESTED_ANNOTATION),
            endpoint_owned_by=core.adoption_conflict(spec, previous, others.owners, uid),
            create_answered=resource.create_answered,
            rival_creates=core.rival_creates(others.open_creates, previous.create_intent, uid),
        )
        key = await self._credentials.resolve(namespace, spec.api_key_secret_ref)
        if isinstance(key, CredentialsMissing):
            return await self._fail(body, resource, inputs, key, action=None)
        if self._on_v2(spec, previous):
            assert self._v2 is not None
            # By v1's rule (`core.secret_in_use`), which the in-use index counts by: held from the
            # intent on (`_V2Host.write_intent`), released once nothing needs it.
            await self._keep_secret(namespace, uid, resource, others, core.secret_in_use(spec, previous))
            failures = resource.failures
            resource_v2 = V2Resource(
                namespace,
                name,
                uid,
                inputs.generation,
                spec,
                previous,
                resource.wake.set,
                endpoint_owned_by=inputs.endpoint_owned_by,
            )
            host = _V2Host(self, body, resource, spec, others)
            delay = await self._v2.reconcile(host, key, resource_v2)
            if resource.failures == failures:
                resource.failures = 0
            return delay
        try:
            api = self._clients.for_key(key)
        except ValueError as error:  # a key that cannot be sent as a header; the message omits it
            return await self._fail(body, resource, inputs, CredentialsMissing(str(error)), action=None)

        inputs = replace(inputs, credential_fingerprint=key.fingerprint)
        observation = core.what_to_observe(inputs)
        if observation.endpoint_id is not None:
            self._poller.watch(key.fingerprint, api, observation.endpoint_id, uid, resource.wake.set)
        try:
            observed = await self._observe(api, key, inputs, observation, resource, others, uid)
        except TogetherError as error:
            return await self._fail(body, resource, inputs, error, action=None)

        claim = core.claim_to_make(observed)
        if claim is not None:
            observed = replace(observed, adoption_claim=await self._ownership.claim(claim, _owner(body)))
        plan = core.plan(observed)
        if plan.actions:
            resource.price = await self._prices.current(api, key, observed, plan.status, resource.price)
            plan = self._budget_gate.check(observed, plan, resource.price, uid)
        await self._keep_secret(namespace, uid, resource, others, core.secret_in_use(spec, plan.status))
        for action in plan.actions:
            if self._hold(body) is not None:  # deletion began meanwhile: act no more
                return 0.5
            try:
                plan = await self._act(body, resource, api, key, observed, plan, action)
            except TogetherError as error:
                return await self._fail(body, resource, observed, error, action=action)
            except CreateNotSentError as not_sent:
                _log.info("%s: create not sent, to be sent again: %s", _name(body), not_sent)
                return 0.0
        steps = core.connection_steps(observed, plan, self._settings.base_url)
        plan = core.with_connection(observed, plan, steps, await self._carry_out(body, steps))
        resource.price = await self._prices.current(api, key, observed, plan.status, resource.price)
        plan = replace(plan, status=pricing.with_pricing(plan.status, observed.spec, resource.price))
        await self._publish(body, resource, plan)
        resource.failures = 0
        delay = core.seconds_until_next_look(
            plan,
            resync_seconds=self._settings.steady_look_interval,
            transition_seconds=self._settings.transition_check,
        )
        return schedules.seconds_until_transition(plan.status.schedule, observed.now, delay)

    async def _keep_secret(
        self, namespace: str, uid: str, resource: _Resource, others: OtherResources, in_use: str | None
    ) -> None:
        """Hold the Secret deletion will need (before a create: deletion must find the key whenever an
        endpoint exists); release the one it needed before, unless another resource still needs it."""
        if in_use is not None:
            await self._secrets.hold(namespace, in_use)
        if resource.secret_in_use != in_use:
            unused = core.secret_to_release(namespace, resource.secret_in_use, others.secret_users, uid)
            if unused is not None:
                await self._secrets.release(namespace, unused)
            resource.secret_in_use = in_use

    def _on_v2(self, spec: TogetherEndpointSpec, status: TogetherEndpointStatus) -> bool:
        return (
            self._v2 is not None
            and v2_core.api_in_use(spec, status, self._settings.default_api) == TogetherAPI.V2
        )

    def _stored(self, body: Mapping[str, Any], resource: _Resource) -> StoredResource:
        """The resource's status and version: the watch's copy, or what was read after a 409 while the
        watch's copy is still the stale one."""
        version = body["metadata"].get("resourceVersion")
        if resource.reread is not None and version == resource.stale_version:
            return resource.reread
        resource.reread = None
        return StoredResource(status=body.get("status"), resource_version=version)

    def _hold(self, body: Mapping[str, Any]) -> core.Hold | None:
        meta = body["metadata"]
        return core.hold(
            finalizer_held=self._settings.finalizer in (meta.get("finalizers") or ()),
            paused=(meta.get("annotations") or {}).get(PAUSED_ANNOTATION) == "true",
            deleting=meta.get("deletionTimestamp") is not None,
            resync_seconds=self._settings.steady_look_interval,
        )

    async def _observe(
        self,
        api: EndpointsAPI,
        key: ApiKey,
        inputs: Inputs,
        observation: Observation,
        resource: _Resource,
        others: OtherResources,
        uid: str,
    ) -> Inputs:
        remote: RemoteView = NotCreated()
        if observation.endpoint_id is not None:
            remote = await self._read_endpoint(api, key, observation.endpoint_id, inputs.now, resource)
        elif observation.find_interrupted_create:
            model = core.interrupted_create_model(inputs.spec, inputs.previous)
            remote = CreateInFlight(await self._recovery_candidates(api, model, others, uid))
        allows_adoption = observation.namespace_label and await self._ownership.allow_adoption(
            inputs.namespace
        )
        hardware = None
        if observation.hardware:
            hardware = await self._hardware.offered(key.fingerprint, api, inputs.spec.model)
        return replace(
            inputs,
            remote=remote,
            hardware_options=hardware,
            namespace_allows_adoption=allows_adoption,
            now=self._clock(),
        )

    async def _recovery_candidates(
        self, api: EndpointsAPI, model: str, others: OtherResources, uid: str
    ) -> tuple[DedicatedEndpoint, ...]:
        listed = await api.list_endpoints(type="dedicated", mine=True)
        found = []
        for endpoint_id in core.recovery_candidate_ids(listed, model, others.owners, uid):
            try:
                found.append(await api.get_endpoint(endpoint_id))
            except NotFoundError:
                continue  # gone since the list: not this create's endpoint, and no sign of anything
        return tuple(found)

    async def _read_endpoint(
        self, api: EndpointsAPI, key: ApiKey, endpoint_id: str, now: datetime, resource: _Resource
    ) -> RemoteView:
        listed = self._poller.listed(key.fingerprint, endpoint_id)
        due = self._poller.resync_due(key.fingerprint, endpoint_id)
        cached = core.usable_cached_read(resource.cached_read, endpoint_id, listed, resync_due=due)
        if cached is not None:
            return Found(cached)
        try:
            endpoint = await api.get_endpoint(endpoint_id)
        except NotFoundError:
            self._poller.was_read(key.fingerprint, endpoint_id)
            resource.cached_read = None
            return Gone(endpoint_id)
        self._poller.was_read(key.fingerprint, endpoint_id)  # a failed read keeps its turn
        resource.cached_read = CachedRead(endpoint, answers_our_change=False)
        return Found(endpoint)

    async def _act(
        self,
        body: Mapping[str, Any],
        resource: _Resource,
        api: EndpointsAPI,
        key: ApiKey,
        inputs: Inputs,
        plan: Plan,
        action: Action,
    ) -> Plan:
        """Carry out one action and plan again from what the API answered."""
        meta = body["metadata"]
        if isinstance(action, CreateEndpoint):
            async with self._creates_under_way:
                if self._hold(body) is not None:  # paused or deleted while it waited for its turn
                    raise CreateNotSentError("the resource is held")
                plan = core.intent_timed(plan, self._clock())
                answer = await self._create(body, resource, api, action, plan)
            self._poller.watch(key.fingerprint, api, answer.id, meta["uid"], resource.wake.set)
        elif isinstance(action, AdoptEndpoint):
            answer = await api.get_endpoint(action.endpoint_id)
        else:
            answer = await api.update_endpoint(action.endpoint_id, action.request)
        resource.cached_read = CachedRead(answer, answers_our_change=True)
        self._poller.poll_soon(key.fingerprint)
        after = core.plan_after_action(inputs, plan, action, answer)
        if isinstance(action, CreateEndpoint):
            # status.endpointId is written the moment the create returns, before anything else.
            await self._write_status(body, resource, after.status)
        return after

    async def _create(
        self,
        body: Mapping[str, Any],
        resource: _Resource,
        api: EndpointsAPI,
        action: CreateEndpoint,
        plan: Plan,
    ) -> DedicatedEndpoint:
        """Record the create's intent (`plan`'s status), then POST it, unless its call slot came too late."""
        version = self._stored(body, resource).resource_version
        resource.create_answered = False
        resource.create_sent_at = None
        requested_at = plan.status.create_requested_at
        assert requested_at is not None

        # Intent first, guarded by resourceVersion: a stale view of the resource makes this fail with a
        # conflict instead of creating twice. Written before the POST takes a call slot, so that neither
        # the write nor a conflict holds one of the slots every other call waits for.
        await self._write_status(body, resource, plan.status, resource_version=version)
        self._post_events(body, plan.events)

        async def sending() -> None:
            # In the slot, right before the POST: a failure's outcome window runs from here.
            now = self._clock()
            if not core.may_send_create(requested_at, now):
                raise CreateNotSentError(f"no call slot within {core.CREATE_SEND_DEADLINE} of the intent")
            resource.create_sent_at = now

        try:
            return await api.create_endpoint(action.request, before_send=sending)
        except CreateNotSentError:
            resource.create_answered = True  # nothing of it is in flight: the next look creates afresh
            raise

    async def _carry_out(self, body: Mapping[str, Any], steps: ConnectionSteps) -> str | None:
        """Withdraw and publish the connection ConfigMap; the publisher's conflict message, if any."""
        if steps.withdraw is not None:
            await self._connections.withdraw(_owner(body), steps.withdraw)
        if steps.publish is None:
            return None
        return await self._connections.publish(_owner(body), steps.publish, steps.data)

    async def _fail(
        self,
        body: Mapping[str, Any],
        resource: _Resource,
        inputs: Inputs,
        error: TogetherError | CredentialsMissing,
        *,
        action: Action | None,
    ) -> float:
        if isinstance(error, TogetherError):
            _log.warning("%s: %s", _name(body), error)
        failure = core.plan_failure(
            inputs,
            error,
            action=action,
            retry=self._settings.retry,
            failed_at=self._clock(),
            sent_at=resource.create_sent_at,
        )
        resource.create_answered |= failure.create_answered
        await self._publish(body, resource, Plan(status=failure.status, events=failure.events))
        resource.failures += 1
        return self._settings.retry.backoff(resource.failures, failure.retry_after, self._jitter())

    async def _publish(self, body: Mapping[str, Any], resource: _Resource, plan: Plan) -> None:
        uid = body["metadata"]["uid"]
        await self._write_status(body, resource, plan.status)
        self._budget_gate.settle(uid, plan.status)
        self._post_events(body, plan.events)
        self._metrics.reconciles.labels(_outcome_reason(plan.status)).inc()

    async def _write_status(
        self,
        body: Mapping[str, Any],
        resource: _Resource,
        status: TogetherEndpointStatus,
        *,
        resource_version: str | None = None,
    ) -> None:
        meta = body["metadata"]
        if resource_version is None and status == resource.written:
            return  # the watch has not brought our last write back yet
        current = self._stored(body, resource).status
        if await self._status.write(
            meta["namespace"], meta["name"], current, status, resource_version=resource_version
        ):
            self._metrics.status_patches.inc()
        resource.written = status
        if self._budget_gate.record(meta["uid"], meta["namespace"], status):
            self.wake_namespace(meta["namespace"])  # a resource waiting for budget may proceed

    def _post_events(self, body: Mapping[str, Any], events: tuple[Event, ...]) -> None:
        for event in events:
            self._post_event(body, event)

    # --- deletion -------------------------------------------------------------------------------

    async def delete(self, body: Mapping[str, Any], others: OtherResources) -> Released | KeepFinalizer:
        """One attempt at deleting the remote endpoint: `Released` once the finalizer may go."""
        meta = body["metadata"]
        status = StatusWriter.parse(body.get("status"))
        spec = TogetherEndpointSpec.model_validate(body.get("spec") or {})
        if self._on_v2(spec, status) and not v2_core.lives_on_v1(status):
            assert self._v2 is not None
            namespace = meta["namespace"]
            outcome = await self._v2.delete(
                spec,
                status,
                namespace,
                meta["name"],
                lambda: self._credentials.resolve(namespace, spec.api_key_secret_ref),
                lambda: self._ownership.allow_adoption(namespace),
            )
            if isinstance(outcome, Released):
                if outcome.release_claim is not None:
                    await self._ownership.release(outcome.release_claim, _owner(body))
                await self._release_secret(namespace, spec, others, meta["uid"])
            return outcome
        known = DeletionInputs(
            spec=TogetherEndpointSpec.model_validate(body.get("spec") or {}),
            status=status,
            generation=meta.get("generation", 1),
            namespace=meta["namespace"],
            name=meta["name"],
            now=self._clock(),
            retry=self._settings.retry,
            delete_sent_at=self._deletes_sent.get(meta["uid"]),
            rival_creates=core.rival_creates(others.open_creates, status.create_intent, meta["uid"]),
        )
        api: EndpointsAPI | None = None
        step = core.plan_deletion(known)
        while not isinstance(step, Released | KeepFinalizer):
            if isinstance(step, ReadNamespace):
                allowed = await self._ownership.allow_adoption(known.namespace)
                known = replace(known, namespace_allows_adoption=allowed)
            elif isinstance(step, ResolveKey):
                key = await self._credentials.resolve(known.namespace, known.spec.api_key_secret_ref)
                if isinstance(key, CredentialsMissing):
                    known = replace(known, key_resolved=True, key_missing=key)
                else:
                    api = self._clients.for_key(key)
                    known = replace(known, key_resolved=True, credential_fingerprint=key.fingerprint)
            else:
                assert api is not None, "plan_deletion resolves the key before any call"
                try:
                    known = await self._deletion_call(api, step, known, meta["uid"], others)
                except TogetherError as error:
                    known = replace(known, error=error)
            step = core.plan_deletion(known)
        if isinstance(step, Released):
            self._deletes_sent.pop(meta["uid"], None)
            if step.withdraw_connection is not None:
                await self._connections.withdraw(_owner(body), step.withdraw_connection)
            if step.release_claim is not None:
                await self._ownership.release(step.release_claim, _owner(body))
            await self._release_secret(known.namespace, known.spec, others, meta["uid"])
        return step

    async def _release_secret(
        self, namespace: str, spec: TogetherEndpointSpec, others: OtherResources, uid: str
    ) -> None:
        """Once the resource is released: its Secret's in-use finalizer goes, unless another needs it."""
        named = spec.api_key_secret_ref
        unused = core.secret_to_release(namespace, named.name if named else None, others.secret_users, uid)
        if unused is not None:
            await self._secrets.release(namespace, unused)

    async def _deletion_call(
        self,
        api: EndpointsAPI,
        step: FindInterruptedCreate | ReadEndpoint | SendDelete,
        known: DeletionInputs,
        uid: str,
        others: OtherResources,
    ) -> DeletionInputs:
        if isinstance(step, FindInterruptedCreate):
            model = core.interrupted_create_model(known.spec, known.status)
            return replace(known, candidates=await self._recovery_candidates(api, model, others, uid))
        if isinstance(step, ReadEndpoint):
            try:
                await api.get_endpoint(step.endpoint_id)
            except NotFoundError:
                return replace(known, endpoint_exists=False)
            return replace(known, endpoint_exists=True)
        await api.delete_endpoint(step.endpoint_id)
        self._deletes_sent[uid] = known.now
        return replace(known, delete_sent_at=known.now, endpoint_exists=None)


@dataclass(frozen=True)
class _V2Host:
    """One resource's loop as the v2 shell sees it (`v2_shell.V2Host`)."""

    reconciler: Reconciler
    body: Mapping[str, Any]
    resource: _Resource
    spec: TogetherEndpointSpec
    others: OtherResources

    def deleting(self) -> bool:
        return self.reconciler._hold(self.body) is not None

    async def write_intent(self, status: TogetherEndpointStatus) -> None:
        """The Secret deletion would need is held first, as on v1: from the intent on, the resource is
        counted in the in-use index, so a deleted namespace keeps the key its endpoint needs."""
        meta = self.body["metadata"]
        in_use = core.secret_in_use(self.spec, status)
        await self.reconciler._keep_secret(meta["namespace"], meta["uid"], self.resource, self.others, in_use)
        version = self.reconciler._stored(self.body, self.resource).resource_version
        await self.reconciler._write_status(self.body, self.resource, status, resource_version=version)

    async def publish(self, status: TogetherEndpointStatus, events: tuple[Event, ...]) -> None:
        await self.reconciler._publish(self.body, self.resource, Plan(status=status, events=events))

    def backoff(self, suggested: float) -> float:
        self.resource.failures += 1
        retry = self.reconciler._settings.retry
        return retry.backoff(self.resource.failures, suggested, self.reconciler._jitter())

    async def connection(self, steps: ConnectionSteps) -> str | None:
        return await self.reconciler._carry_out(self.body, steps)

    async def claim(self, endpoint_id: str) -> core.AdoptionClaim:
        return await self.reconciler._ownership.claim(endpoint_id, _owner(self.body))

    async def allows_adoption(self) -> bool:
        return await self.reconciler._ownership.allow_adoption(self.body["metadata"]["namespace"])


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
