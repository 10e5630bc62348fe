"""The pure core: every decision about a TogetherEndpoint, as functions of typed inputs. No I/O, no kopf.

The shell (`shell.py`) gathers the inputs and carries out what these functions return:
- `what_to_observe` and `usable_cached_read`: what to read before planning, and whether a cached read
  will do;
- `plan`: desired spec + observed endpoint -> API actions + status + events; `plan_after_action` folds
  in what an action answered; `connection_steps` / `with_connection` decide the connection ConfigMap;
- `plan_failure`: a failed call -> status + when to try again (`RetryPolicy.backoff`: the one backoff);
- `plan_deletion`: one step of deleting the remote endpoint at a time (policy, what to read or delete
  next, when to stop waiting, the messages).
All are deterministic functions of their inputs, which is what the unit tests pin.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from together_operator import schedule as schedules
from together_operator.resource import (
    AutoStopRecord,
    Condition,
    ConditionStatus,
    ConditionType,
    CreateIntent,
    DeletionPolicy,
    DesiredState,
    ManagementPolicy,
    ObservedAutoscaling,
    ScheduleStatus,
    TogetherAPI,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)
from together_operator.together.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TogetherError,
    UnexpectedResponseError,
)
from together_operator.together.models import (
    RUNNING_STATES,
    TRANSITIONAL_STATES,
    Autoscaling,
    CreateEndpointRequest,
    DedicatedEndpoint,
    EndpointState,
    HardwareWithStatus,
    ListEndpoint,
    UpdateEndpointRequest,
)
from together_operator.together.models import DesiredState as RequestedState

if TYPE_CHECKING:  # a value type only: the core never reads a Secret
    from together_operator.credentials import CredentialsMissing


class Reason(StrEnum):
    """Condition reasons: CamelCase and stable, as GitOps health checks match on them."""

    CREATING = "Creating"
    STARTING = "Starting"
    STOPPING = "Stopping"
    UPDATING = "Updating"
    STARTED = "Started"
    STOPPED = "Stopped"
    AUTO_STOPPED = "AutoStopped"
    SCHEDULED = "Scheduled"
    RUNNING_WINDOW_OPENED = "RunningWindowOpened"
    RUNNING_WINDOW_CLOSED = "RunningWindowClosed"
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
    ADOPTION_REFUSED = "AdoptionRefused"
    BUDGET_EXCEEDED = "BudgetExceeded"
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

# A namespace labelled so lets its resources adopt endpoints with the operator-wide key.
ADOPTION_LABEL = "together.ai/adoption"
# How far Together's clock may be behind ours when matching an endpoint to a create we started.
CREATE_CLOCK_SKEW = timedelta(minutes=2)
# A create whose outcome is unknown (the operator died, the call timed out, the response was lost) may
# still land after the next look finds nothing: the client gives up on a call after 30 s, and the
# server may take as long again to finish what it received. Until this long after it was last possibly
# in flight (`outcome_window_start`), finding nothing proves nothing, and a second POST could make a
# duplicate (or deleting, leave an orphan).
CREATE_OUTCOME_WINDOW = timedelta(seconds=60)
# The intent is written before the POST waits for its call slot; a POST whose slot comes later than this
# after its intent is not sent (`may_send_create`). So the intent alone bounds when a create recorded by
# a process that has since died went out, however often the operator restarts.
CREATE_SEND_DEADLINE = timedelta(seconds=30)
# Longest condition or event message written: the apiserver refuses a status over its limits, and a
# message quoting Together (or listing many candidates) has no natural bound.
MAX_MESSAGE_LENGTH = 1024
# A DELETE Together answered, whose endpoint is still there this long after, is sent again.
DELETE_RESEND_AFTER = timedelta(minutes=2)

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
class AdoptionClaim:
    """The claim on an endpoint named by spec.endpointId: made once, atomically, by whoever is first."""

    holder: str
    """`namespace/name` of the TogetherEndpoint holding it."""
    ours: bool


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
    # This process saw the server answer the last create with an error status: whatever that request
    # did is done and listed, so an interrupted create need not wait out CREATE_OUTCOME_WINDOW.
    create_answered: bool = False
    # Other resources whose open create sent what this resource's interrupted create sent.
    rival_creates: tuple[OpenCreate, ...] = ()
    # Fingerprint of the API key in use (`credentials.ApiKey.fingerprint`), never the key.
    credential_fingerprint: str | None = None
    # The resource's namespace carries ADOPTION_LABEL=allowed (read only when `what_to_observe` asks).
    namespace_allows_adoption: bool = False
    # Who holds the claim on spec.endpointId, once this resource tried to claim it (`claim_to_make`).
    adoption_claim: AdoptionClaim | None = None

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


# --- what to read -----------------------------------------------------------------------------------

Owners = Mapping[str, Collection[tuple[str, str]]]
"""endpoint id -> (uid, namespace/name) of every TogetherEndpoint whose status recorded it."""

OpenCreates = Mapping[tuple[str, str, str], Collection[tuple[str, str, str]]]
"""(model, hardware, display name) a create sent -> (uid, namespace/name, createRequestedAt) of every
TogetherEndpoint with that create open: its intent recorded, no endpoint id yet."""


SecretUsers = Mapping[tuple[str, str], Collection[str]]
"""(namespace, Secret name) -> uid of every TogetherEndpoint whose deletion needs that Secret's key
(`secret_in_use`)."""


def secret_in_use(spec: TogetherEndpointSpec, status: TogetherEndpointStatus) -> str | None:
    """The Secret whose key deleting this resource's endpoint will need: named by apiKeySecretRef, once
    an endpoint exists, a create may have made one, or a migration replaces one (status.rollout.from:
    the v1 endpoint serves on while the v2 create is retried), unless deletion leaves the endpoint
    alone. v1 and v2 alike, so the in-use index and the resource holding the Secret agree. It carries
    the in-use finalizer meanwhile: deleting a namespace deletes its Secrets at once, and the endpoints
    would be left running (and billed) without their key."""
    ref = spec.api_key_secret_ref
    if ref is None or spec.deletion_policy == DeletionPolicy.ORPHAN:
        return None
    if spec.management_policy == ManagementPolicy.OBSERVE_ONLY:
        return None
    replacing = status.rollout is not None and status.rollout.from_ is not None
    if status.endpoint_id is None and status.create_requested_at is None and not replacing:
        return None
    return ref.name


def secret_to_release(namespace: str, secret: str | None, users: SecretUsers, uid: str) -> str | None:
    """The Secret to take the in-use finalizer off once this resource no longer needs it (released, or
    its spec names another key or leaves the endpoint alone), if no other resource still needs it."""
    if secret is None:
        return None
    others = [user for user in users.get((namespace, secret), ()) if user != uid]
    return None if others else secret


@dataclass(frozen=True)
class OtherResources:
    """What the other TogetherEndpoints recorded (kopf indexes), so no two take one endpoint."""

    owners: Owners = field(default_factory=dict)
    open_creates: OpenCreates = field(default_factory=dict)
    secret_users: SecretUsers = field(default_factory=dict)


@dataclass(frozen=True)
class OpenCreate:
    """Another resource's open create that sent what this resource's create sent."""

    uid: str
    name: str
    requested_at: datetime


def rival_creates(index: OpenCreates, intent: CreateIntent | None, uid: str) -> tuple[OpenCreate, ...]:
    """The other resources whose open create sent the same model, hardware and display name."""
    if intent is None:
        return ()
    same = index.get((intent.model, intent.hardware, intent.display_name), ())
    rivals = [OpenCreate(u, name, datetime.fromisoformat(at)) for u, name, at in same if u != uid]
    return tuple(sorted(rivals, key=lambda rival: rival.name))


def _rivals_for(endpoint: DedicatedEndpoint, rivals: Sequence[OpenCreate]) -> list[str]:
    """The rivals whose create may have made `endpoint` (sent before it appeared, give or take skew)."""
    return [r.name for r in rivals if endpoint.created_at >= r.requested_at - CREATE_CLOCK_SKEW]


def other_owners(owners: Owners, endpoint_id: str, uid: str) -> list[str]:
    """`namespace/name` of the resources other than `uid` that recorded `endpoint_id` as theirs."""
    return sorted(name for owner_uid, name in owners.get(endpoint_id, ()) if owner_uid != uid)


def adoption_conflict(
    spec: TogetherEndpointSpec, previous: TogetherEndpointStatus, owners: Owners, uid: str
) -> str | None:
    """Who already owns the endpoint spec.endpointId names, if this resource has not adopted it yet."""
    if spec.endpoint_id is None or previous.endpoint_id is not None:
        return None
    others = other_owners(owners, spec.endpoint_id, uid)
    return others[0] if others else None


def recovery_candidate_ids(listed: Sequence[ListEndpoint], model: str, owners: Owners, uid: str) -> list[str]:
    """The listed endpoints that may be this resource's interrupted create: of the model it sent (see
    `interrupted_create_model`), and owned by no other resource. Each is read in full next, for its
    display name and hardware."""
    return [item.id for item in listed if item.model == model and not other_owners(owners, item.id, uid)]


@dataclass(frozen=True)
class Observation:
    """What to read before planning."""

    endpoint_id: str | None
    """The endpoint to read (its list item, or a GET where that is not enough)."""
    find_interrupted_create: bool
    """List the account's endpoints for a create whose endpoint id was never recorded."""
    hardware: bool
    """Read the hardware offered for the model (`GET /hardware?model=`): a create may follow."""
    namespace_label: bool = False
    """Read whether the namespace allows adoption with the operator-wide key (ADOPTION_LABEL)."""


def what_to_observe(inputs: Inputs) -> Observation:
    """What this reconcile needs to know of the remote side (`inputs.remote` is not read)."""
    previous, spec = inputs.previous, inputs.spec
    endpoint_id = previous.endpoint_id or spec.endpoint_id
    if endpoint_id is not None:
        return Observation(
            endpoint_id=endpoint_id,
            find_interrupted_create=False,
            hardware=False,
            namespace_label=spec.endpoint_id is not None
            and spec.api_key_secret_ref is None
            and spec.management_policy == ManagementPolicy.FULL,
        )
    return Observation(
        endpoint_id=None,
        # A create this process saw answered with a 4xx, or gave up unsent, made nothing to look for.
        find_interrupted_create=previous.create_requested_at is not None and not inputs.create_answered,
        hardware=spec.management_policy == ManagementPolicy.FULL and not stalled_for_this_generation(inputs),
    )


def adopting(inputs: Inputs) -> bool:
    """Whether spec.endpointId names an endpoint this resource has not recorded as its own yet."""
    return inputs.spec.endpoint_id is not None and inputs.previous.endpoint_id is None


def adoption_refusal(inputs: Inputs, endpoint: DedicatedEndpoint) -> str | None:
    """Which rule of adoption the endpoint spec.endpointId names breaks, if any (the claim aside): its
    model must be spec.model, and the operator-wide key (shared by every namespace) adopts only where
    the namespace allows it or for ObserveOnly, which never changes the endpoint."""
    spec = inputs.spec
    if endpoint.model != spec.model:
        return (
            f"endpoint {endpoint.id} serves model {endpoint.model}, not spec.model {spec.model}: an "
            "endpoint is adopted only by a resource of its model; fix spec.model or spec.endpointId"
        )
    if (
        spec.api_key_secret_ref is None
        and spec.management_policy == ManagementPolicy.FULL
        and not inputs.namespace_allows_adoption
    ):
        return shared_key_refusal(endpoint.id, inputs.namespace)
    return None


def shared_key_refusal(endpoint_id: str, namespace: str) -> str:
    """Why an endpoint is not adopted with the operator-wide key (v1 and v2 alike)."""
    return (
        f"endpoint {endpoint_id} would be adopted with the operator-wide API key, which every "
        f"namespace shares: set spec.apiKeySecretRef to your own key, label namespace "
        f"{namespace} {ADOPTION_LABEL}=allowed, or use managementPolicy ObserveOnly"
    )


def claim_to_make(inputs: Inputs) -> str | None:
    """The endpoint to claim before planning: one spec.endpointId names, not adopted yet, found, and
    passing every other rule of adoption (a refused resource claims nothing, so it blocks nobody)."""
    remote = inputs.remote
    if not adopting(inputs) or inputs.endpoint_owned_by is not None or not isinstance(remote, Found):
        return None
    if adoption_refusal(inputs, remote.endpoint) is not None:
        return None
    return remote.endpoint.id


@dataclass(frozen=True)
class CachedRead:
    """The endpoint as this process last read it in full: a GET, or the answer to its own POST/PATCH."""

    endpoint: DedicatedEndpoint
    answers_our_change: bool
    """The answer to our own POST or PATCH, which may not show the change yet: read again next time."""


def usable_cached_read(
    cached: CachedRead | None,
    endpoint_id: str,
    listed: ListEndpoint | None,
    *,
    resync_due: bool,
) -> DedicatedEndpoint | None:
    """The cached endpoint, if it may stand in for a GET: its resync turn has not come (the poller's
    budget of drift GETs: fields the list lacks are seen at each turn), it is not the answer to our own
    change, and the poller's list shows it in the same state. A transitional state counts too: the
    poller lists at the transition interval while any watched endpoint moves and wakes the resource when
    its state changes, so N resources starting at once cost no GET each per look. None: GET it."""
    if cached is None or cached.endpoint.id != endpoint_id or cached.answers_our_change:
        return None
    if resync_due:
        return None
    if listed is None or listed.state != cached.endpoint.state:
        return None
    return cached.endpoint


@dataclass(frozen=True)
class Hold:
    """No Together call and no status write in this reconcile; look again after `seconds`."""

    seconds: float
    reason: str


def hold(*, finalizer_held: bool, paused: bool, deleting: bool, resync_seconds: float) -> Hold | None:
    """Whether this reconcile must not touch anything, and for how long."""
    if deleting:
        # Only what deletion needs from here on (`plan_deletion`): no create, start or update.
        return Hold(resync_seconds, "being deleted: no create, start or update")
    if not finalizer_held:
        # kopf adds its finalizer right after the resource appears; writing before then only loses
        # the race (a 409 on the create intent), and nothing may be created unguarded.
        return Hold(0.5, "waiting for the finalizer")
    if paused:
        return Hold(resync_seconds, "paused: no Together calls until the annotation is removed")
    return None


def seconds_until_next_look(plan_: Plan, *, resync_seconds: float, transition_seconds: float) -> float:
    """After a reconcile without failure: soon while the endpoint is expected to move, else at resync."""
    if plan_.stalled or not plan_.in_transition:
        return resync_seconds
    return transition_seconds


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
    decided = _with_schedule(inputs, _plan(inputs))
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


def refused_by_budget(inputs: Inputs, decided: Plan, message: str) -> Plan:
    """`decided` with its actions not sent: Stalled/BudgetExceeded, and nothing recorded that only
    sending them would make true (a create's intent, an applied timeout). Not bound to the spec: the
    next reconcile (a budget raised, an endpoint stopped) asks again."""
    previous = inputs.previous
    status = decided.status.model_copy(
        update={
            "create_requested_at": previous.create_requested_at,
            "create_intent": previous.create_intent,
            "inactive_timeout": previous.inactive_timeout,
            "auto_stopped": previous.auto_stopped,
        }
    )
    outcome = _Outcome(ready=False, reason=Reason.BUDGET_EXCEEDED, message=message, stalled=True)
    refused = _render(inputs, status, outcome)
    windows = (Reason.RUNNING_WINDOW_OPENED, Reason.RUNNING_WINDOW_CLOSED)
    kept = tuple(event for event in decided.events if event.reason in windows)
    return replace(refused, events=kept + refused.events)


def _with_schedule(inputs: Inputs, decided: Plan) -> Plan:
    """status.schedule as of now, and a Normal event when a running window opened or closed."""
    window = _window(inputs)
    if isinstance(window, schedules.ScheduleError):
        return decided
    status = decided.status.model_copy(update={"schedule": window})
    before = inputs.previous.schedule
    if window is None or before is None or before.active == window.active:
        return replace(decided, status=status)
    until = f"until {window.next_transition.isoformat()}" if window.next_transition else "from now on"
    if window.active:
        event = Event(
            EventType.NORMAL, Reason.RUNNING_WINDOW_OPENED, f"in a running window of spec.schedule {until}"
        )
    else:
        event = Event(
            EventType.NORMAL,
            Reason.RUNNING_WINDOW_CLOSED,
            f"outside every running window of spec.schedule {until}",
        )
    return replace(decided, status=status, events=(*decided.events, event))


def _window(inputs: Inputs) -> ScheduleStatus | schedules.ScheduleError | None:
    return schedules.status_of(inputs.spec.schedule, inputs.now)


def _wanted_state(inputs: Inputs) -> DesiredState:
    """spec.state, except Stopped outside every running window of spec.schedule."""
    window = _window(inputs)
    if isinstance(window, ScheduleStatus) and not window.active:
        return DesiredState.STOPPED
    return inputs.spec.state


def _plan(inputs: Inputs) -> Plan:
    window = _window(inputs)
    if isinstance(window, schedules.ScheduleError):
        outcome = _Outcome(
            ready=False, reason=Reason.INVALID_SPEC, message=f"spec.schedule: {window}", stalled=True
        )
        return _render(inputs, inputs.previous, outcome)
    if inputs.endpoint_owned_by is not None:
        outcome = _Outcome(
            ready=False,
            reason=Reason.ENDPOINT_OWNED_ELSEWHERE,
            message=owned_elsewhere(inputs.spec.endpoint_id, inputs.endpoint_owned_by),
            stalled=True,
        )
        return _render(inputs, inputs.previous, outcome)
    remote = inputs.remote
    if isinstance(remote, Found) and inputs.spec.endpoint_id is not None:
        refusal = _adoption_refused(inputs, remote.endpoint)
        if refusal is not None:
            return refusal
    if isinstance(remote, NotCreated):
        return _plan_create(inputs)
    if isinstance(remote, CreateInFlight):
        return _plan_recover_create(inputs, remote)
    if isinstance(remote, Gone) and _created_with_another_key(inputs.previous, inputs.credential_fingerprint):
        outcome = _Outcome(
            ready=False,
            reason=Reason.UNAUTHORIZED,
            message=f"endpoint {remote.endpoint_id} was created with another API key and is not visible to "
            f"this one ({_key_source(inputs.spec)}): restore the key it was created with",
            stalled=True,
        )
        return _render(inputs, inputs.previous.model_copy(update={"state": None}), outcome)
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


def _adoption_refused(inputs: Inputs, endpoint: DedicatedEndpoint) -> Plan | None:
    """Stalled/AdoptionRefused, recording nothing of the endpoint (so it is never PATCHed, nor DELETEd
    with the resource), unless every rule of adoption holds and this resource holds the claim. The rules
    are checked on every reconcile of an endpoint named by spec.endpointId, not only the first."""
    message, reason = adoption_refusal(inputs, endpoint), Reason.ADOPTION_REFUSED
    claim = inputs.adoption_claim
    if message is None and adopting(inputs):
        if claim is None:
            message = f"endpoint {endpoint.id} is not claimed for this resource yet"
        elif not claim.ours:
            message, reason = owned_elsewhere(endpoint.id, claim.holder), Reason.ENDPOINT_OWNED_ELSEWHERE
    if message is None:
        return None
    outcome = _Outcome(ready=False, reason=reason, message=message, stalled=True)
    return _render(inputs, inputs.previous, outcome)


def owned_elsewhere(endpoint_id: str | None, owner: str) -> str:
    return (
        f"endpoint {endpoint_id} is already managed by TogetherEndpoint {owner}: two resources must not "
        "manage one endpoint; remove spec.endpointId or delete the other resource"
    )


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
        state="STOPPED" if _wanted_state(inputs) == DesiredState.STOPPED else "STARTED",
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
        update={
            "inactive_timeout": spec.inactive_timeout,
            "create_requested_at": inputs.now,
            "create_intent": _intent_of(request),
        }
    )
    plan_ = _render(inputs, status, outcome)
    return Plan(status=plan_.status, actions=(CreateEndpoint(request),), events=plan_.events)


def intent_timed(plan: Plan, requested_at: datetime) -> Plan:
    """`plan` (a create's) with its intent timed `requested_at`: after the hardware look-up, right before
    the POST waits for its call slot (which `may_send_create` bounds)."""
    return replace(plan, status=plan.status.model_copy(update={"create_requested_at": requested_at}))


def may_send_create(requested_at: datetime, now: datetime) -> bool:
    """Whether a create whose intent was recorded at `requested_at` may still send its POST: not past
    CREATE_SEND_DEADLINE, so that a restarted operator can tell from the intent alone when the create's
    outcome is settled. One that may not is planned again, with a fresh intent."""
    return now - requested_at <= CREATE_SEND_DEADLINE


def _intent_of(request: CreateEndpointRequest) -> CreateIntent:
    return CreateIntent(
        model=request.model,
        hardware=request.hardware,
        display_name=request.display_name or "",
    )


def interrupted_create_matches(
    inputs: Inputs, candidates: Sequence[DedicatedEndpoint]
) -> list[DedicatedEndpoint]:
    """The candidates that may be the endpoint of this resource's interrupted create: the model, hardware
    and display name the create sent (recorded with its intent; the spec may have changed since),
    created after the intent (give or take clock skew)."""
    requested_at = inputs.previous.create_requested_at
    intent = inputs.previous.create_intent
    return [
        c
        for c in candidates
        if c.model == interrupted_create_model(inputs.spec, inputs.previous)
        and c.display_name == (intent.display_name if intent else inputs.desired_display_name)
        and (intent is None or c.hardware == intent.hardware)
        and (requested_at is None or c.created_at >= requested_at - CREATE_CLOCK_SKEW)
    ]


def interrupted_create_model(spec: TogetherEndpointSpec, previous: TogetherEndpointStatus) -> str:
    """The model an interrupted create sent (a status from before intents were recorded: the spec's)."""
    return previous.create_intent.model if previous.create_intent is not None else spec.model


def create_may_still_land(inputs: Inputs) -> bool:
    """Whether an interrupted create (intent recorded, no endpoint id) may yet make its endpoint: until a
    window after it was last known in flight (the intent, or when its answer was found missing), unless
    a 4xx answer proved it made nothing."""
    window_start = outcome_window_start(inputs)
    if window_start is None or inputs.create_answered:
        return False
    return inputs.now - window_start < CREATE_OUTCOME_WINDOW


def outcome_window_start(inputs: Inputs) -> datetime | None:
    """When an interrupted create was last possibly in flight: when its answer was found missing (by the
    process that sent it), else the latest its POST can have gone out, CREATE_SEND_DEADLINE after the
    intent. Never the operator's restart: an operator killed over and over must still settle it."""
    requested_at = inputs.previous.create_requested_at
    if requested_at is None:
        return None
    intent = inputs.previous.create_intent
    if intent is not None and intent.outcome_unknown_since is not None:
        return intent.outcome_unknown_since
    return requested_at + CREATE_SEND_DEADLINE


def _plan_recover_create(inputs: Inputs, remote: CreateInFlight) -> Plan:
    """Find the endpoint of a create whose response was never recorded; create again only if none."""
    spec = inputs.spec
    matches = interrupted_create_matches(inputs, remote.candidates)
    rivals = _rivals_for(matches[0], inputs.rival_creates) if len(matches) == 1 else []
    if rivals:
        outcome = _Outcome(
            ready=False,
            reason=Reason.CREATE_INCOMPLETE,
            message=_rival_message(matches[0].id, rivals)
            + ": set spec.endpointId on the resource it belongs to, and recreate the other",
            stalled=True,
        )
        return _render(inputs, inputs.previous, outcome)
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
            window_start = outcome_window_start(inputs)
            assert requested_at is not None
            assert window_start is not None
            outcome = _Outcome(
                ready=False,
                reason=Reason.CREATING,
                message=f"waiting for the outcome of the create requested at {requested_at.isoformat()}: "
                "no endpoint of it shows yet; creating again only if none has by "
                f"{(window_start + CREATE_OUTCOME_WINDOW).isoformat()}",
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


def _rival_message(endpoint_id: str, rivals: Sequence[str]) -> str:
    return (
        f"endpoint {endpoint_id} may be the interrupted create of this resource or of "
        f"{', '.join(rivals)} (the same model, hardware and display name were sent)"
    )


def _created_with_another_key(previous: TogetherEndpointStatus, credential_fingerprint: str | None) -> bool:
    recorded = previous.api_key_fingerprint
    return recorded is not None and credential_fingerprint is not None and recorded != credential_fingerprint


def _plan_found(inputs: Inputs, endpoint: DedicatedEndpoint) -> Plan:
    spec = inputs.spec
    status = inputs.previous.model_copy(
        update={
            "endpoint_id": endpoint.id,
            "api_key_fingerprint": inputs.previous.api_key_fingerprint or inputs.credential_fingerprint,
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
        if _wanted_state(inputs) == DesiredState.STOPPED or auto_stopped is not None
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
    window = _window(inputs)
    if outcome.reason == Reason.STOPPED and spec.state == DesiredState.STARTED and window is not None:
        opens = window.next_transition if isinstance(window, ScheduleStatus) else None
        outcome = _Outcome(
            ready=True,
            reason=Reason.SCHEDULED,
            message=f"endpoint {endpoint.id} is stopped outside every running window of spec.schedule"
            + (f"; the next one opens at {opens.isoformat()}" if opens else ""),
        )
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
    if _wanted_state(inputs) != DesiredState.STARTED or not spec.auto_stop_enabled:
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
    """Whether this generation asked for this state change moments ago: the API may not show it yet.

    Reconciling is named after where the state is heading, also while nothing could be asked yet: an
    endpoint last seen STOPPING was not asked to start (a start goes only to a stopped endpoint)."""
    if reason == Reason.STARTING and inputs.previous.state == EndpointState.STOPPING:
        return False
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


def plan_after_action(inputs: Inputs, before: Plan, action: Action, answer: DedicatedEndpoint) -> Plan:
    """The plan again from what an action answered. A create's events were posted with its intent, and
    its endpoint id is recorded from the answer (the shell writes it at once)."""
    previous, events = before.status, before.events
    if isinstance(action, CreateEndpoint):
        previous, events = previous.model_copy(update={"endpoint_id": answer.id}), ()
    after_inputs = replace(inputs, previous=previous, remote=Found(answer))
    normalised = _normalised(action, inputs.remote, answer) if isinstance(action, UpdateEndpoint) else []
    if normalised:
        # PATCHing the spec's value again would change nothing but the bill for calls: say what to set.
        outcome = _Outcome(
            ready=False,
            reason=Reason.INVALID_SPEC,
            message="Together stored another value than the one sent: " + "; ".join(normalised),
            stalled=True,
        )
        after = _render(after_inputs, _plan_found(after_inputs, answer).status, outcome)
    else:
        after = plan(after_inputs)
    return Plan(status=after.status, events=events + after.events)


def _normalised(action: UpdateEndpoint, seen: RemoteView, answer: DedicatedEndpoint) -> list[str]:
    """The fields a PATCH set that the answer shows changed, but to another value than the one sent:
    the API normalised them (trimmed a name, clamped replicas). A field the answer shows unchanged may
    simply not be visible yet."""
    before = seen.endpoint if isinstance(seen, Found) else None
    request = action.request
    # (what, spec field, value sent, value answered, value before the PATCH)
    fields: list[tuple[str, str, object, object, object]] = []
    if request.display_name is not None:
        previous_name = before.display_name if before else None
        fields.append(
            ("display name", "spec.displayName", request.display_name, answer.display_name, previous_name)
        )
    if request.autoscaling is not None:
        previous_scale = before.autoscaling if before else None
        fields.append(
            ("autoscaling", "spec.autoscaling", request.autoscaling, answer.autoscaling, previous_scale)
        )
    return [
        f"{what} {stored!r} for {sent!r}: set {spec_field} to what Together stores"
        for what, spec_field, sent, stored, previous in fields
        if stored != sent and stored != previous
    ]


def connection_data(
    spec: TogetherEndpointSpec, status: TogetherEndpointStatus, base_url: str
) -> dict[str, str] | None:
    """The connection ConfigMap's data, or None while there is nothing to publish (no endpoint yet)."""
    if spec.connection is None or spec.connection.config_map_name is None:
        return None
    if status.endpoint_name is None or status.endpoint_id is None:
        return None
    return {
        "TOGETHER_MODEL": status.endpoint_name,
        "TOGETHER_BASE_URL": base_url,
        "TOGETHER_ENDPOINT_ID": status.endpoint_id,
    }


@dataclass(frozen=True)
class ConnectionSteps:
    withdraw: str | None
    """A ConfigMap published before under another name (or no longer wanted): delete it if ours."""
    publish: str | None
    """The ConfigMap to create or update with `data`."""
    data: Mapping[str, str] = field(default_factory=dict)


def connection_steps(inputs: Inputs, decided: Plan, base_url: str) -> ConnectionSteps:
    """What to do about the connection ConfigMap after this plan: publish it once there is an endpoint."""
    wanted = inputs.spec.connection.config_map_name if inputs.spec.connection else None
    published = decided.status.connection_config_map
    withdraw = published if published is not None and published != wanted else None
    data = connection_data(inputs.spec, decided.status, base_url)
    if wanted is None or data is None:
        return ConnectionSteps(withdraw=withdraw, publish=None)
    return ConnectionSteps(withdraw=withdraw, publish=wanted, data=data)


def with_connection(inputs: Inputs, decided: Plan, steps: ConnectionSteps, conflict: str | None) -> Plan:
    """The plan with `status.connectionConfigMap` as the steps left it; `conflict`: the publisher's
    message when the ConfigMap's name is taken by someone else."""
    if steps.withdraw is not None:
        decided = replace(decided, status=decided.status.model_copy(update={"connection_config_map": None}))
    if steps.publish is None:
        return decided
    if conflict is not None:
        return with_connection_conflict(inputs, decided, conflict)
    return replace(decided, status=decided.status.model_copy(update={"connection_config_map": steps.publish}))


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
    """Seconds until this resource is worth another try (before `RetryPolicy.backoff`)."""
    create_answered: bool = False
    """The failed call was the create and a 4xx answered it: it made nothing, and nothing of it is
    still in flight."""


@dataclass(frozen=True)
class RetryPolicy:
    transient_seconds: float = 10.0
    auth_seconds: float = 120.0
    credentials_seconds: float = 60.0
    max_backoff_seconds: float = 300.0
    """Cap of the per-resource exponential backoff over consecutive failed reconciles."""
    conflict_seconds: float = 0.5
    """First wait after a status write conflicted with someone else's (a 409)."""

    def transient_wait(self, error: TogetherError) -> float:
        """The wait after a failure that may pass by itself: the server's Retry-After when it asks for
        longer, never less than `transient_seconds` (a Retry-After of 0 or a date in the past included),
        so that no resource hammers the API."""
        asked = getattr(error, "retry_after", None)
        return max(self.transient_seconds, asked or 0.0)

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
    failed_at: datetime | None = None,
    sent_at: datetime | None = None,
) -> FailurePlan:
    """The status after a failed call (`action` None: while observing), and when to try again.

    `failed_at`: when the failure was seen (default `inputs.now`); a create without a verdict may still
    make its endpoint for a window after that. `sent_at`: when a create's POST was sent, its intent's
    time (default `inputs.now`)."""
    status = inputs.previous
    answered = False
    if isinstance(action, CreateEndpoint):
        # The intent was recorded before the POST; an unknown outcome must not erase it. Only a 4xx
        # (429 included) proves nothing was made: a 5xx may come from a proxy after the server acted.
        code = error.status_code if isinstance(error, TogetherError) else None
        answered = code is not None and 400 <= code < 500
        intent = _intent_of(action.request)
        if not answered:
            intent = intent.model_copy(update={"outcome_unknown_since": failed_at or inputs.now})
        status = status.model_copy(
            update={"create_requested_at": sent_at or inputs.now, "create_intent": intent}
        )
        if isinstance(error, UnexpectedResponseError) and error.endpoint_id is not None:
            # A 2xx whose body could not be read: the endpoint exists, and its id is known.
            status = status.model_copy(update={"endpoint_id": error.endpoint_id})
    if not isinstance(error, TogetherError):  # CredentialsMissing
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
        wait = retry.transient_wait(error)
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
        wait = retry.transient_wait(error)
    failed = _render(inputs, status, outcome, failed=True)
    if outcome.reconciling and action is None:
        # Only looking failed, for a moment: what Ready and Serving said is still the best knowledge,
        # and flipping them would make GitOps health checks flap on every 429.
        reconciling = inputs.previous.condition(ConditionType.RECONCILING)
        repeated = reconciling is not None and reconciling.reason == outcome.reason
        failed = Plan(
            status=_keep_conditions(failed.status, inputs.previous),
            events=() if repeated else (Event(EventType.NORMAL, outcome.reason, _bounded(outcome.message)),),
        )
    return _failure(failed, wait, create_answered=answered)


def _keep_conditions(
    status: TogetherEndpointStatus, previous: TogetherEndpointStatus
) -> TogetherEndpointStatus:
    kept = {ConditionType.READY, ConditionType.SERVING}
    conditions = tuple(previous.condition(c.type) or c if c.type in kept else c for c in status.conditions)
    return status.model_copy(update={"conditions": conditions})


def _failure(plan_: Plan, wait: float, *, create_answered: bool = False) -> FailurePlan:
    return FailurePlan(
        status=plan_.status, events=plan_.events, retry_after=wait, create_answered=create_answered
    )


def _key_source(spec: TogetherEndpointSpec) -> str:
    ref = spec.api_key_secret_ref
    if ref is None:
        return "the operator's TOGETHER_API_KEY"
    return f"key {ref.key!r} of Secret {ref.name!r}"


# --- deletion -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletionInputs:
    """What one deletion step knows so far; the shell fills in what `plan_deletion` asks for next."""

    spec: TogetherEndpointSpec
    status: TogetherEndpointStatus
    """As recorded on the resource."""
    generation: int
    namespace: str
    name: str
    now: datetime
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    key_resolved: bool = False
    key_missing: CredentialsMissing | None = None
    candidates: tuple[DedicatedEndpoint, ...] | None = None
    """The endpoints that may be an interrupted create's (see `recovery_candidate_ids`); None: not
    looked for yet."""
    credential_fingerprint: str | None = None
    endpoint_exists: bool | None = None
    """What the last read of the endpoint to delete said; None: not read since the last step."""
    delete_sent_at: datetime | None = None
    """When a DELETE of it was last answered (in this step or an earlier one)."""
    namespace_allows_adoption: bool | None = None
    """Whether the namespace carries ADOPTION_LABEL=allowed; None: not read."""
    error: TogetherError | None = None
    """The last call failed so."""
    rival_creates: tuple[OpenCreate, ...] = ()

    @property
    def resource(self) -> Inputs:
        return Inputs(
            spec=self.spec,
            generation=self.generation,
            namespace=self.namespace,
            name=self.name,
            previous=self.status,
            remote=NotCreated(),
            now=self.now,
        )


@dataclass(frozen=True)
class ResolveKey:
    """Read the API key the resource names."""


@dataclass(frozen=True)
class ReadNamespace:
    """Read whether the namespace allows adoption with the operator-wide key (ADOPTION_LABEL)."""


@dataclass(frozen=True)
class FindInterruptedCreate:
    """List the account's endpoints that may be the resource's interrupted create, each read in full."""


@dataclass(frozen=True)
class ReadEndpoint:
    """GET the endpoint: does it still exist?"""

    endpoint_id: str


@dataclass(frozen=True)
class SendDelete:
    endpoint_id: str


@dataclass(frozen=True)
class Released:
    """Done: the finalizer may go."""

    message: str
    withdraw_connection: str | None = None
    """The connection ConfigMap to delete with the resource."""
    release_claim: str | None = None
    """The endpoint whose adoption claim to give up, if this resource holds it."""


@dataclass(frozen=True)
class KeepFinalizer:
    """Not done: keep the finalizer, say why, and try again after `retry_after` seconds."""

    message: str
    retry_after: float


DeletionStep = (
    ResolveKey | ReadNamespace | FindInterruptedCreate | ReadEndpoint | SendDelete | Released | KeepFinalizer
)


def plan_deletion(inputs: DeletionInputs) -> DeletionStep:
    """The next step of deleting a resource's remote endpoint: what to read or send, or the outcome.

    Only the endpoint this resource recorded (or the one its interrupted create made) is deleted: a
    spec.endpointId that was never adopted may belong to another resource. DELETE, then keep the
    finalizer until GET answers 404."""
    spec, status = inputs.spec, inputs.status
    endpoint_id = status.endpoint_id
    if endpoint_id is None and status.create_requested_at is None:
        return _released(inputs, "no remote endpoint was created")
    if (
        spec.deletion_policy == DeletionPolicy.ORPHAN
        or spec.management_policy == ManagementPolicy.OBSERVE_ONLY
    ):
        return _released(inputs, f"endpoint {endpoint_id} left running (orphaned)")
    if spec.endpoint_id is not None and spec.api_key_secret_ref is None:
        # An adopted endpoint is deleted with the operator-wide key only where adoption with it is allowed.
        if inputs.namespace_allows_adoption is None:
            return ReadNamespace()
        if not inputs.namespace_allows_adoption:
            return _released(
                inputs,
                f"endpoint {endpoint_id} left running: it was adopted, and namespace {inputs.namespace} "
                f"does not allow the operator-wide key to change it ({ADOPTION_LABEL}=allowed)",
            )
    if not inputs.key_resolved:
        return ResolveKey()
    if inputs.key_missing is not None:
        return KeepFinalizer(
            f"cannot delete endpoint {endpoint_id or '(interrupted create)'}: {inputs.key_missing.message}; "
            "or set deletionPolicy: Orphan to leave it running",
            inputs.retry.credentials_seconds,
        )
    target: str | Released | KeepFinalizer | None = endpoint_id
    if target is None and inputs.candidates is not None:
        target = _interrupted_create_target(inputs, inputs.candidates)
    if isinstance(target, Released | KeepFinalizer):
        return target
    if inputs.error is not None:
        return _deletion_failed(inputs, target, inputs.error)
    if target is None:
        return FindInterruptedCreate()
    if inputs.endpoint_exists is None:
        return ReadEndpoint(target)
    if not inputs.endpoint_exists:
        return _gone(inputs, target)
    sent_at = inputs.delete_sent_at
    if sent_at is None or inputs.now - sent_at >= DELETE_RESEND_AFTER:
        return SendDelete(target)
    return KeepFinalizer(f"waiting for endpoint {target} to be gone", _deletion_check(inputs.retry))


def _gone(inputs: DeletionInputs, endpoint_id: str | None) -> Released | KeepFinalizer:
    """A 404 for the endpoint to delete: deleted, unless it is the recorded endpoint and the key in use is
    not the one it was created with (then it may only be invisible to this key)."""
    if endpoint_id == inputs.status.endpoint_id and _created_with_another_key(
        inputs.status, inputs.credential_fingerprint
    ):
        return KeepFinalizer(
            f"endpoint {endpoint_id} was created with another API key and is not visible to this one "
            f"({_key_source(inputs.spec)}): restore that key to delete it, or set deletionPolicy: Orphan",
            inputs.retry.auth_seconds,
        )
    return _released(inputs, f"endpoint {endpoint_id} deleted")


def _interrupted_create_target(
    inputs: DeletionInputs, candidates: Sequence[DedicatedEndpoint]
) -> str | Released | KeepFinalizer:
    """The endpoint an interrupted create made, so deleting the resource does not leave it running (and
    billed); an outcome instead when there is none or no telling which."""
    matches = interrupted_create_matches(inputs.resource, candidates)
    rivals = _rivals_for(matches[0], inputs.rival_creates) if len(matches) == 1 else []
    if rivals:
        return KeepFinalizer(
            _rival_message(matches[0].id, rivals) + ": delete it with the together CLI if it is this "
            "resource's, or set deletionPolicy: Orphan",
            inputs.retry.auth_seconds,
        )
    if len(matches) == 1:
        return matches[0].id
    if len(matches) > 1:
        ids = ", ".join(sorted(m.id for m in matches))
        return KeepFinalizer(
            f"several endpoints may be this resource's interrupted create ({ids}): delete the "
            "right one with the together CLI, or set deletionPolicy: Orphan",
            inputs.retry.auth_seconds,
        )
    if create_may_still_land(inputs.resource):
        return KeepFinalizer(
            "waiting for the outcome of the interrupted create before releasing the resource: its "
            "endpoint may yet show up",
            _deletion_check(inputs.retry),
        )
    return _released(inputs, "the interrupted create made no endpoint")


def _deletion_failed(inputs: DeletionInputs, endpoint_id: str | None, error: TogetherError) -> DeletionStep:
    if isinstance(error, NotFoundError):
        return _gone(inputs, endpoint_id)
    if isinstance(error, AuthError):
        return KeepFinalizer(
            f"cannot delete endpoint {endpoint_id}: {error}; fix the API key, "
            "or set deletionPolicy: Orphan to leave it running",
            inputs.retry.auth_seconds,
        )
    return KeepFinalizer(str(error), inputs.retry.transient_wait(error))


def _deletion_check(retry: RetryPolicy) -> float:
    """Longest wait between two looks at an endpoint being deleted (or an interrupted create's outcome)."""
    return min(5.0, retry.transient_seconds)


def _released(inputs: DeletionInputs, message: str) -> Released:
    return Released(
        message,
        withdraw_connection=inputs.status.connection_config_map,
        release_claim=inputs.spec.endpoint_id,
    )


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
            message=_bounded(message),
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
    if status.endpoint_id is not None and status.api is None:  # recorded at first create or adoption
        status = status.model_copy(update={"api": TogetherAPI.V1})
    if not failed:
        status = status.model_copy(update={"reconciled_generation": generation})
    if isinstance(inputs.remote, Found):
        status = with_sync_time(status, previous, inputs.now)
    return Plan(status=status, events=_events(previous, outcome))


def with_sync_time(
    status: TogetherEndpointStatus, previous: TogetherEndpointStatus, now: datetime
) -> TogetherEndpointStatus:
    """lastSyncTime moves only with a real change: a time that changed alone would be a status write per
    resource per read with nothing to say (the contract's "no status write when nothing changed")."""
    if status.model_copy(update={"last_sync_time": previous.last_sync_time}) == previous:
        return previous
    return status.model_copy(update={"last_sync_time": now})


def _events(previous: TogetherEndpointStatus, outcome: _Outcome) -> tuple[Event, ...]:
    """One event per change of verdict, so a resource stuck in one state does not repeat itself."""
    before = previous.condition(ConditionType.READY)
    if before is not None and before.reason == outcome.reason and before.message == _bounded(outcome.message):
        return ()
    if outcome.stalled:
        return (Event(EventType.WARNING, outcome.reason, _bounded(outcome.message)),)
    if before is not None and before.reason == outcome.reason:
        return ()
    return (Event(EventType.NORMAL, outcome.reason, _bounded(outcome.message)),)


def _bounded(message: str) -> str:
    if len(message) <= MAX_MESSAGE_LENGTH:
        return message
    return message[: MAX_MESSAGE_LENGTH - 3] + "..."
