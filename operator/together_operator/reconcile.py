"""The reconcile core: desired spec + observed endpoint -> API actions + status. Pure: no I/O, no kopf.

The handlers gather the inputs (the resource, what the Together API showed, the clock), call `plan`,
carry out the actions, and write the status. When an action fails, `plan_failure` turns the error into
the status to write. Both are deterministic functions of their inputs, which is what the unit tests pin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from together_operator.resource import (
    AutoStopRecord,
    Condition,
    ConditionStatus,
    ConditionType,
    DesiredState,
    ManagementPolicy,
    ObservedAutoscaling,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)
from together_operator.together.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TogetherError,
)
from together_operator.together.models import (
    Autoscaling,
    CreateEndpointRequest,
    DedicatedEndpoint,
    EndpointState,
    HardwareWithStatus,
    UpdateEndpointRequest,
)
from together_operator.together.models import DesiredState as RequestedState


class Reason(StrEnum):
    """Condition reasons: CamelCase and stable, as GitOps health checks match on them."""

    CREATING = "Creating"
    STARTING = "Starting"
    STOPPING = "Stopping"
    UPDATING = "Updating"
    STARTED = "Started"
    STOPPED = "Stopped"
    AUTO_STOPPED = "AutoStopped"
    OBSERVING = "Observing"
    PROMPT_CACHE_IGNORED = "PromptCacheIgnored"
    RATE_LIMITED = "RateLimited"
    API_UNAVAILABLE = "ApiUnavailable"
    # Stalled reasons: progress needs a human.
    MODEL_NOT_SUPPORTED = "ModelNotSupported"
    HARDWARE_NOT_SUPPORTED = "HardwareNotSupported"
    HARDWARE_AMBIGUOUS = "HardwareAmbiguous"
    INVALID_SPEC = "InvalidSpec"
    CREDENTIALS_NOT_FOUND = "CredentialsNotFound"
    UNAUTHORIZED = "Unauthorized"
    REMOTE_ERROR = "RemoteError"
    REMOTE_DELETED = "RemoteDeleted"
    CREATE_INCOMPLETE = "CreateIncomplete"
    CONNECTION_CONFIG_MAP_CONFLICT = "ConnectionConfigMapConflict"
    ENDPOINT_OWNED_ELSEWHERE = "EndpointOwnedElsewhere"
    # Condition is False: nothing to report.
    NOT_CREATED = "NotCreated"
    RECONCILED = "Reconciled"
    NOT_STALLED = "NotStalled"


# Stalled reasons that only a spec change can cure: the same spec is not tried again.
SPEC_BOUND_STALLS = frozenset(
    {
        Reason.MODEL_NOT_SUPPORTED,
        Reason.HARDWARE_NOT_SUPPORTED,
        Reason.HARDWARE_AMBIGUOUS,
        Reason.INVALID_SPEC,
        Reason.REMOTE_ERROR,
        Reason.REMOTE_DELETED,
        Reason.CREATE_INCOMPLETE,
    }
)

# How far Together's clock may be behind ours when matching an endpoint to a create we started.
CREATE_CLOCK_SKEW = timedelta(minutes=2)
# A create whose outcome is unknown (the operator died, the call timed out, the response was lost) may
# still land after the next look finds nothing: the client gives up on a call after 30 s, and the
# server may take as long again to finish what it received. Until this long after the intent, finding
# nothing proves nothing, and a second POST could make a duplicate (or deleting, leave an orphan).
CREATE_OUTCOME_WINDOW = timedelta(seconds=60)

TRANSITIONAL_STATES = frozenset({EndpointState.PENDING, EndpointState.STARTING, EndpointState.STOPPING})
RUNNING_STATES = frozenset({EndpointState.STARTED, EndpointState.STOPPING})
# A start or stop the API accepted but does not show yet is not asked for again before this.
STATE_CHANGE_GRACE = timedelta(minutes=2)
_REMOTE_STATE_REASONS = {
    EndpointState.PENDING: "Pending",
    EndpointState.STARTING: "Starting",
    EndpointState.STARTED: "Started",
    EndpointState.STOPPING: "Stopping",
    EndpointState.STOPPED: "Stopped",
    EndpointState.ERROR: "Error",
}


# --- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotCreated:
    """No endpoint is known for this resource, and no create is in flight."""


@dataclass(frozen=True)
class CreateInFlight:
    """A create was started (intent recorded) but its endpoint id was never recorded: a crash or a lost
    response. `candidates` are the account's endpoints of the spec's model that no other
    TogetherEndpoint owns, read in full (the list lacks display names), to find it again."""

    candidates: tuple[DedicatedEndpoint, ...]


@dataclass(frozen=True)
class Found:
    endpoint: DedicatedEndpoint


@dataclass(frozen=True)
class Gone:
    """The endpoint id is known, but the API answers 404 for it."""

    endpoint_id: str


RemoteView = NotCreated | CreateInFlight | Found | Gone


@dataclass(frozen=True)
class Inputs:
    spec: TogetherEndpointSpec
    generation: int
    namespace: str
    name: str
    previous: TogetherEndpointStatus
    remote: RemoteView
    now: datetime
    restart_requested_at: str | None = None
    # GET /hardware?model= for the spec's model; needed only before a create.
    hardware_options: Sequence[HardwareWithStatus] | None = None
    # `namespace/name` of another TogetherEndpoint that already recorded spec.endpointId as its own.
    endpoint_owned_by: str | None = None
    # lastSyncTime is rewritten at least this often even when nothing else changed.
    sync_heartbeat: timedelta = timedelta(minutes=10)
    # This process saw the server answer the last create with an error status: whatever that request
    # did is done and listed, so an interrupted create need not wait out CREATE_OUTCOME_WINDOW.
    create_answered: bool = False

    @property
    def desired_display_name(self) -> str:
        return self.spec.display_name or f"{self.namespace}/{self.name}"


# --- outputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateEndpoint:
    request: CreateEndpointRequest


@dataclass(frozen=True)
class AdoptEndpoint:
    """Record an endpoint found again after an incomplete create."""

    endpoint_id: str


@dataclass(frozen=True)
class UpdateEndpoint:
    endpoint_id: str
    request: UpdateEndpointRequest


Action = CreateEndpoint | AdoptEndpoint | UpdateEndpoint


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    status: TogetherEndpointStatus
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = field(default=())

    @property
    def stalled(self) -> bool:
        condition = self.status.condition(ConditionType.STALLED)
        return condition is not None and condition.status == "True"

    @property
    def in_transition(self) -> bool:
        """Whether the remote side is expected to move soon, so it is worth looking again sooner."""
        condition = self.status.condition(ConditionType.RECONCILING)
        return bool(self.actions) or (condition is not None and condition.status == "True")


# --- hardware pre-flight --------------------------------------------------------------------------


@dataclass(frozen=True)
class HardwareResolved:
    hardware: str


@dataclass(frozen=True)
class HardwareRejected:
    reason: Reason
    message: str


def resolve_hardware(
    spec: TogetherEndpointSpec, options: Sequence[HardwareWithStatus]
) -> HardwareResolved | HardwareRejected:
    """The one hardware id to create with: `spec.hardware` checked against what the model is offered
    on, or the `gpu` shorthand resolved the way the vendor CLI's `--gpu h100 --gpu-count 2` does."""
    offered = sorted(option.id for option in options)
    if not offered:
        return HardwareRejected(
            Reason.MODEL_NOT_SUPPORTED,
            f"model {spec.model!r} is not available for dedicated endpoints (no hardware is offered "
            "for it): check spec.model",
        )
    offered_text = ", ".join(offered)
    if spec.hardware is not None:
        if spec.hardware in offered:
            return HardwareResolved(spec.hardware)
        return HardwareRejected(
            Reason.HARDWARE_NOT_SUPPORTED,
            f"spec.hardware {spec.hardware!r} is not offered for model {spec.model!r}; "
            f"offered: {offered_text}",
        )
    if spec.gpu is None:
        return HardwareRejected(Reason.INVALID_SPEC, "set exactly one of spec.hardware or spec.gpu")
    gpu_type = spec.gpu.type.lower()
    matches = sorted(
        option.id
        for option in options
        if option.specs.gpu_count == spec.gpu.count
        and (gpu_type in option.id.lower().split("_") or option.specs.gpu_type.lower().startswith(gpu_type))
    )
    wanted = f"spec.gpu {spec.gpu.count}x {spec.gpu.type}"
    if not matches:
        return HardwareRejected(
            Reason.HARDWARE_NOT_SUPPORTED,
            f"{wanted} is not offered for model {spec.model!r}; offered: {offered_text}",
        )
    if len(matches) > 1:
        return HardwareRejected(
            Reason.HARDWARE_AMBIGUOUS,
            f"{wanted} matches several hardware ids ({', '.join(matches)}): set spec.hardware to one of them",
        )
    return HardwareResolved(matches[0])


# --- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    """The verdict of one reconcile before it is rendered into conditions."""

    ready: bool
    reason: Reason
    message: str
    reconciling: bool = False
    stalled: bool = False


def plan(inputs: Inputs) -> Plan:
    """Decide what to do about one TogetherEndpoint and what its status says."""
    decided = _plan(inputs)
    first_look_at_generation = inputs.previous.reconciled_generation != inputs.generation
    if inputs.spec.prompt_cache is not None and first_look_at_generation:
        notice = Event(
            EventType.WARNING,
            Reason.PROMPT_CACHE_IGNORED,
            "spec.promptCache is deprecated by Together and has no effect: prompt caching is always on; "
            "remove the field",
        )
        return replace(decided, events=(*decided.events, notice))
    return decided


def _plan(inputs: Inputs) -> Plan:
    if inputs.endpoint_owned_by is not None:
        outcome = _Outcome(
            ready=False,
            reason=Reason.ENDPOINT_OWNED_ELSEWHERE,
            message=f"endpoint {inputs.spec.endpoint_id} is already managed by TogetherEndpoint "
            f"{inputs.endpoint_owned_by}: two resources must not manage one endpoint; remove spec.endpointId "
            "or delete the other resource",
            stalled=True,
        )
        return _render(inputs, inputs.previous, outcome)
    remote = inputs.remote
    if isinstance(remote, NotCreated):
        return _plan_create(inputs)
    if isinstance(remote, CreateInFlight):
        return _plan_recover_create(inputs, remote)
    if isinstance(remote, Gone):
        outcome = _Outcome(
            ready=False,
            reason=Reason.REMOTE_DELETED,
            message=f"endpoint {remote.endpoint_id} was deleted outside Kubernetes and is not recreated "
            "automatically: delete this TogetherEndpoint (and create a new one to get a new endpoint)",
            stalled=True,
        )
        status = inputs.previous.model_copy(update={"state": None})
        return _render(inputs, status, outcome)
    return _plan_found(inputs, remote.endpoint)


def _plan_create(inputs: Inputs) -> Plan:
    spec = inputs.spec
    if spec.management_policy == ManagementPolicy.OBSERVE_ONLY:
        outcome = _Outcome(
            ready=False,
            reason=Reason.INVALID_SPEC,
            message="managementPolicy ObserveOnly needs spec.endpointId: it never creates an endpoint",
            stalled=True,
        )
        return _render(inputs, inputs.previous, outcome)
    if stalled_for_this_generation(inputs):
        return _render(inputs, inputs.previous, _previous_outcome(inputs))
    resolution = resolve_hardware(spec, inputs.hardware_options or ())
    if isinstance(resolution, HardwareRejected):
        outcome = _Outcome(ready=False, reason=resolution.reason, message=resolution.message, stalled=True)
        return _render(inputs, inputs.previous, outcome)
    request = CreateEndpointRequest(
        model=spec.model,
        hardware=resolution.hardware,
        autoscaling=Autoscaling(
            min_replicas=spec.autoscaling.min_replicas, max_replicas=spec.autoscaling.max_replicas
        ),
        display_name=inputs.desired_display_name,
        disable_speculative_decoding=not spec.speculative_decoding,
        state="STOPPED" if spec.state == DesiredState.STOPPED else "STARTED",
        inactive_timeout=spec.inactive_timeout or None,
        availability_zone=spec.availability_zone,
    )
    outcome = _Outcome(
        ready=False,
        reason=Reason.CREATING,
        message=f"creating a dedicated endpoint for {spec.model} on {resolution.hardware}",
        reconciling=True,
    )
    status = inputs.previous.model_copy(
        update={"inactive_timeout": spec.inactive_timeout, "create_requested_at": inputs.now}
    )
    plan_ = _render(inputs, status, outcome)
    return Plan(status=plan_.status, actions=(CreateEndpoint(request),), events=plan_.events)


def interrupted_create_matches(
    inputs: Inputs, candidates: Sequence[DedicatedEndpoint]
) -> list[DedicatedEndpoint]:
    """The candidates that may be the endpoint of this resource's interrupted create: same model, its
    display name, created after the intent (give or take clock skew)."""
    requested_at = inputs.previous.create_requested_at
    return [
        c
        for c in candidates
        if c.model == inputs.spec.model
        and c.display_name == inputs.desired_display_name
        and (requested_at is None or c.created_at >= requested_at - CREATE_CLOCK_SKEW)
    ]


def create_may_still_land(inputs: Inputs) -> bool:
    """Whether an interrupted create (intent recorded, no endpoint id) may yet make its endpoint."""
    requested_at = inputs.previous.create_requested_at
    return (
        requested_at is not None
        and not inputs.create_answered
        and inputs.now - requested_at < CREATE_OUTCOME_WINDOW
    )


def _plan_recover_create(inputs: Inputs, remote: CreateInFlight) -> Plan:
    """Find the endpoint of a create whose response was never recorded; create again only if none."""
    spec = inputs.spec
    matches = interrupted_create_matches(inputs, remote.candidates)
    if len(matches) == 1:
        outcome = _Outcome(
            ready=False,
            reason=Reason.CREATING,
            message=f"found endpoint {matches[0].id} of an interrupted create; adopting it",
            reconciling=True,
        )
        plan_ = _render(inputs, inputs.previous, outcome)
        return Plan(status=plan_.status, actions=(AdoptEndpoint(matches[0].id),), events=plan_.events)
    if not matches:
        created = _plan_create(inputs)
        if created.actions and create_may_still_land(inputs):
            requested_at = inputs.previous.create_requested_at
            assert requested_at is not None
            outcome = _Outcome(
                ready=False,
                reason=Reason.CREATING,
                message=f"waiting for the outcome of the create requested at {requested_at.isoformat()}: "
                "no endpoint of it shows yet; creating again only if none has by "
                f"{(requested_at + CREATE_OUTCOME_WINDOW).isoformat()}",
                reconciling=True,
            )
            return _render(inputs, inputs.previous, outcome)
        return created
    ids = ", ".join(sorted(m.id for m in matches))
    outcome = _Outcome(
        ready=False,
        reason=Reason.CREATE_INCOMPLETE,
        message=f"a create was interrupted and several endpoints of model {spec.model} may be it ({ids}): "
        "set spec.endpointId to the right one, and delete the others with the together CLI",
        stalled=True,
    )
    return _render(inputs, inputs.previous, outcome)


def _plan_found(inputs: Inputs, endpoint: DedicatedEndpoint) -> Plan:
    spec = inputs.spec
    status = inputs.previous.model_copy(
        update={
            "endpoint_id": endpoint.id,
            "endpoint_name": endpoint.name,
            "state": endpoint.state,
            "hardware": endpoint.hardware,
            "autoscaling": ObservedAutoscaling(
                min_replicas=endpoint.autoscaling.min_replicas,
                max_replicas=endpoint.autoscaling.max_replicas,
            ),
            "display_name": endpoint.display_name,
            "created_at": endpoint.created_at,
        }
    )
    auto_stopped = _auto_stop_record(inputs, endpoint)
    status = status.model_copy(update={"auto_stopped": auto_stopped})
    target_state = (
        EndpointState.STOPPED
        if spec.state == DesiredState.STOPPED or auto_stopped is not None
        else EndpointState.STARTED
    )

    if endpoint.state == EndpointState.ERROR:
        # Only a new generation is worth another attempt: the spec that led here is not re-applied.
        spec_unchanged = inputs.previous.reconciled_generation == inputs.generation
        outcome = _Outcome(
            ready=False,
            reason=Reason.REMOTE_ERROR,
            message=f"endpoint {endpoint.id} is in state ERROR at Together; it is not changed again until "
            "the spec changes: fix the spec, or delete and recreate the TogetherEndpoint",
            stalled=True,
        )
        if spec_unchanged or spec.management_policy == ManagementPolicy.OBSERVE_ONLY:
            return _render(inputs, status, outcome)
        update = _update_for(inputs, endpoint, target_state)
        if update is None:
            return _render(inputs, status, outcome)
        return _with_update(inputs, status, endpoint, update)

    differences = _differences(inputs, endpoint, target_state)
    if spec.management_policy == ManagementPolicy.OBSERVE_ONLY:
        outcome = _observed_outcome(endpoint, target_state, auto_stopped, differences, observe_only=True)
        return _render(inputs, status, outcome)
    if stalled_for_this_generation(inputs) and not _recovered_from_error(inputs):
        return _render(inputs, status, _previous_outcome(inputs))

    update = _update_for(inputs, endpoint, target_state)
    if update is not None:
        return _with_update(inputs, status, endpoint, update)
    outcome = _observed_outcome(endpoint, target_state, auto_stopped, differences, observe_only=False)
    return _render(inputs, status, outcome)


def _with_update(
    inputs: Inputs, status: TogetherEndpointStatus, endpoint: DedicatedEndpoint, update: UpdateEndpointRequest
) -> Plan:
    if update.state == EndpointState.STARTED:
        reason, verb = Reason.STARTING, "starting"
    elif update.state == EndpointState.STOPPED:
        reason, verb = Reason.STOPPING, "stopping"
    else:
        reason, verb = Reason.UPDATING, "updating"
    changed = ", ".join(sorted(update.model_dump(exclude_none=True)))
    outcome = _Outcome(
        ready=False, reason=reason, message=f"{verb} endpoint {endpoint.id} ({changed})", reconciling=True
    )
    if update.state == EndpointState.STARTED:
        status = status.model_copy(update={"auto_stopped": None})
    if update.inactive_timeout is not None:
        status = status.model_copy(update={"inactive_timeout": inputs.spec.inactive_timeout})
    plan_ = _render(inputs, status, outcome)
    return Plan(status=plan_.status, actions=(UpdateEndpoint(endpoint.id, update),), events=plan_.events)


def _auto_stop_record(inputs: Inputs, endpoint: DedicatedEndpoint) -> AutoStopRecord | None:
    """Whether a STOPPED endpoint that should run is the inactivity timeout at work, to be left alone.

    With auto-stop on, a stop seen while the spec is unchanged since the last reconcile is accepted
    and recorded; it is undone once the generation or `together.ai/restart-requested-at` moves on.
    """
    spec = inputs.spec
    if spec.state != DesiredState.STARTED or not spec.auto_stop_enabled:
        return None
    if endpoint.state not in (EndpointState.STOPPED, EndpointState.STOPPING):
        return None
    record = inputs.previous.auto_stopped
    if record is not None:
        if (
            record.generation == inputs.generation
            and record.restart_requested_at == inputs.restart_requested_at
        ):
            return record
        return None
    if inputs.previous.reconciled_generation != inputs.generation:
        return None  # the spec just changed: the user wants it running
    if inputs.previous.state not in RUNNING_STATES:
        return None  # not seen running since our start: the start may simply not be visible yet
    return AutoStopRecord(generation=inputs.generation, restart_requested_at=inputs.restart_requested_at)


def _update_for(
    inputs: Inputs, endpoint: DedicatedEndpoint, target_state: str
) -> UpdateEndpointRequest | None:
    """The PATCH that brings the endpoint to the spec: only what differs, autoscaling with both bounds."""
    spec = inputs.spec
    display_name = inputs.desired_display_name
    autoscaling = Autoscaling(
        min_replicas=spec.autoscaling.min_replicas, max_replicas=spec.autoscaling.max_replicas
    )
    state: RequestedState | None = None
    restartable = endpoint.state in (EndpointState.STOPPED, EndpointState.ERROR)
    stoppable = endpoint.state not in (EndpointState.STOPPED, EndpointState.STOPPING)
    if target_state == EndpointState.STARTED and restartable and not _recently_asked(inputs, Reason.STARTING):
        state = "STARTED"
    elif target_state == EndpointState.STOPPED and stoppable and not _recently_asked(inputs, Reason.STOPPING):
        state = "STOPPED"
    wanted_timeout = spec.inactive_timeout or 0
    applied_timeout = inputs.previous.inactive_timeout or 0
    request = UpdateEndpointRequest(
        display_name=display_name if endpoint.display_name != display_name else None,
        autoscaling=autoscaling if endpoint.autoscaling != autoscaling else None,
        state=state,
        inactive_timeout=wanted_timeout if wanted_timeout != applied_timeout else None,
    )
    return request if request.to_body() else None


def _recently_asked(inputs: Inputs, reason: Reason) -> bool:
    """Whether this generation asked for this state change moments ago: the API may not show it yet."""
    reconciling = inputs.previous.condition(ConditionType.RECONCILING)
    return (
        reconciling is not None
        and reconciling.status == "True"
        and reconciling.reason == reason
        and reconciling.observed_generation == inputs.generation
        and reconciling.last_transition_time is not None
        and inputs.now - reconciling.last_transition_time < STATE_CHANGE_GRACE
    )


def _differences(inputs: Inputs, endpoint: DedicatedEndpoint, target_state: str) -> list[str]:
    spec = inputs.spec
    found = []
    if endpoint.state != target_state:
        found.append(f"state is {endpoint.state}, want {target_state}")
    if (endpoint.autoscaling.min_replicas, endpoint.autoscaling.max_replicas) != (
        spec.autoscaling.min_replicas,
        spec.autoscaling.max_replicas,
    ):
        found.append(
            f"autoscaling is {endpoint.autoscaling.min_replicas}..{endpoint.autoscaling.max_replicas}, "
            f"want {spec.autoscaling.min_replicas}..{spec.autoscaling.max_replicas}"
        )
    if endpoint.display_name != inputs.desired_display_name:
        found.append(f"display name is {endpoint.display_name!r}, want {inputs.desired_display_name!r}")
    return found


def _observed_outcome(
    endpoint: DedicatedEndpoint,
    target_state: str,
    auto_stopped: AutoStopRecord | None,
    differences: list[str],
    *,
    observe_only: bool,
) -> _Outcome:
    if not differences:
        if auto_stopped is not None:
            return _Outcome(
                ready=True,
                reason=Reason.AUTO_STOPPED,
                message=f"endpoint {endpoint.id} stopped after its inactivity timeout; set the annotation "
                "together.ai/restart-requested-at to a new value to start it again",
            )
        started = target_state == EndpointState.STARTED
        return _Outcome(
            ready=True,
            reason=Reason.STARTED if started else Reason.STOPPED,
            message=f"endpoint {endpoint.id} is {endpoint.state}",
        )
    if observe_only:
        return _Outcome(
            ready=False,
            reason=Reason.OBSERVING,
            message="managementPolicy ObserveOnly: not changing the endpoint; " + "; ".join(differences),
            reconciling=endpoint.state in TRANSITIONAL_STATES,
        )
    # Named after where the state is heading while it differs, so a start or stop keeps one reason
    # (and one event) until it shows, whatever else is still being updated.
    if endpoint.state != target_state:
        reason = Reason.STARTING if target_state == EndpointState.STARTED else Reason.STOPPING
    else:
        reason = Reason.UPDATING
    return _Outcome(ready=False, reason=reason, message="; ".join(differences), reconciling=True)


def _recovered_from_error(inputs: Inputs) -> bool:
    """A RemoteError stall ends when the endpoint leaves ERROR by itself (it was checked just before)."""
    stalled = inputs.previous.condition(ConditionType.STALLED)
    return stalled is not None and stalled.reason == Reason.REMOTE_ERROR


def stalled_for_this_generation(inputs: Inputs) -> bool:
    """Whether a stall that only a spec change can cure was already reported for this generation."""
    stalled = inputs.previous.condition(ConditionType.STALLED)
    return (
        stalled is not None
        and stalled.status == "True"
        and stalled.reason in SPEC_BOUND_STALLS
        and stalled.observed_generation == inputs.generation
    )


def _previous_outcome(inputs: Inputs) -> _Outcome:
    stalled = inputs.previous.condition(ConditionType.STALLED)
    assert stalled is not None
    return _Outcome(ready=False, reason=Reason(stalled.reason), message=stalled.message, stalled=True)


def with_connection_conflict(inputs: Inputs, decided: Plan, message: str) -> Plan:
    """The plan's status, stalled because the connection ConfigMap's name is taken by someone else.

    The endpoint itself is unaffected, so Together actions are not held back; an earlier stall wins."""
    if decided.stalled:
        return decided
    outcome = _Outcome(
        ready=False, reason=Reason.CONNECTION_CONFIG_MAP_CONFLICT, message=message, stalled=True
    )
    rendered = _render(inputs, decided.status, outcome)
    return Plan(status=rendered.status, actions=decided.actions, events=decided.events + rendered.events)


# --- failures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailurePlan:
    status: TogetherEndpointStatus
    events: tuple[Event, ...]
    retry_after: float
    """Seconds until this resource is worth another try."""


@dataclass(frozen=True)
class RetryPolicy:
    transient_seconds: float = 10.0
    auth_seconds: float = 120.0
    credentials_seconds: float = 60.0
    max_backoff_seconds: float = 300.0
    """Cap of the per-resource exponential backoff over consecutive failed reconciles."""

    def backoff(self, consecutive_failures: int, suggested: float, jitter: float) -> float:
        """Seconds to wait after the n-th failure in a row: the error's own wait (Retry-After, or the
        policy's interval for its kind), doubled per repeat up to the cap, times `jitter` (~0.8..1.2)
        so that resources failing together do not retry together."""
        grown = suggested * 2.0 ** max(0, consecutive_failures - 1)
        return max(suggested, min(self.max_backoff_seconds, grown) * jitter)


def plan_failure(
    inputs: Inputs,
    error: TogetherError | CredentialsMissing,
    *,
    action: Action | None,
    retry: RetryPolicy = RetryPolicy(),
) -> FailurePlan:
    """The status after a failed call (`action` None: while observing), and when to try again."""
    status = inputs.previous
    if isinstance(action, CreateEndpoint):
        # The intent was recorded before the POST; an unknown outcome must not erase it.
        status = status.model_copy(update={"create_requested_at": inputs.now})
    if isinstance(error, CredentialsMissing):
        outcome = _Outcome(
            ready=False, reason=Reason.CREDENTIALS_NOT_FOUND, message=error.message, stalled=True
        )
        wait = retry.credentials_seconds
    elif isinstance(error, AuthError):
        outcome = _Outcome(
            ready=False,
            reason=Reason.UNAUTHORIZED,
            message=f"{error}: check the API key ({_key_source(inputs.spec)})",
            stalled=True,
        )
        wait = retry.auth_seconds
    elif isinstance(error, RateLimitedError):
        outcome = _Outcome(ready=False, reason=Reason.RATE_LIMITED, message=str(error), reconciling=True)
        wait = error.retry_after if error.retry_after is not None else retry.transient_seconds
    elif isinstance(error, NotFoundError) and isinstance(action, UpdateEndpoint):
        return _failure(plan(replace(inputs, remote=Gone(action.endpoint_id))), retry.auth_seconds)
    elif isinstance(error, PermanentError):
        outcome = _Outcome(
            ready=False,
            reason=Reason.INVALID_SPEC,
            message=f"{error}: change the spec to retry",
            stalled=True,
        )
        wait = retry.auth_seconds
    else:
        outcome = _Outcome(ready=False, reason=Reason.API_UNAVAILABLE, message=str(error), reconciling=True)
        retry_after = getattr(error, "retry_after", None)
        wait = retry_after if retry_after is not None else retry.transient_seconds
    failed = _render(inputs, status, outcome, failed=True)
    if outcome.reconciling and action is None:
        # Only looking failed, for a moment: what Ready and Serving said is still the best knowledge,
        # and flipping them would make GitOps health checks flap on every 429.
        reconciling = inputs.previous.condition(ConditionType.RECONCILING)
        repeated = reconciling is not None and reconciling.reason == outcome.reason
        failed = Plan(
            status=_keep_conditions(failed.status, inputs.previous),
            events=() if repeated else (Event(EventType.NORMAL, outcome.reason, outcome.message),),
        )
    return _failure(failed, wait)


def _keep_conditions(
    status: TogetherEndpointStatus, previous: TogetherEndpointStatus
) -> TogetherEndpointStatus:
    kept = {ConditionType.READY, ConditionType.SERVING}
    conditions = tuple(previous.condition(c.type) or c if c.type in kept else c for c in status.conditions)
    return status.model_copy(update={"conditions": conditions})


def _failure(plan_: Plan, wait: float) -> FailurePlan:
    return FailurePlan(status=plan_.status, events=plan_.events, retry_after=wait)


def _key_source(spec: TogetherEndpointSpec) -> str:
    ref = spec.api_key_secret_ref
    if ref is None:
        return "the operator's TOGETHER_API_KEY"
    return f"key {ref.key!r} of Secret {ref.name!r}"


@dataclass(frozen=True)
class CredentialsMissing:
    """The API key could not be read: a missing Secret or key, or no operator-wide key."""

    message: str


# --- rendering ------------------------------------------------------------------------------------


def _render(
    inputs: Inputs, status: TogetherEndpointStatus, outcome: _Outcome, *, failed: bool = False
) -> Plan:
    """Conditions, observedGeneration, lastSyncTime and the events of a change of verdict."""
    previous = inputs.previous
    generation = inputs.generation
    state = status.state
    serving_reason = (
        _REMOTE_STATE_REASONS.get(state, "Unknown")
        if state is not None
        else (Reason.REMOTE_DELETED if outcome.reason == Reason.REMOTE_DELETED else Reason.NOT_CREATED)
    )
    serving_message = f"remote state {state}" if state is not None else "no running endpoint"

    def condition(kind: ConditionType, value: bool, reason: str, message: str) -> Condition:
        text: ConditionStatus = "True" if value else "False"
        before = previous.condition(kind)
        unchanged = before is not None and before.status == text
        return Condition(
            type=kind,
            status=text,
            reason=reason,
            message=message,
            observed_generation=generation,
            last_transition_time=before.last_transition_time if unchanged and before else inputs.now,
        )

    conditions = (
        condition(ConditionType.READY, outcome.ready, outcome.reason, outcome.message),
        condition(
            ConditionType.SERVING, state == EndpointState.STARTED, str(serving_reason), serving_message
        ),
        condition(
            ConditionType.RECONCILING,
            outcome.reconciling,
            outcome.reason if outcome.reconciling else Reason.RECONCILED,
            outcome.message if outcome.reconciling else "",
        ),
        condition(
            ConditionType.STALLED,
            outcome.stalled,
            outcome.reason if outcome.stalled else Reason.NOT_STALLED,
            outcome.message if outcome.stalled else "",
        ),
    )
    status = status.model_copy(update={"conditions": conditions, "observed_generation": generation})
    if not failed:
        status = status.model_copy(update={"reconciled_generation": generation})
    if isinstance(inputs.remote, Found):
        status = _with_sync_time(status, previous, inputs)
    return Plan(status=status, events=_events(previous, outcome))


def _with_sync_time(
    status: TogetherEndpointStatus, previous: TogetherEndpointStatus, inputs: Inputs
) -> TogetherEndpointStatus:
    """Keep lastSyncTime still while nothing else changes (no status write per poll), up to a heartbeat."""
    unchanged = status.model_copy(update={"last_sync_time": previous.last_sync_time}) == previous
    recent = (
        previous.last_sync_time is not None and inputs.now - previous.last_sync_time < inputs.sync_heartbeat
    )
    if unchanged and recent:
        return status.model_copy(update={"last_sync_time": previous.last_sync_time})
    return status.model_copy(update={"last_sync_time": inputs.now})


def _events(previous: TogetherEndpointStatus, outcome: _Outcome) -> tuple[Event, ...]:
    """One event per change of verdict, so a resource stuck in one state does not repeat itself."""
    before = previous.condition(ConditionType.READY)
    if before is not None and before.reason == outcome.reason and before.message == outcome.message:
        return ()
    if outcome.stalled:
        return (Event(EventType.WARNING, outcome.reason, outcome.message),)
    if before is not None and before.reason == outcome.reason:
        return ()
    return (Event(EventType.NORMAL, outcome.reason, outcome.message),)
