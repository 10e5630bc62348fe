"""The JSON the simulated v1 API reads and writes, named after the schemas in endpoints-v1-openapi.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EndpointState = Literal["PENDING", "STARTING", "STARTED", "STOPPING", "STOPPED", "ERROR"]
RequestedState = Literal["STARTED", "STOPPED"]
UsageType = Literal["on-demand", "reserved"]

# The service stores replica counts and timeouts as 32-bit integers (`format: int32` in the spec).
INT32_MAX = 2**31 - 1


class Autoscaling(BaseModel):
    model_config = ConfigDict(strict=True)

    min_replicas: int
    max_replicas: int


class CreateEndpointRequest(BaseModel):
    # Strict: a JSON string where a number or boolean belongs is a client bug the service rejects.
    model_config = ConfigDict(strict=True)

    model: str
    hardware: str
    autoscaling: Autoscaling
    display_name: str | None = None
    disable_prompt_cache: bool = False
    disable_speculative_decoding: bool = False
    state: RequestedState = "STARTED"
    inactive_timeout: int | None = None
    availability_zone: str | None = None


class UpdateEndpointRequest(BaseModel):
    """A PATCH body: only the fields present change (`inactive_timeout: null` disables auto-stop)."""

    model_config = ConfigDict(strict=True)

    display_name: str | None = None
    state: RequestedState | None = None
    autoscaling: Autoscaling | None = None
    inactive_timeout: int | None = None


class DedicatedEndpoint(BaseModel):
    object: Literal["endpoint"] = "endpoint"
    id: str
    name: str
    display_name: str
    model: str
    hardware: str
    type: Literal["dedicated"] = "dedicated"
    owner: str
    state: EndpointState
    autoscaling: Autoscaling
    created_at: str


class ListEndpoint(BaseModel):
    """A list item: the real list leaves out display_name, hardware and autoscaling."""

    object: Literal["endpoint"] = "endpoint"
    id: str
    name: str
    model: str
    type: Literal["dedicated", "serverless"]
    owner: str
    state: EndpointState
    created_at: str


class EndpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ListEndpoint]


class HardwareSpec(BaseModel):
    gpu_type: str
    gpu_link: str
    gpu_memory: float
    gpu_count: int


class EndpointPricing(BaseModel):
    cents_per_minute: float


class HardwareAvailability(BaseModel):
    status: Literal["available", "unavailable", "insufficient"]


class HardwareWithStatus(BaseModel):
    object: Literal["hardware"] = "hardware"
    id: str
    pricing: EndpointPricing
    specs: HardwareSpec
    availability: HardwareAvailability | None = Field(
        default=None, description="Only present when the list was asked for one model."
    )
    updated_at: str


class HardwareList(BaseModel):
    object: Literal["list"] = "list"
    data: list[HardwareWithStatus]


class AvailabilityZones(BaseModel):
    avzones: list[str]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorData(BaseModel):
    error: ErrorDetail
