"""The TogetherEndpoint custom resource: typed spec, status and conditions.

Field names follow CONTRACT.md section 1; Python attributes are snake_case, the wire is camelCase.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "together.ai"
VERSION = "v1alpha1"
PLURAL = "togetherendpoints"
KIND = "TogetherEndpoint"

PAUSED_ANNOTATION = "together.ai/paused"
RESTART_REQUESTED_ANNOTATION = "together.ai/restart-requested-at"
DEFAULT_SECRET_KEY = "api-key"
# The largest integer the CRD admits: Together reads its integers as int32.
INT32_MAX = 2_147_483_647


class _CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        protected_namespaces=(),
        frozen=True,
    )


class DesiredState(StrEnum):
    STARTED = "Started"
    STOPPED = "Stopped"


class DeletionPolicy(StrEnum):
    DELETE = "Delete"
    ORPHAN = "Orphan"


class ManagementPolicy(StrEnum):
    FULL = "Full"
    OBSERVE_ONLY = "ObserveOnly"


class TogetherAPI(StrEnum):
    """Which Together API manages an endpoint (CONTRACT section 6)."""

    V1 = "v1"
    V2 = "v2"


class GPUShorthand(_CamelModel):
    """`--gpu h100 --gpu-count 2` of the vendor CLI; resolved to one hardware id per model."""

    type: str
    count: int = Field(ge=1, le=INT32_MAX)


class AutoscalingSpec(_CamelModel):
    min_replicas: int = Field(default=1, ge=1, le=INT32_MAX)
    max_replicas: int = Field(default=1, ge=1, le=INT32_MAX)


class SecretKeyRef(_CamelModel):
    name: str
    key: str = DEFAULT_SECRET_KEY


class ConnectionSpec(_CamelModel):
    config_map_name: str | None = None


class ScheduleSpec(_CamelModel):
    """When a `Started` endpoint may run (`schedule.py`): outside every window it is stopped."""

    time_zone: str = Field(default="UTC", min_length=1)
    running: tuple[str, ...] = Field(min_length=1)


class ScalingMetricSpec(_CamelModel):
    name: str
    target: float = Field(gt=0)
    percentile: str | None = None


class V2ScalingSpec(_CamelModel):
    """The v2 deployment's autoscaling policy; windows are durations such as `5m` or `1h30m`."""

    metric: ScalingMetricSpec | None = None
    scale_up_window: str | None = None
    scale_down_window: str | None = None
    scale_to_zero_window: str | None = None


class V2Spec(_CamelModel):
    endpoint_name: str | None = None
    config: str | None = None
    """An exact config revision `projects/<p>/configs/<cr_...>`; omitted: resolved from the hardware."""
    scaling: V2ScalingSpec | None = None


class TogetherEndpointSpec(_CamelModel):
    """What the user asked for. Admission (the CRD's schema and CEL rules) has already validated it."""

    model: str = Field(min_length=1)
    hardware: str | None = None
    gpu: GPUShorthand | None = None
    display_name: str | None = None
    autoscaling: AutoscalingSpec = AutoscalingSpec()
    state: DesiredState = DesiredState.STARTED
    inactive_timeout: int | None = Field(default=None, ge=0, le=INT32_MAX)
    availability_zone: str | None = None
    speculative_decoding: bool = False
    prompt_cache: bool | None = None
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE
    management_policy: ManagementPolicy = ManagementPolicy.FULL
    endpoint_id: str | None = None
    api_key_secret_ref: SecretKeyRef | None = None
    connection: ConnectionSpec | None = None
    schedule: ScheduleSpec | None = None
    # No default: the operator's --default-api decides for a resource without it (status.api records it).
    api: TogetherAPI | None = None
    v2: V2Spec | None = None

    @property
    def auto_stop_enabled(self) -> bool:
        return bool(self.inactive_timeout)


ConditionStatus = Literal["True", "False", "Unknown"]


class ConditionType(StrEnum):
    READY = "Ready"
    SERVING = "Serving"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class Condition(_CamelModel):
    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: datetime | None = None


class ObservedAutoscaling(_CamelModel):
    min_replicas: int
    max_replicas: int


class AutoStopRecord(_CamelModel):
    """Remembers the moment an inactivity stop was accepted, so a restart needs a new generation or
    a new `together.ai/restart-requested-at` value."""

    generation: int
    restart_requested_at: str | None = None


class CreateIntent(_CamelModel):
    """What the one create call sent, recorded with the intent before sending it: an interrupted create
    is found again by this, not by the spec as it is now (which may have changed meanwhile)."""

    model: str
    hardware: str
    display_name: str
    outcome_unknown_since: datetime | None = None
    """When the create got no verdict (a timeout, a lost connection, a 5xx, an unreadable 2xx): it was
    sent by then, so the window in which its endpoint may still appear runs from here."""


class Pricing(_CamelModel):
    """USD as decimal strings (`pricing.py`): per replica-hour, and per hour at the replica bounds."""

    per_replica_hour: str
    min_hourly: str
    max_hourly: str
    hourly_range: str
    """`min-max`, for the `$/h` printer column (a column shows one field)."""


class ScheduleStatus(_CamelModel):
    active: bool
    """In a running window now."""
    next_transition: datetime | None = None
    """When a window next opens or closes; None: never."""


class RolloutStatus(_CamelModel):
    """A v2 change of deployment (or a v1 -> v2 migration) in flight."""

    from_: str | None = Field(default=None, alias="from")
    to: str
    phase: str
    since: datetime | None = None
    """When the phase began (a migration deletes the v1 endpoint a grace period after the switch)."""


class TogetherEndpointStatus(_CamelModel):
    endpoint_id: str | None = None
    # Fingerprint (not the key) of the API key that created or first saw the endpoint: to any other key
    # a 404 may only mean "not visible to this key", never "deleted".
    api_key_fingerprint: str | None = None
    endpoint_name: str | None = None
    state: str | None = None
    hardware: str | None = None
    autoscaling: ObservedAutoscaling | None = None
    display_name: str | None = None
    created_at: datetime | None = None
    api: TogetherAPI | None = None
    # v2: the project, the deployment behind the endpoint and what the platform says of it.
    project_id: str | None = None
    deployment_id: str | None = None
    ready_replicas: int | None = None
    desired_replicas: int | None = None
    message: str | None = None
    rollout: RolloutStatus | None = None
    # Intent recorded before the one POST of a create, so a crash before endpointId is written is found.
    create_requested_at: datetime | None = None
    create_intent: CreateIntent | None = None
    # The API never reports inactive_timeout back, so the last value sent is kept to PATCH only changes.
    inactive_timeout: int | None = None
    auto_stopped: AutoStopRecord | None = None
    pricing: Pricing | None = None
    schedule: ScheduleStatus | None = None
    # The ConfigMap last published for spec.connection, so a renamed or removed one is cleaned up.
    connection_config_map: str | None = None
    observed_generation: int | None = None
    # The last generation reconciled without an API failure: observedGeneration also moves on failed
    # attempts, and a spec that was never sent must not be taken as applied.
    reconciled_generation: int | None = None
    last_sync_time: datetime | None = None
    conditions: tuple[Condition, ...] = ()

    def condition(self, condition_type: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)

    def to_patch(self) -> dict[str, object]:
        """The status as JSON for a merge patch of the status subresource."""
        return self.model_dump(mode="json", exclude_none=False)
