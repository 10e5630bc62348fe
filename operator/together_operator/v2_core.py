"""The pure core for Together v2 (CONTRACT section 6): a TogetherEndpoint on `api: v2` is one named
endpoint in the key's project with one deployment taking all of its traffic. No I/O, no kopf.

- `resolve_target`: model + hardware/gpu + speculativeDecoding (or `v2.config`) -> the model and config
  revision to deploy, from the v2 catalogue (supported models, their certified deployment profiles and
  the draft model of each profile's config);
- `plan_v2`: the endpoint found by name in the project's list + the resolved target -> the next call
  (create the endpoint, create the deployment, put it in the traffic split, set its autoscaling and
  inactive timeout), the status and the conditions. Every name is ours, so a lost answer or a crash is
  resolved by reading the name back: no create intent window as on v1, and a name held by an endpoint
  this resource did not create is Stalled/NameTaken. An endpoint named by
  spec.endpointId (`ep_...`) is adopted instead, under the contract's rules of adoption (the claim, its
  model, the operator-wide key);
- `plan_v2_deletion`: the platform's order (0/0, out of the split, delete the deployment once STOPPED,
  delete the endpoint), one idempotent step at a time, until the endpoint is gone.
One call per plan: the shell carries it out and plans again with what it answered.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from together_operator.core import (
    ADOPTION_LABEL,
    CREATE_OUTCOME_WINDOW,
    AdoptionClaim,
    ConnectionSteps,
    Event,
    EventType,
    HardwareRejected,
    Reason,
    RetryPolicy,
    connection_data,
    owned_elsewhere,
    shared_key_refusal,
    with_sync_time,
)
from together_operator.resource import (
    Condition,
    ConditionStatus,
    ConditionType,
    DeletionPolicy,
    DesiredState,
    ManagementPolicy,
    ObservedAutoscaling,
    RolloutStatus,
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
)
from together_operator.together.v2_models import (
    Autoscaling,
    CreateDeploymentRequest,
    DeploymentProfile,
    DeploymentState,
    DeploymentSummary,
    Endpoint,
    Placement,
    PlacementConfig,
    ScalingMetric,
    SupportedModel,
    TrafficSplitEntry,
    unpinned_model,
)

ENDPOINT_NAME_MAX = 63
CONNECTION_SWITCH_GRACE = timedelta(seconds=30)
"""After a migration rewrites the connection ConfigMap, the v1 endpoint still serves this long, so that
applications that read the ConfigMap (or are restarted by a reloader) switch before it goes."""
V1_ID_PREFIX = "endpoint-"
_STATE_PREFIX = "DEPLOYMENT_STATE_"
# Interconnect suffixes of v1 hardware ids, which v2 instance type names leave out.
_INTERCONNECTS = ("sxm", "pcie", "nvl", "nvlink")


class V2Reason:
    """Reasons only v2 has (the rest are `core.Reason`)."""

    NAME_TAKEN = "NameTaken"
    MIGRATING = "Migrating"
    DEGRADED = "Degraded"
    PROVISIONING = "Provisioning"
    SCALING = "Scaling"
    ROLLING_OUT = "RollingOut"
    ROLLOUT_FAILED = "RolloutFailed"
    ADOPTING = "Adopting"
    ENDPOINT_NOT_FOUND = "EndpointNotFound"


class RolloutPhase:
    """status.rollout.phase."""

    CREATING = "Creating"
    WAITING_READY = "WaitingReady"
    SHIFTING_TRAFFIC = "ShiftingTraffic"
    REMOVING_OLD = "RemovingOld"
    FAILED = "Failed"


# --- which API -------------------------------------------------------------------------------------


def api_in_use(
    spec: TogetherEndpointSpec, previous: TogetherEndpointStatus, default: TogetherAPI
) -> TogetherAPI:
    """spec.api; else what status.api recorded; else v1 for an endpoint recorded before status.api
    existed; else the operator's --default-api (recorded in status.api at the first create)."""
    if spec.api is not None:
        return spec.api
    if previous.api is not None:
        return previous.api
    return TogetherAPI.V1 if previous.endpoint_id is not None else default


def lives_on_v1(previous: TogetherEndpointStatus) -> bool:
    return previous.api == TogetherAPI.V1 or (previous.api is None and previous.endpoint_id is not None)


# --- adoption ---------------------------------------------------------------------------------------


def adoption_id(spec: TogetherEndpointSpec) -> str | None:
    """The v2 endpoint spec.endpointId adopts. A v1 id there (admission lets one through only on a
    resource that adopted it on v1 and migrated since) names the endpoint the migration replaced."""
    endpoint_id = spec.endpoint_id
    return None if endpoint_id is None or endpoint_id.startswith(V1_ID_PREFIX) else endpoint_id


def needs_adoption_consent(spec: TogetherEndpointSpec) -> bool:
    """Whether changing the adopted endpoint needs the namespace's consent (core.ADOPTION_LABEL): it is
    changed with the operator-wide key, which every namespace shares."""
    return (
        adoption_id(spec) is not None
        and spec.api_key_secret_ref is None
        and spec.management_policy == ManagementPolicy.FULL
    )


def _catalogue_entry(
    spec: TogetherEndpointSpec, supported: Sequence[SupportedModel]
) -> SupportedModel | None:
    return next((m for m in supported if spec.model in (m.name, m.base_model)), None)


def models_named(spec: TogetherEndpointSpec, supported: Sequence[SupportedModel]) -> frozenset[str]:
    """The model resources (without revision) spec.model names: itself when it is a resource name, else
    its catalogue entry's base model and the models of its certified profiles; none when unknown."""
    if spec.model.startswith("projects/"):
        return frozenset({unpinned_model(spec.model)})
    entry = _catalogue_entry(spec, supported)
    if entry is None:
        return frozenset()
    profiles = (unpinned_model(p.model) for p in entry.deployment_profiles)
    return frozenset({unpinned_model(entry.base_model), *profiles})


# --- names ------------------------------------------------------------------------------------------


def endpoint_name(spec: TogetherEndpointSpec, namespace: str, name: str) -> str:
    """`spec.v2.endpointName`, else `<namespace>-<name>`, cut to 63 with a short hash when longer."""
    if spec.v2 is not None and spec.v2.endpoint_name:
        return spec.v2.endpoint_name
    full = f"{namespace}-{name}"
    if len(full) <= ENDPOINT_NAME_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: ENDPOINT_NAME_MAX - 9].rstrip('-')}-{digest}"


def known_name(
    spec: TogetherEndpointSpec, previous: TogetherEndpointStatus, namespace: str, name: str
) -> str:
    """The endpoint's name in the project: an adopted endpoint keeps its own (status.endpointName is
    `<project slug>/<name>`); else ours (`endpoint_name`)."""
    adopted = adoption_id(spec)
    if adopted is not None and previous.endpoint_id == adopted and previous.endpoint_name:
        return previous.endpoint_name.rpartition("/")[2]
    return endpoint_name(spec, namespace, name)


def short_state(state: str) -> str:
    """`DEPLOYMENT_STATE_READY` -> `READY`, what status.state shows; unknown values kept as they come."""
    return state.removeprefix(_STATE_PREFIX)


def v2_hardware(hardware: str) -> str:
    """A v1 hardware id in v2's form: `2x_nvidia_h100_80gb_sxm` -> `2xnvidia-h100-80gb`; a v2 name as is."""
    count, _, rest = hardware.partition("x")
    if not rest.startswith("_"):
        return hardware
    parts = [part for part in rest[1:].split("_") if part]
    if parts and parts[-1] in _INTERCONNECTS:
        parts = parts[:-1]
    return f"{count}x{'-'.join(parts)}"


# --- what to deploy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentTarget:
    """The model and config revision a deployment of the spec runs, and its instance type name."""

    model: str
    config: str
    hardware: str | None

    def deployment_name(self, availability_zone: str | None) -> str:
        """Ours and deterministic: the same target is the same name, so a create is found again by it."""
        key = "\n".join((self.model, self.config, availability_zone or ""))
        return f"d-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def configs_to_read(spec: TogetherEndpointSpec, supported: Sequence[SupportedModel]) -> tuple[str, ...]:
    """The config revisions whose draft model `resolve_target` needs (a profile does not say whether its
    config decodes speculatively): every certified config of the spec's model, unless v2.config names
    one."""
    entry = _catalogue_entry(spec, supported)
    if entry is None or (spec.v2 is not None and spec.v2.config is not None):
        return ()
    return tuple(dict.fromkeys(p.config for p in entry.deployment_profiles))


def resolve_target(
    spec: TogetherEndpointSpec, supported: Sequence[SupportedModel], drafts: Mapping[str, str | None]
) -> DeploymentTarget | HardwareRejected:
    """The catalogue entry of `spec.model` and the one certified profile offering the spec's hardware
    and speculative decoding.

    `v2.config` names the config revision outright; otherwise `hardware` (either form) or `gpu`, with
    `speculativeDecoding`, picks among the model's profiles: a config decodes speculatively when it pins
    a draft model (`drafts`: config -> its draft model, for the configs `configs_to_read` names). None
    or several is a stall that lists what is offered."""
    entry = _catalogue_entry(spec, supported)
    explicit_config = spec.v2.config if spec.v2 is not None else None
    if entry is None:
        if explicit_config is not None and spec.model.startswith("projects/"):
            return DeploymentTarget(model=spec.model, config=explicit_config, hardware=None)
        return HardwareRejected(
            Reason.MODEL_NOT_SUPPORTED,
            f"model {spec.model!r} is not in the v2 catalogue of supported models: check spec.model "
            "(`together-operator hardware --model M --api v2`)",
        )
    profiles = entry.deployment_profiles
    if explicit_config is not None:
        named = next((p for p in profiles if p.config == explicit_config), None)
        model = named.model if named is not None else (profiles[0].model if profiles else entry.base_model)
        return DeploymentTarget(
            model=model, config=explicit_config, hardware=named.hardware if named else None
        )

    def speculative(profile: DeploymentProfile) -> bool:
        return bool(drafts.get(profile.config))

    def offer(profile: DeploymentProfile) -> str:
        return f"{profile.hardware} with speculative decoding" if speculative(profile) else profile.hardware

    offered = ", ".join(sorted({offer(p) for p in profiles})) or "none"
    if spec.hardware is not None:
        wanted = v2_hardware(spec.hardware)
        on_hardware = [p for p in profiles if p.hardware == wanted]
        asked = f"spec.hardware {spec.hardware!r}"
    elif spec.gpu is not None:
        gpu_type = spec.gpu.type.lower()
        on_hardware = [
            p for p in profiles if p.gpu_count == spec.gpu.count and gpu_type in p.gpu_type.lower().split("-")
        ]
        asked = f"spec.gpu {spec.gpu.count}x {spec.gpu.type}"
    else:
        return HardwareRejected(Reason.INVALID_SPEC, "set exactly one of spec.hardware or spec.gpu")
    if not on_hardware:
        return HardwareRejected(
            Reason.HARDWARE_NOT_SUPPORTED,
            f"{asked} is not offered for model {spec.model!r}; offered: {offered}",
        )
    matches = [p for p in on_hardware if speculative(p) == spec.speculative_decoding]
    if not matches:
        return HardwareRejected(
            Reason.HARDWARE_NOT_SUPPORTED,
            f"{asked} with speculativeDecoding {str(spec.speculative_decoding).lower()} is not offered for "
            f"model {spec.model!r}; offered: {offered}. Change speculativeDecoding, or name a config in "
            "spec.v2.config",
        )
    if len({p.config for p in matches}) > 1:
        configs = ", ".join(sorted(p.config for p in matches))
        return HardwareRejected(
            Reason.HARDWARE_AMBIGUOUS,
            f"{asked} matches several certified configs ({configs}): set spec.v2.config to one of them",
        )
    return DeploymentTarget(model=matches[0].model, config=matches[0].config, hardware=matches[0].hardware)


# --- inputs and outputs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class V2Inputs:
    spec: TogetherEndpointSpec
    generation: int
    namespace: str
    name: str
    previous: TogetherEndpointStatus
    now: datetime
    project_id: str
    endpoint: Endpoint | None
    """The endpoint of our name in the project's list, if any; while adopting, the one of the id
    spec.endpointId names (from the list, else a GET)."""
    target: DeploymentTarget | HardwareRejected | None = None
    """Resolved from the catalogue (cached per key by the shell); None until asked for."""
    spec_models: frozenset[str] | None = None
    """`models_named`, read from the catalogue with `target`; None until then."""
    endpoint_owned_by: str | None = None
    """`namespace/name` of another TogetherEndpoint whose status recorded the id spec.endpointId names."""
    namespace_allows_adoption: bool = False
    """The namespace carries core.ADOPTION_LABEL=allowed (read where `needs_adoption_consent`)."""
    adoption_claim: AdoptionClaim | None = None
    """Who holds the claim on spec.endpointId, once this resource asked for it (`ClaimEndpoint`)."""
    v1_endpoint_gone: bool | None = None
    """During a migration: whether the v1 endpoint answered 404 after its DELETE; None: not asked."""
    deployment_messages: Mapping[str, str] = field(default_factory=dict)
    """deployment id -> its `status.message`, read (a single GET: the list lacks it) for the FAILED and
    DEGRADED deployments of the endpoint."""
    inactive_timeouts: Mapping[str, int] = field(default_factory=dict)
    """deployment id -> its inactiveTimeout in minutes (0: off), read by a single GET (the list lacks it)
    for the live deployment while the shell does not know the spec's generation applied; absent: not
    read (nothing to change)."""


@dataclass(frozen=True)
class ResolveTarget:
    """Read the catalogue: a deployment is to be created and the target is not known yet."""


@dataclass(frozen=True)
class ClaimEndpoint:
    """Claim the endpoint spec.endpointId names (`ownership.Ownership.claim`): every other rule of
    adoption holds, so only another resource's claim can stop it now."""

    endpoint_id: str


@dataclass(frozen=True)
class CreateV2Endpoint:
    name: str


@dataclass(frozen=True)
class CreateV2Deployment:
    endpoint_id: str
    request: CreateDeploymentRequest


@dataclass(frozen=True)
class SetTrafficSplit:
    endpoint_id: str
    split: tuple[TrafficSplitEntry, ...]
    etag: str


@dataclass(frozen=True)
class SetV2Autoscaling:
    endpoint_id: str
    deployment_id: str
    autoscaling: Autoscaling


@dataclass(frozen=True)
class SetV2InactiveTimeout:
    endpoint_id: str
    deployment_id: str
    minutes: int


@dataclass(frozen=True)
class RetireV1Endpoint:
    """The last step of a migration: DELETE the v1 endpoint (through the v1 API), then look it up."""

    endpoint_id: str


@dataclass(frozen=True)
class DeleteV2Deployment:
    endpoint_id: str
    deployment_id: str


V2Call = (
    CreateV2Endpoint
    | CreateV2Deployment
    | SetTrafficSplit
    | SetV2Autoscaling
    | SetV2InactiveTimeout
    | DeleteV2Deployment
    | RetireV1Endpoint
)
"""The actions that change something at Together."""
V2Read = ResolveTarget | ClaimEndpoint
"""The actions that only read what the plan lacks: they change nothing at Together."""
V2Action = V2Read | V2Call


@dataclass(frozen=True)
class V2Plan:
    status: TogetherEndpointStatus
    action: V2Action | None = None
    events: tuple[Event, ...] = ()

    @property
    def stalled(self) -> bool:
        condition = self.status.condition(ConditionType.STALLED)
        return condition is not None and condition.status == "True"


@dataclass(frozen=True)
class _Verdict:
    ready: bool
    reconciling: bool
    stalled: bool
    reason: str
    message: str


def _working(reason: str, message: str) -> _Verdict:
    return _Verdict(ready=False, reconciling=True, stalled=False, reason=reason, message=message)


def _stalled(reason: str, message: str) -> _Verdict:
    return _Verdict(ready=False, reconciling=False, stalled=True, reason=reason, message=message)


def _done(reason: str, message: str) -> _Verdict:
    return _Verdict(ready=True, reconciling=False, stalled=False, reason=reason, message=message)


# --- the plan ---------------------------------------------------------------------------------------


# The target type of each metric, as the reference's table fixes it.
METRIC_TARGET_TYPES = {
    "inflight_requests": "METRIC_TARGET_TYPE_AVERAGE_VALUE",
    "throughput_per_replica": "METRIC_TARGET_TYPE_AVERAGE_VALUE",
    "active_sessions": "METRIC_TARGET_TYPE_AVERAGE_VALUE",
    "gpu_utilization": "METRIC_TARGET_TYPE_UTILIZATION",
    "token_utilization": "METRIC_TARGET_TYPE_UTILIZATION",
    "cache_hit_rate": "METRIC_TARGET_TYPE_UTILIZATION",
    "ttft": "METRIC_TARGET_TYPE_VALUE",
    "decoding_speed": "METRIC_TARGET_TYPE_VALUE",
    "e2e_latency": "METRIC_TARGET_TYPE_VALUE",
}
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def wire_duration(duration: str | None) -> str | None:
    """`1h30m` (the CRD's form) -> `5400s` (protobuf JSON, the API's)."""
    if duration is None:
        return None
    match = _DURATION.match(duration)
    if match is None:  # admission lets only the pattern through
        raise ValueError(f"not a duration: {duration!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return f"{hours * 3600 + minutes * 60 + seconds}s"


def desired_autoscaling(spec: TogetherEndpointSpec) -> Autoscaling:
    """Stopped is 0/0, Started the spec's bounds; with the scaling policy of spec.v2.scaling, if any
    (what it leaves out is the platform's)."""
    stopped = spec.state == DesiredState.STOPPED
    bounds = Autoscaling(
        min_replicas=0 if stopped else spec.autoscaling.min_replicas,
        max_replicas=0 if stopped else spec.autoscaling.max_replicas,
    )
    scaling = spec.v2.scaling if spec.v2 is not None else None
    if scaling is None:
        return bounds
    metrics = None
    if scaling.metric is not None:
        metric = scaling.metric
        metrics = (
            ScalingMetric(
                name=metric.name,
                type=METRIC_TARGET_TYPES[metric.name],
                target=metric.target,
                percentile=metric.percentile,
            ),
        )
    return bounds.model_copy(
        update={
            "scale_up_window": wire_duration(scaling.scale_up_window),
            "scale_down_window": wire_duration(scaling.scale_down_window),
            "scale_to_zero_window": wire_duration(scaling.scale_to_zero_window),
            "scaling_metrics": metrics,
        }
    )


def autoscaling_differs(observed: Autoscaling, wanted: Autoscaling) -> bool:
    """Whether a field the spec sets differs remotely (a bound never set remotely counts as 0)."""
    seen = observed.model_copy(
        update={"min_replicas": observed.min_replicas or 0, "max_replicas": observed.max_replicas or 0}
    )
    return any(
        getattr(seen, field) != value
        for field, value in wanted.model_dump(exclude_none=True, by_alias=False).items()
        if field != "scaling_metrics"
    ) or (wanted.scaling_metrics is not None and seen.scaling_metrics != wanted.scaling_metrics)


def plan_v2(inputs: V2Inputs) -> V2Plan:
    name = known_name(inputs.spec, inputs.previous, inputs.namespace, inputs.name)
    if lives_on_v1(inputs.previous) and inputs.previous.endpoint_id is not None:
        # A migration begins: the v1 endpoint is remembered in status.rollout (and serves, and keeps the
        # connection ConfigMap) until the v2 one is READY; everything else starts as a v2 create.
        inputs = replace(
            inputs, previous=_migration_start(inputs.previous, inputs.previous.endpoint_id, name)
        )
    status = inputs.previous.model_copy(update={"api": TogetherAPI.V2, "project_id": inputs.project_id})
    endpoint = inputs.endpoint
    observe_only = inputs.spec.management_policy == ManagementPolicy.OBSERVE_ONLY
    adopted = adoption_id(inputs.spec)
    if adopted is not None and inputs.previous.endpoint_id in (None, adopted):
        refused = _plan_adoption(inputs, status, adopted)
        if refused is not None:
            return refused
    if endpoint is None:
        if inputs.previous.endpoint_id is not None:
            return _render(
                inputs,
                status,
                _stalled(
                    Reason.REMOTE_DELETED,
                    f"v2 endpoint {name!r} ({inputs.previous.endpoint_id}) is gone from the project; it is "
                    "not recreated: delete this TogetherEndpoint, or recreate it to deploy again",
                ),
            )
        if observe_only:
            return _render(
                inputs,
                status,
                _working(Reason.OBSERVING, f"waiting for a v2 endpoint named {name!r} to observe"),
            )
        # The intent (createRequestedAt) goes first: an endpoint of our name without a recorded id is
        # then known to be our own lost create, not someone else's.
        status = status.model_copy(update={"create_requested_at": inputs.now})
        return _render(
            inputs,
            status,
            _working(Reason.CREATING, f"creating v2 endpoint {name!r}"),
            CreateV2Endpoint(name),
        )
    ours = endpoint.id in (inputs.previous.endpoint_id, adopted) or (
        inputs.previous.endpoint_id is None
        and (inputs.previous.create_requested_at is not None or observe_only)
    )
    if not ours:
        return _render(
            inputs,
            status,
            _stalled(
                V2Reason.NAME_TAKEN,
                f"the v2 endpoint name {name!r} is taken by {endpoint.id}, which this resource did not "
                "create: set spec.v2.endpointName to a free name",
            ),
        )
    if inputs.previous.endpoint_id is None and endpoint.id == adopted:
        # Adopted: the deployment serving it is the live one, which keeps the traffic until the spec's
        # (if it is another) can take it over.
        live = _live_deployment(endpoint)
        status = status.model_copy(update={"deployment_id": live.id if live is not None else None})
    status = status.model_copy(update={"endpoint_id": endpoint.id, "endpoint_name": endpoint.name})
    if observe_only:
        live = _live_deployment(endpoint)
        status = _observed(status, live)
        if live is None:
            return _render(
                inputs, status, _working(Reason.OBSERVING, f"v2 endpoint {name!r} has no deployment")
            )
        return _render(inputs, status, _verdict_of_state(inputs, live, observing=True))
    return _plan_deployment(inputs, status, endpoint)


def _plan_adoption(inputs: V2Inputs, status: TogetherEndpointStatus, endpoint_id: str) -> V2Plan | None:
    """The rules of adoption (CONTRACT section 2) for the endpoint spec.endpointId names: a plan while
    it is not (or no longer) this resource's to change; None once it is. Nothing of a refused endpoint
    is recorded, so it is never scaled, rerouted or deleted. Its model is checked before the claim (a
    refused resource claims nothing, so it blocks nobody); the operator-wide key's consent on every
    reconcile, as on v1."""
    endpoint, spec = inputs.endpoint, inputs.spec
    first = inputs.previous.endpoint_id is None
    if endpoint is None:
        if not first:
            return None  # recorded, and gone since: RemoteDeleted, as for any endpoint
        message = (
            f"spec.endpointId {endpoint_id} is not an endpoint of project {inputs.project_id} (the API "
            "key's): check the id (`together endpoints list`) and the API key; nothing is created"
        )
        return _render(inputs, status, _stalled(V2Reason.ENDPOINT_NOT_FOUND, message))
    if first and inputs.endpoint_owned_by is not None:
        message = owned_elsewhere(endpoint_id, inputs.endpoint_owned_by)
        return _render(inputs, status, _stalled(Reason.ENDPOINT_OWNED_ELSEWHERE, message))
    if first and inputs.spec_models is None:
        text = f"reading the v2 catalogue to check the model of endpoint {endpoint_id}"
        return _render(inputs, status, _working(V2Reason.ADOPTING, text), ResolveTarget())
    spec_models = inputs.spec_models or frozenset()
    other_model = next((d for d in endpoint.deployments if unpinned_model(d.model) not in spec_models), None)
    if first and other_model is not None:
        message = (
            f"endpoint {endpoint_id} runs model {other_model.model} (deployment {other_model.id}), not "
            f"spec.model {spec.model}: an endpoint is adopted only by a resource of its model; fix "
            "spec.model or spec.endpointId"
        )
        return _render(inputs, status, _stalled(Reason.ADOPTION_REFUSED, message))
    if needs_adoption_consent(spec) and not inputs.namespace_allows_adoption:
        message = shared_key_refusal(endpoint_id, inputs.namespace)
        return _render(inputs, status, _stalled(Reason.ADOPTION_REFUSED, message))
    if not first:
        return None
    claim = inputs.adoption_claim
    if claim is None:
        text = f"claiming endpoint {endpoint_id} for this resource"
        return _render(inputs, status, _working(V2Reason.ADOPTING, text), ClaimEndpoint(endpoint_id))
    if not claim.ours:
        message = owned_elsewhere(endpoint_id, claim.holder)
        return _render(inputs, status, _stalled(Reason.ENDPOINT_OWNED_ELSEWHERE, message))
    return None


def _adopted_fit(
    inputs: V2Inputs, endpoint: Endpoint, target: DeploymentTarget, live: DeploymentSummary | None
) -> DeploymentSummary | None:
    """A deployment of an adopted endpoint that already runs the spec's target (its model on its
    hardware), kept rather than rolled out to one of our names. The list shows neither its config nor
    its placement: with spec.v2.config or availabilityZone set, nothing is taken to fit."""
    spec = inputs.spec
    if adoption_id(spec) is None or spec.availability_zone is not None or target.hardware is None:
        return None
    if spec.v2 is not None and spec.v2.config is not None:
        return None
    fits = [
        d
        for d in endpoint.deployments
        if unpinned_model(d.model) == unpinned_model(target.model) and d.hardware == target.hardware
    ]
    return live if live in fits else next(iter(fits), None)


def _plan_deployment(inputs: V2Inputs, status: TogetherEndpointStatus, endpoint: Endpoint) -> V2Plan:
    """The deployment of the spec, created, scaled and routed; during a rollout the one serving keeps the
    traffic until the new one can take it, and every other deployment is then stopped and deleted."""
    target = inputs.target
    live = next((d for d in endpoint.deployments if d.id == status.deployment_id), None)
    if live is not None:
        status = _observed(status, live)
    if target is None:
        return _render(inputs, status, _resolving(live), ResolveTarget())
    if isinstance(target, HardwareRejected):
        return _render(inputs, status, _stalled(target.reason, target.message))
    wanted = target.deployment_name(inputs.spec.availability_zone)
    new = next((d for d in endpoint.deployments if _short(d.name) == wanted), None) or _adopted_fit(
        inputs, endpoint, target, live
    )
    rollout = inputs.previous.rollout
    if new is None:
        if rollout is not None and rollout.to == wanted and rollout.phase == RolloutPhase.FAILED:
            return _render(inputs, status, _stalled(V2Reason.ROLLOUT_FAILED, inputs.previous.message or ""))
        request = CreateDeploymentRequest(
            name=wanted,
            model=target.model,
            config=target.config,
            autoscaling=desired_autoscaling(inputs.spec),
            inactive_timeout=inputs.spec.inactive_timeout,
            placement=_placement(inputs.spec.availability_zone),
        )
        if live is not None:
            status = _rolling(status, live.id, wanted, RolloutPhase.CREATING)
        message = f"creating deployment {wanted!r} of {inputs.spec.model}"
        reason = V2Reason.ROLLING_OUT if live is not None else Reason.CREATING
        return _render(inputs, status, _working(reason, message), CreateV2Deployment(endpoint.id, request))
    if live is not None and live.id != new.id:
        return _plan_rollout(inputs, status, endpoint, live, new)
    return _plan_live(inputs, status, endpoint, new)


def _plan_rollout(
    inputs: V2Inputs,
    status: TogetherEndpointStatus,
    endpoint: Endpoint,
    live: DeploymentSummary,
    new: DeploymentSummary,
) -> V2Plan:
    """`live` serves; `new` is the spec's. Traffic moves once `new` can take it, never before."""
    wanted = _short(new.name)
    if new.state == DeploymentState.FAILED or (
        inputs.previous.rollout is not None and inputs.previous.rollout.phase == RolloutPhase.FAILED
    ):
        message = inputs.deployment_messages.get(new.id) or inputs.previous.message or "the deployment failed"
        status = _rolling(status, live.id, wanted, RolloutPhase.FAILED).model_copy(
            update={"message": message}
        )
        verdict = _stalled(V2Reason.ROLLOUT_FAILED, f"new deployment {wanted!r} failed: {message}")
        return _render(inputs, status, verdict, _removal_step(endpoint, new))
    wanted_scaling = desired_autoscaling(inputs.spec)
    if autoscaling_differs(new.autoscaling, wanted_scaling):
        status = _rolling(status, live.id, wanted, RolloutPhase.WAITING_READY)
        message = f"setting the autoscaling of new deployment {wanted!r}"
        action = SetV2Autoscaling(endpoint.id, new.id, wanted_scaling)
        return _render(inputs, status, _working(V2Reason.ROLLING_OUT, message), action)
    takes_over = (
        DeploymentState.STOPPED if inputs.spec.state == DesiredState.STOPPED else DeploymentState.READY
    )
    if new.state != takes_over:
        status = _rolling(status, live.id, wanted, RolloutPhase.WAITING_READY)
        message = (
            f"new deployment {wanted!r} is {short_state(new.state)}; deployment {live.id} serves meanwhile"
        )
        return _render(inputs, status, _working(V2Reason.ROLLING_OUT, message))
    if _routed(endpoint) != [(new.id, 100)]:
        status = _rolling(status, live.id, wanted, RolloutPhase.SHIFTING_TRAFFIC)
        message = f"moving the traffic of {endpoint.short_name!r} to new deployment {wanted!r}"
        split = (TrafficSplitEntry(deployment_id=new.id, weight=100),)
        shift = SetTrafficSplit(endpoint.id, split, endpoint.etag)
        return _render(inputs, status, _working(V2Reason.ROLLING_OUT, message), shift)
    # The traffic is on the new deployment: it is the live one from now on (also after a crash here).
    status = _rolling(status, live.id, wanted, RolloutPhase.REMOVING_OLD)
    return _plan_live(inputs, status, endpoint, new)


def _plan_live(
    inputs: V2Inputs, status: TogetherEndpointStatus, endpoint: Endpoint, live: DeploymentSummary
) -> V2Plan:
    status = _observed(status.model_copy(update={"deployment_id": live.id}), live)
    message = inputs.deployment_messages.get(live.id)
    status = status.model_copy(update={"message": message})
    if live.state == DeploymentState.FAILED:
        message = message or "the deployment failed"
        return _render(
            inputs, status.model_copy(update={"message": message}), _stalled(Reason.REMOTE_ERROR, message)
        )
    wanted_scaling = desired_autoscaling(inputs.spec)
    if autoscaling_differs(live.autoscaling, wanted_scaling):
        reason = (
            Reason.STOPPING
            if wanted_scaling.max_replicas == 0
            else Reason.STARTING
            if not live.autoscaling.max_replicas
            else Reason.UPDATING
        )
        text = f"setting autoscaling to {wanted_scaling.min_replicas}/{wanted_scaling.max_replicas}"
        return _render(
            inputs, status, _working(reason, text), SetV2Autoscaling(endpoint.id, live.id, wanted_scaling)
        )
    if _routed(endpoint) != [(live.id, 100)]:
        split = (TrafficSplitEntry(deployment_id=live.id, weight=100),)
        text = f"routing all traffic of {endpoint.short_name!r} to deployment {live.id}"
        return _render(
            inputs,
            status,
            _working(Reason.UPDATING, text),
            SetTrafficSplit(endpoint.id, split, endpoint.etag),
        )
    # Omitted or 0 is off, on the spec as on the platform; a create sends it, later changes are updates.
    wanted_timeout = inputs.spec.inactive_timeout or 0
    if inputs.inactive_timeouts.get(live.id, wanted_timeout) != wanted_timeout:
        text = f"setting inactiveTimeout to {wanted_timeout} minutes"
        return _render(
            inputs,
            status,
            _working(Reason.UPDATING, text),
            SetV2InactiveTimeout(endpoint.id, live.id, wanted_timeout),
        )
    old = next((d for d in endpoint.deployments if d.id != live.id), None)
    if old is not None:
        rollout = status.rollout or RolloutStatus(
            from_=old.id, to=_short(live.name), phase=RolloutPhase.REMOVING_OLD
        )
        status = status.model_copy(
            update={"rollout": rollout.model_copy(update={"phase": RolloutPhase.REMOVING_OLD})}
        )
        text = f"stopping and deleting deployment {old.id}, which no longer takes traffic"
        return _render(inputs, status, _working(V2Reason.ROLLING_OUT, text), _removal_step(endpoint, old))
    v1_endpoint = migrating_from(status)
    if v1_endpoint is not None:
        return _plan_migration(inputs, status, live, v1_endpoint)
    status = status.model_copy(update={"rollout": None})
    return _render(inputs, status, _verdict_of_state(inputs, live, observing=False))


def _plan_migration(
    inputs: V2Inputs, status: TogetherEndpointStatus, live: DeploymentSummary, v1_endpoint: str
) -> V2Plan:
    """The v2 deployment of a migration exists: once it can serve, the connection ConfigMap is
    rewritten (this plan, no call: the ConfigMap is written at the end of the reconcile), and only at
    the next look (the transition interval later, time for applications that read the ConfigMap to
    switch) is the v1 endpoint deleted (left with deletionPolicy Orphan)."""
    verdict = _verdict_of_state(inputs, live, observing=False)
    rollout = status.rollout
    assert rollout is not None
    if not verdict.ready:
        status = _rolling(status, v1_endpoint, rollout.to, RolloutPhase.WAITING_READY)
        text = f"v1 endpoint {v1_endpoint} serves until the v2 deployment can: {verdict.message}"
        return _render(inputs, status, _working(V2Reason.MIGRATING, text))
    if rollout.phase != RolloutPhase.REMOVING_OLD or rollout.since is None:
        status = _rolling(status, v1_endpoint, rollout.to, RolloutPhase.REMOVING_OLD, since=inputs.now)
        text = f"v2 endpoint ready; the connection now names it; v1 endpoint {v1_endpoint} goes next"
        return _render(inputs, status, _working(V2Reason.MIGRATING, text))
    if inputs.now - rollout.since < CONNECTION_SWITCH_GRACE:
        text = f"the connection names the v2 endpoint; v1 endpoint {v1_endpoint} serves until " + (
            (rollout.since + CONNECTION_SWITCH_GRACE).isoformat()
        )
        return _render(inputs, status, _working(V2Reason.MIGRATING, text))
    if inputs.spec.deletion_policy == DeletionPolicy.ORPHAN or inputs.v1_endpoint_gone:
        return _render(inputs, status.model_copy(update={"rollout": None}), verdict)
    if inputs.v1_endpoint_gone is None:
        text = f"deleting v1 endpoint {v1_endpoint}"
        return _render(inputs, status, _working(V2Reason.MIGRATING, text), RetireV1Endpoint(v1_endpoint))
    return _render(
        inputs, status, _working(V2Reason.MIGRATING, f"waiting for v1 endpoint {v1_endpoint} to go")
    )


def _migration_start(previous: TogetherEndpointStatus, v1_endpoint: str, name: str) -> TogetherEndpointStatus:
    return TogetherEndpointStatus(
        api=TogetherAPI.V2,
        endpoint_name=previous.endpoint_name,
        connection_config_map=previous.connection_config_map,
        conditions=previous.conditions,
        rollout=RolloutStatus(from_=v1_endpoint, to=name, phase=RolloutPhase.CREATING),
    )


def migrating_from(status: TogetherEndpointStatus) -> str | None:
    """The v1 endpoint a migration in flight replaces (v1 ids are `endpoint-...`, v2 ones `ep_...`)."""
    rollout = status.rollout
    if rollout is None or rollout.from_ is None or not rollout.from_.startswith(V1_ID_PREFIX):
        return None
    return rollout.from_


def _removal_step(endpoint: Endpoint, deployment: DeploymentSummary) -> V2Action | None:
    """The next step of removing a deployment out of the split: 0/0, then (once STOPPED) delete;
    None while it stops."""
    if deployment.autoscaling.min_replicas or deployment.autoscaling.max_replicas:
        return SetV2Autoscaling(endpoint.id, deployment.id, Autoscaling(min_replicas=0, max_replicas=0))
    if deployment.state == DeploymentState.STOPPED:
        return DeleteV2Deployment(endpoint.id, deployment.id)
    return None


def _resolving(live: DeploymentSummary | None) -> _Verdict:
    if live is None:
        return _working(Reason.CREATING, "resolving the model and config")
    return _working(Reason.UPDATING, "resolving the model and config")


def _routed(endpoint: Endpoint) -> list[tuple[str, float]]:
    return [(e.deployment_id, e.weight) for e in endpoint.traffic_split if e.weight > 0]


def _rolling(
    status: TogetherEndpointStatus, source: str, to: str, phase: str, since: datetime | None = None
) -> TogetherEndpointStatus:
    previous = status.rollout
    if since is None and previous is not None and previous.phase == phase:
        since = previous.since
    return status.model_copy(update={"rollout": RolloutStatus(from_=source, to=to, phase=phase, since=since)})


def _placement(availability_zone: str | None) -> Placement | None:
    """availabilityZone is the one region the deployment may run in."""
    if availability_zone is None:
        return None
    return Placement(inline=PlacementConfig(regions=(availability_zone,)))


def _verdict_of_state(inputs: V2Inputs, deployment: DeploymentSummary, *, observing: bool) -> _Verdict:
    state = deployment.state
    stopped_wanted = inputs.spec.state == DesiredState.STOPPED
    if state == DeploymentState.FAILED:
        return _stalled(
            Reason.REMOTE_ERROR, inputs.deployment_messages.get(deployment.id) or "the deployment failed"
        )
    if state == DeploymentState.READY and (observing or not stopped_wanted):
        return _done(Reason.OBSERVING if observing else Reason.STARTED, "deployment READY")
    if state == DeploymentState.STOPPED and (observing or stopped_wanted):
        return _done(Reason.OBSERVING if observing else Reason.STOPPED, "deployment STOPPED")
    if state == DeploymentState.DEGRADED:
        return _working(
            V2Reason.DEGRADED, inputs.deployment_messages.get(deployment.id) or "deployment DEGRADED"
        )
    if state == DeploymentState.PROVISIONING:
        return _working(V2Reason.PROVISIONING, "deployment PROVISIONING")
    if state == DeploymentState.SCALING:
        return _working(V2Reason.SCALING, "deployment SCALING")
    if state == DeploymentState.STOPPING or stopped_wanted:
        return _working(Reason.STOPPING, f"deployment {short_state(state)}")
    return _working(Reason.STARTING, f"deployment {short_state(state)}")


def _live_deployment(endpoint: Endpoint) -> DeploymentSummary | None:
    """The deployment taking the traffic (the first, when the split is empty)."""
    routed = {e.deployment_id for e in endpoint.traffic_split if e.weight > 0}
    return next((d for d in endpoint.deployments if d.id in routed), None) or next(
        iter(endpoint.deployments), None
    )


def _short(qualified: str) -> str:
    return qualified.rpartition("/")[2]


def _observed(status: TogetherEndpointStatus, deployment: DeploymentSummary | None) -> TogetherEndpointStatus:
    if deployment is None:
        return status
    return status.model_copy(
        update={
            "deployment_id": deployment.id,
            "state": short_state(deployment.state),
            "hardware": deployment.hardware,
            "autoscaling": ObservedAutoscaling(
                min_replicas=deployment.autoscaling.min_replicas or 0,
                max_replicas=deployment.autoscaling.max_replicas or 0,
            ),
            "ready_replicas": deployment.ready_replicas,
            "desired_replicas": deployment.desired_replicas,
        }
    )


def _render(
    inputs: V2Inputs, status: TogetherEndpointStatus, verdict: _Verdict, action: V2Action | None = None
) -> V2Plan:
    """Conditions (Serving: READY, or DEGRADED with a ready replica), observedGeneration, events."""
    previous = inputs.previous
    state = status.state
    serving = state == short_state(DeploymentState.READY) or (
        state == short_state(DeploymentState.DEGRADED) and (status.ready_replicas or 0) > 0
    )

    def condition(kind: ConditionType, value: bool, reason: str, message: str) -> Condition:
        text: ConditionStatus = "True" if value else "False"
        before = previous.condition(kind)
        unchanged = before is not None and before.status == text
        return Condition(
            type=kind,
            status=text,
            reason=reason,
            message=message,
            observed_generation=inputs.generation,
            last_transition_time=before.last_transition_time if unchanged and before else inputs.now,
        )

    conditions = (
        condition(ConditionType.READY, verdict.ready, verdict.reason, verdict.message),
        condition(
            ConditionType.SERVING,
            serving,
            (state or Reason.NOT_CREATED).title().replace("_", ""),
            f"deployment {state}" if state else "no deployment",
        ),
        condition(
            ConditionType.RECONCILING,
            verdict.reconciling,
            verdict.reason if verdict.reconciling else Reason.RECONCILED,
            verdict.message if verdict.reconciling else "",
        ),
        condition(
            ConditionType.STALLED,
            verdict.stalled,
            verdict.reason if verdict.stalled else Reason.NOT_STALLED,
            verdict.message if verdict.stalled else "",
        ),
    )
    status = status.model_copy(update={"conditions": conditions, "observed_generation": inputs.generation})
    status = with_sync_time(status, previous, inputs.now)
    return V2Plan(status=status, action=action, events=_events(previous, verdict))


def _events(previous: TogetherEndpointStatus, verdict: _Verdict) -> tuple[Event, ...]:
    """One event per change of verdict: Warning for a stall, Normal otherwise."""
    before = previous.condition(ConditionType.READY)
    if before is not None and before.reason == verdict.reason and before.message == verdict.message:
        return ()
    if verdict.stalled:
        return (Event(EventType.WARNING, verdict.reason, verdict.message),)
    if before is not None and before.reason == verdict.reason:
        return ()
    return (Event(EventType.NORMAL, verdict.reason, verdict.message),)


# --- connection and failures -----------------------------------------------------------------------


def v2_connection_steps(spec: TogetherEndpointSpec, decided: V2Plan, inference_url: str) -> ConnectionSteps:
    """As on v1, with the v2 inference base: TOGETHER_MODEL is `<project slug>/<endpoint name>`. During
    a migration the ConfigMap keeps naming the v1 endpoint until the v2 one can serve."""
    rollout = decided.status.rollout
    holding_v1 = rollout is not None and rollout.phase != RolloutPhase.REMOVING_OLD
    if migrating_from(decided.status) is not None and holding_v1:
        return ConnectionSteps(withdraw=None, publish=None)
    wanted = spec.connection.config_map_name if spec.connection else None
    published = decided.status.connection_config_map
    withdraw = published if published is not None and published != wanted else None
    data = connection_data(spec, decided.status, inference_url)
    if wanted is None or data is None:
        return ConnectionSteps(withdraw=withdraw, publish=None)
    return ConnectionSteps(withdraw=withdraw, publish=wanted, data=data)


def with_v2_connection(
    inputs: V2Inputs, decided: V2Plan, steps: ConnectionSteps, conflict: str | None
) -> V2Plan:
    """`status.connectionConfigMap` as the steps left it; a name taken by someone else stalls."""
    status = decided.status
    if steps.withdraw is not None:
        status = status.model_copy(update={"connection_config_map": None})
    if steps.publish is None:
        return replace(decided, status=status)
    if conflict is not None and not decided.stalled:
        rendered = _render(inputs, status, _stalled(Reason.CONNECTION_CONFIG_MAP_CONFLICT, conflict))
        return replace(decided, status=rendered.status, events=decided.events + rendered.events)
    return replace(decided, status=status.model_copy(update={"connection_config_map": steps.publish}))


@dataclass(frozen=True)
class V2Failure:
    plan: V2Plan
    retry_after: float


def plan_v2_failure(
    inputs: V2Inputs, error: TogetherError, action: V2Action | None, retry: RetryPolicy
) -> V2Failure:
    """The status after a failed v2 call, and when to try again. A create answered with a 4xx made
    nothing, so its intent is dropped (the name found later is then not taken for ours); a 409 on it is
    a name taken meanwhile."""
    previous = inputs.previous.model_copy(update={"api": TogetherAPI.V2, "project_id": inputs.project_id})
    code = error.status_code
    if isinstance(action, CreateV2Endpoint):
        # The intent was written before the POST; only a 4xx proves that nothing was made.
        answered = code is not None and 400 <= code < 500
        previous = previous.model_copy(update={"create_requested_at": None if answered else inputs.now})
    if isinstance(action, CreateV2Endpoint) and code == 409:
        verdict = _stalled(
            V2Reason.NAME_TAKEN,
            f"the v2 endpoint name {action.name!r} is taken in the project: set spec.v2.endpointName to a "
            "free name",
        )
        wait = retry.auth_seconds
    elif isinstance(error, AuthError):
        verdict = _stalled(Reason.UNAUTHORIZED, f"{error}: check the API key (v2 needs a project API key)")
        wait = retry.auth_seconds
    elif isinstance(error, RateLimitedError):
        verdict = _working(Reason.RATE_LIMITED, str(error))
        wait = retry.transient_wait(error)
    elif isinstance(error, PermanentError) and not isinstance(error, NotFoundError) and code != 409:
        verdict = _stalled(Reason.INVALID_SPEC, f"{error}: change the spec to retry")
        wait = retry.auth_seconds
    else:  # transient, a stale etag (409) or a 404 of something removed meanwhile: read again, retry
        verdict = _working(Reason.API_UNAVAILABLE, str(error))
        wait = retry.transient_wait(error)
    return V2Failure(_render(replace(inputs, previous=previous), previous, verdict), wait)


# --- deletion ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class V2DeletionInputs:
    spec: TogetherEndpointSpec
    status: TogetherEndpointStatus
    endpoint: Endpoint | None
    """Our endpoint as the project's list shows it (by the recorded id, or by our name after an
    interrupted create); None when it is gone. Paused resources delete too."""
    now: datetime
    namespace_allows_adoption: bool = False
    """The namespace carries core.ADOPTION_LABEL=allowed (read where `needs_adoption_consent`)."""


@dataclass(frozen=True)
class DeleteV2Endpoint:
    endpoint_id: str


@dataclass(frozen=True)
class WaitForCreateOutcome:
    """A create whose intent is recorded and whose endpoint is not listed may still be in flight (a
    deletion runs beside the resource's reconcile): it is not taken as "nothing made" before `until`."""

    until: datetime


@dataclass(frozen=True)
class WaitForStopped:
    deployment_id: str


@dataclass(frozen=True)
class V2Released:
    message: str


V2DeletionStep = (
    SetV2Autoscaling
    | SetTrafficSplit
    | WaitForStopped
    | WaitForCreateOutcome
    | DeleteV2Deployment
    | DeleteV2Endpoint
    | V2Released
)


def released_without_calls(
    spec: TogetherEndpointSpec, status: TogetherEndpointStatus, *, namespace_allows_adoption: bool = False
) -> V2Released | None:
    """Deletion that needs no key and no call: nothing was created, Orphan, ObserveOnly, or an adopted
    endpoint the operator-wide key may no longer change (the namespace's consent is read where
    `needs_adoption_consent`)."""
    nothing_sent = status.endpoint_id is None and status.create_requested_at is None
    if nothing_sent and migrating_from(status) is None:
        return V2Released("no v2 endpoint was created")
    if spec.deletion_policy == DeletionPolicy.ORPHAN:
        return V2Released("deletionPolicy Orphan: the v2 endpoint is left in place")
    if spec.management_policy == ManagementPolicy.OBSERVE_ONLY:
        return V2Released("managementPolicy ObserveOnly: the v2 endpoint is not deleted")
    adopted = status.endpoint_id is not None and status.endpoint_id == adoption_id(spec)
    if adopted and needs_adoption_consent(spec) and not namespace_allows_adoption:
        return V2Released(
            f"v2 endpoint {status.endpoint_id} left in place: it was adopted, and its namespace does not "
            f"allow the operator-wide key to change it ({ADOPTION_LABEL}=allowed)"
        )
    return None


def plan_v2_deletion(inputs: V2DeletionInputs) -> V2DeletionStep:
    """The next step of deleting the endpoint, in the platform's order; each is safe to repeat."""
    released = released_without_calls(
        inputs.spec, inputs.status, namespace_allows_adoption=inputs.namespace_allows_adoption
    )
    if released is not None:
        return released
    endpoint = inputs.endpoint
    if endpoint is None:
        sent_at = inputs.status.create_requested_at if inputs.status.endpoint_id is None else None
        if sent_at is not None and inputs.now - sent_at < CREATE_OUTCOME_WINDOW:
            return WaitForCreateOutcome(sent_at + CREATE_OUTCOME_WINDOW)
        return V2Released("the v2 endpoint is gone")
    for deployment in endpoint.deployments:
        if deployment.autoscaling.min_replicas or deployment.autoscaling.max_replicas:
            return SetV2Autoscaling(endpoint.id, deployment.id, Autoscaling(min_replicas=0, max_replicas=0))
    routed = tuple(e for e in endpoint.traffic_split if e.weight > 0)
    if routed:
        return SetTrafficSplit(endpoint.id, (), endpoint.etag)
    for deployment in endpoint.deployments:
        if deployment.state != DeploymentState.STOPPED:
            return WaitForStopped(deployment.id)
        return DeleteV2Deployment(endpoint.id, deployment.id)
    return DeleteV2Endpoint(endpoint.id)
