"""The JSON of the simulated v2 API (Dedicated Model Inference), shaped after the types of the official
SDK `together==3.1.1` (`together/types/`): camelCase on the wire, list pages as
`{"object": "list", "data": [...], "next_cursor": ...}`."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DeploymentState = Literal[
    "DEPLOYMENT_STATE_PROVISIONING",
    "DEPLOYMENT_STATE_READY",
    "DEPLOYMENT_STATE_SCALING",
    "DEPLOYMENT_STATE_DEGRADED",
    "DEPLOYMENT_STATE_FAILED",
    "DEPLOYMENT_STATE_STOPPED",
    "DEPLOYMENT_STATE_STOPPING",
]
Visibility = Literal["VISIBILITY_PRIVATE", "VISIBILITY_INTERNAL"]
MetricName = Literal[
    "active_sessions",
    "cache_hit_rate",
    "decoding_speed",
    "e2e_latency",
    "gpu_utilization",
    "inflight_requests",
    "throughput_per_replica",
    "token_utilization",
    "ttft",
]
MetricTargetType = Literal[
    "METRIC_TARGET_TYPE_VALUE", "METRIC_TARGET_TYPE_UTILIZATION", "METRIC_TARGET_TYPE_AVERAGE_VALUE"
]


class CamelModel(BaseModel):
    """Reads and writes camelCase; requests reject unknown fields as the service's strict JSON does."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --- identity ---------------------------------------------------------------------------------------


class WhoamiApiKey(CamelModel):
    id: str


class WhoamiOrganization(CamelModel):
    id: str
    name: str


class WhoamiProject(CamelModel):
    id: str
    name: str
    slug: str


class Whoami(CamelModel):
    type: Literal["project_api_key"] = "project_api_key"
    api_key: WhoamiApiKey = Field(alias="api_key")
    organization: WhoamiOrganization
    project: WhoamiProject


# --- autoscaling and traffic ------------------------------------------------------------------------


class ScalingMetric(CamelModel):
    name: MetricName
    type: MetricTargetType
    target: float
    percentile: Literal["p50", "p90", "p95", "p99"] | None = None


class Autoscaling(CamelModel):
    """Replica bounds and scaling settings; on an update, a bound left out keeps its value."""

    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=0)
    scale_up_window: str | None = None
    scale_down_window: str | None = None
    scale_to_zero_window: str | None = None
    scaling_metrics: list[ScalingMetric] | None = None


class TrafficSplitEntry(CamelModel):
    deployment_id: str
    weight: float = Field(ge=0, allow_inf_nan=False)


# --- endpoints --------------------------------------------------------------------------------------


class CreateEndpointRequest(CamelModel):
    name: str
    visibility: Visibility = "VISIBILITY_PRIVATE"


class UpdateEndpointRequest(CamelModel):
    etag: str | None = None
    name: str | None = None
    traffic_split: list[TrafficSplitEntry] | None = None
    visibility: Visibility | None = None


class DeploymentSummary(CamelModel):
    id: str
    autoscaling: Autoscaling
    created_at: str
    estimated_effective_traffic_share: float
    model: str
    model_id: str
    name: str
    state: DeploymentState
    traffic_mode: Literal["TRAFFIC_MODE_LIVE"] = "TRAFFIC_MODE_LIVE"
    desired_replicas: int
    hardware: str
    ready_replicas: int


class Endpoint(CamelModel):
    id: str
    created_at: str
    deployments: list[DeploymentSummary]
    endpoint_type: Literal["ENDPOINT_TYPE_DEDICATED"] = "ENDPOINT_TYPE_DEDICATED"
    etag: str
    name: str
    project_id: str
    traffic_split: list[TrafficSplitEntry]
    updated_at: str
    visibility: Visibility


# --- deployments ------------------------------------------------------------------------------------


class CreateDeploymentRequest(CamelModel):
    name: str
    autoscaling: Autoscaling
    config: str | None = None
    config_id: str | None = None
    model: str | None = None
    model_id: str | None = None
    model_revision_id: str | None = None
    inactive_timeout: int | None = None
    max_concurrent_requests_per_replica: str | None = None
    # Placement (regions, profiles) is accepted and has no effect on the simulation.
    placement: dict[str, object] | None = None


class UpdateDeploymentRequest(CamelModel):
    etag: str | None = None
    name: str | None = None
    autoscaling: Autoscaling | None = None
    inactive_timeout: int | None = None
    max_concurrent_requests_per_replica: str | None = None


class RegionReplicas(CamelModel):
    region: str
    ready_replicas: int
    scheduled_replicas: int


class StatusDetails(CamelModel):
    region: list[RegionReplicas]


class DeploymentStatus(CamelModel):
    state: DeploymentState
    message: str
    ready_replicas: int
    scheduled_replicas: int
    details: StatusDetails


class Deployment(CamelModel):
    id: str
    autoscaling: Autoscaling
    config: str
    config_id: str
    created_at: str
    endpoint_id: str
    etag: str
    hardware: str
    model: str
    model_id: str
    model_revision_id: str
    name: str
    project_id: str
    status: DeploymentStatus
    traffic_mode: Literal["TRAFFIC_MODE_LIVE"] = "TRAFFIC_MODE_LIVE"
    updated_at: str
    desired_replicas: int
    estimated_effective_traffic_share: float
    inactive_timeout: int | None = None
    max_concurrent_requests_per_replica: str | None = None
    speculator: str | None = None
    speculator_id: str | None = None


# --- catalogue --------------------------------------------------------------------------------------


class ModelWeights(CamelModel):
    architecture: str | None = None
    type: Literal["WEIGHTS_TYPE_DEFAULT", "WEIGHTS_TYPE_SPECULATOR"] = "WEIGHTS_TYPE_DEFAULT"


class Model(CamelModel):
    id: str
    name: str
    organization_id: str
    project_id: str
    visibility: Visibility = "VISIBILITY_INTERNAL"
    weights: ModelWeights
    description: str | None = None


class ModelRevision(CamelModel):
    created_at: str
    revision_id: str
    validation_status: Literal["REVISION_VALIDATION_STATUS_SUCCESS"] = "REVISION_VALIDATION_STATUS_SUCCESS"


class Selector(CamelModel):
    key: str
    value: str


class Certification(CamelModel):
    certification_type: Literal["CERTIFICATION_TYPE_CERTIFIED"] = "CERTIFICATION_TYPE_CERTIFIED"
    certified_at: str
    certified_by: str = "together-simulator"
    model: str
    model_revision_id: str
    target: Literal["CERTIFICATION_TARGET_DE_SERVERLESS"] = "CERTIFICATION_TARGET_DE_SERVERLESS"
    draft_model: str | None = None


class Config(CamelModel):
    id: str
    certifications: list[Certification]
    project_id: str
    reference_model: str
    reference_model_id: str
    selectors: list[Selector]
    draft_model: str | None = None


class PerformanceBenchmarks(CamelModel):
    pass


class DeploymentProfile(CamelModel):
    certified_config_revision_id: str
    certified_model_revision_id: str
    config: str
    gpu_count: int
    gpu_type: str
    model: str
    model_name: str
    parallelism: str
    performance_benchmarks: PerformanceBenchmarks = Field(default_factory=PerformanceBenchmarks)
    profile_id: str
    quantization: str = ""


class SupportedModel(CamelModel):
    id: str
    base_model: str
    base_model_id: str
    capabilities: list[str] = Field(default_factory=lambda: ["CAPABILITY_CHAT"])
    created_at: str
    deployment_profiles: list[DeploymentProfile]
    display_name: str
    display_type: str = "chat"
    input_modalities: list[str] = Field(default_factory=lambda: ["MODALITY_TEXT"])
    name: str
    output_modalities: list[str] = Field(default_factory=lambda: ["MODALITY_TEXT"])
    products: list[str] = Field(default_factory=lambda: ["PRODUCT_DEDICATED"])
    publisher: str
    status: Literal["SUPPORTED_MODEL_STATUS_SUPPORTED"] = "SUPPORTED_MODEL_STATUS_SUPPORTED"
    updated_at: str


class RegionHeadroom(CamelModel):
    relation: Literal["RELATION_EQ", "RELATION_GTE"]
    value: int


class Region(CamelModel):
    name: str
    headroom: RegionHeadroom


class InstanceType(CamelModel):
    id: str
    description: str
    gpu_count: int
    gpu_memory_gib: int
    gpu_type: str
    name: str
    price_cents_per_hour: int
    regions: list[Region]


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(BaseModel, Generic[ItemT]):
    """One page of a list; `next_cursor` (snake_case, as the SDK reads it) is None on the last page."""

    object: Literal["list"] = "list"
    data: list[ItemT]
    next_cursor: str | None = None


class DeleteResponse(BaseModel):
    """The empty body a delete answers with."""
