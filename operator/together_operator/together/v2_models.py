"""Pydantic models of the Together v2 API (Dedicated Model Inference), after the wire format of the
official SDK `together==3.1.1`: camelCase JSON, read into snake_case attributes.

As in `models`, responses ignore fields the server adds later and enumerated strings (`state`,
`visibility`, ...) are plain `str`, so a value this code has never heard of is carried through rather
than failing the response; `DeploymentState` is the vocabulary to compare against. Requests are typed
tightly and forbid unknown fields, because we write them ourselves.
"""

from typing import Any, Final, Generic, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class DeploymentState:
    """The deployment states the v2 API documents (fully qualified, as the API sends them)."""

    PROVISIONING: Final = "DEPLOYMENT_STATE_PROVISIONING"
    SCALING: Final = "DEPLOYMENT_STATE_SCALING"
    READY: Final = "DEPLOYMENT_STATE_READY"
    DEGRADED: Final = "DEPLOYMENT_STATE_DEGRADED"
    STOPPING: Final = "DEPLOYMENT_STATE_STOPPING"
    STOPPED: Final = "DEPLOYMENT_STATE_STOPPED"
    FAILED: Final = "DEPLOYMENT_STATE_FAILED"


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    def to_body(self) -> dict[str, Any]:
        """The camelCase JSON body; fields left as None are omitted (the server keeps or defaults them)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- identity ---------------------------------------------------------------------------------------


class Project(_Response):
    """The project an API key is scoped to; `slug` qualifies endpoint names for inference."""

    id: str
    name: str
    slug: str


class Whoami(_Response):
    type: str
    project: Project | None = None


def unpinned_model(model: str) -> str:
    """`projects/p/models/ml_x/revisions/rv_y` -> `projects/p/models/ml_x`."""
    return model.split("/revisions/")[0]


# --- endpoints and deployments ----------------------------------------------------------------------


class ScalingMetric(_Request):
    """What the replica count follows: `type` is the metric's (`METRIC_TARGET_TYPE_*`, fixed per name)."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)

    name: str
    type: str
    target: float
    percentile: str | None = None


class Autoscaling(_Request):
    """Replica bounds and the scaling policy. On an update a field left out (None) keeps its value;
    0/0 stops a deployment. Windows are protobuf JSON durations (`300s`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)

    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_up_window: str | None = None
    scale_down_window: str | None = None
    scale_to_zero_window: str | None = None
    scaling_metrics: tuple[ScalingMetric, ...] | None = None


class TrafficSplitEntry(_Request):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)

    deployment_id: str
    weight: float


class DeploymentSummary(_Response):
    """A deployment as its endpoint shows it: enough to poll every deployment with one endpoint list."""

    id: str
    name: str
    state: str
    autoscaling: Autoscaling
    model: str
    hardware: str | None = None
    desired_replicas: int | None = None
    ready_replicas: int | None = None


class Endpoint(_Response):
    id: str
    name: str
    """`<project slug>/<endpoint name>`: what applications send as `model`."""
    project_id: str
    etag: str
    visibility: str
    traffic_split: list[TrafficSplitEntry] = Field(default_factory=list)
    deployments: list[DeploymentSummary] = Field(default_factory=list)

    @property
    def short_name(self) -> str:
        return self.name.rpartition("/")[2]


class DeploymentStatus(_Response):
    state: str
    message: str = ""
    ready_replicas: int | None = None
    scheduled_replicas: int | None = None


class Deployment(_Response):
    id: str
    name: str
    """`<project slug>/<endpoint name>/<deployment name>`."""
    endpoint_id: str
    etag: str
    model: str
    config: str
    hardware: str
    autoscaling: Autoscaling
    status: DeploymentStatus
    desired_replicas: int | None = None
    speculator: str | None = None
    inactive_timeout: int | None = None

    @property
    def short_name(self) -> str:
        return self.name.rpartition("/")[2]


class PlacementConfig(_Request):
    regions: tuple[str, ...]
    constraint: str = "ENFORCEMENT_REQUIRED"
    """`ENFORCEMENT_REQUIRED` or `ENFORCEMENT_PREFERRED`: how strictly the regions are kept to."""


class Placement(_Request):
    """Inline placement parameters (the SDK's `PlacementInline`); a saved profile is not used here."""

    inline: PlacementConfig


class CreateDeploymentRequest(_Request):
    name: str
    model: str
    """A model resource name, `projects/{p}/models/{ml_...}[/revisions/{rv_...}]`."""
    config: str
    """A config revision resource name, `projects/{p}/configs/{cr_...}`."""
    autoscaling: Autoscaling
    inactive_timeout: int | None = None
    placement: Placement | None = None


# --- catalogue --------------------------------------------------------------------------------------


class DeploymentProfile(_Response):
    """A certified model/config pairing of a supported model, on one hardware."""

    config: str
    model: str
    gpu_count: int
    gpu_type: str
    certified_config_revision_id: str = ""

    @property
    def hardware(self) -> str:
        """The instance type name, `{count}x{type}`, e.g. `2xnvidia-h100-80gb`."""
        return f"{self.gpu_count}x{self.gpu_type}"


class SupportedModel(_Response):
    id: str
    name: str
    """The catalogue name, e.g. `mistralai/Mixtral-8x7B-Instruct-v0.1`."""
    base_model: str
    deployment_profiles: list[DeploymentProfile] = Field(default_factory=list)


class Selector(_Response):
    key: str
    value: str


class Config(_Response):
    id: str
    project_id: str
    reference_model: str
    selectors: list[Selector] = Field(default_factory=list)
    draft_model: str | None = None

    @property
    def resource(self) -> str:
        return f"projects/{self.project_id}/configs/{self.id}"

    @property
    def hardware(self) -> str | None:
        """`{accelerator_count}x{accelerator_type}` from the selectors, as the 3.x CLI names it."""
        values = {selector.key: selector.value for selector in self.selectors}
        count, accelerator = values.get("accelerator_count"), values.get("accelerator_type")
        return f"{count}x{accelerator}" if count and accelerator else None


class Region(_Response):
    name: str


class InstanceType(_Response):
    id: str
    name: str
    description: str = ""
    gpu_count: int
    gpu_type: str
    price_cents_per_hour: int
    regions: list[Region] = Field(default_factory=list)


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(_Response, Generic[ItemT]):
    data: list[ItemT] = Field(default_factory=list)
    next_cursor: str | None = Field(default=None, validation_alias=AliasChoices("next_cursor", "nextCursor"))
