"""Pydantic models of the Together v1 dedicated-endpoint API (endpoints-v1-openapi.yaml).

Responses ignore fields the server adds later, and every enumerated string the server sends
(`state`, `type`, hardware `status`) is a plain `str`: a value this code has never heard of is
carried through verbatim instead of failing the whole response. Requests are typed as tightly as the
API documents them, because we write those ourselves.
"""

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

DesiredState = Literal["STARTED", "STOPPED"]
"""The states a client may ask for in a create or update request."""


class EndpointState:
    """The remote states the v1 API documents.

    Only a vocabulary: `state` fields are `str`, so compare against these constants and treat
    anything else (a future "DEGRADED", say) as unknown rather than impossible.
    """

    PENDING: Final = "PENDING"
    STARTING: Final = "STARTING"
    STARTED: Final = "STARTED"
    STOPPING: Final = "STOPPING"
    STOPPED: Final = "STOPPED"
    ERROR: Final = "ERROR"

    KNOWN: Final = frozenset({PENDING, STARTING, STARTED, STOPPING, STOPPED, ERROR})


TRANSITIONAL_STATES: Final = frozenset(
    {EndpointState.PENDING, EndpointState.STARTING, EndpointState.STOPPING}
)
"""States an endpoint leaves by itself: worth looking at again soon."""

RUNNING_STATES: Final = frozenset({EndpointState.STARTED, EndpointState.STOPPING})
"""States of an endpoint that is running (serving, or on its way down)."""


class _Response(BaseModel):
    """Base of everything parsed from the server: immutable, and tolerant of new fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _Request(BaseModel):
    """Base of request bodies: unknown fields are a bug on our side, so they are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send. Fields left as None are omitted (the server keeps or defaults them)."""
        return self.model_dump(mode="json", exclude_none=True)


class Autoscaling(BaseModel):
    """Replica bounds. Not validated here (min <= max, >= 1): the server is the authority on its rules."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    min_replicas: int
    max_replicas: int


class DedicatedEndpoint(_Response):
    """An endpoint as returned by GET, POST and PATCH `/endpoints[/{id}]`."""

    object: str
    id: str
    name: str
    """The system name, e.g. `devuser/mistralai/Mixtral-8x7B-Instruct-v0.1-bb04c904`: the `model`
    that inference requests send."""
    display_name: str
    model: str
    hardware: str
    type: str
    owner: str
    state: str
    """One of `EndpointState`, or a newer value passed through as sent."""
    autoscaling: Autoscaling
    created_at: datetime


class ListEndpoint(_Response):
    """An item of GET `/endpoints`: the list leaves out display_name, hardware and autoscaling."""

    object: str
    id: str
    name: str
    model: str
    type: str
    owner: str
    state: str
    """One of `EndpointState`, or a newer value passed through as sent."""
    created_at: datetime


class ListEndpointsResponse(_Response):
    object: str
    data: list[ListEndpoint]


class CreateEndpointRequest(_Request):
    """Body of POST `/endpoints`."""

    model: str
    hardware: str
    autoscaling: Autoscaling
    display_name: str | None = None
    disable_prompt_cache: bool | None = None
    """Deprecated by Together and ignored by the server; modelled for completeness, never set by us."""
    disable_speculative_decoding: bool | None = None
    state: DesiredState | None = None
    inactive_timeout: int | None = None
    """Minutes of inactivity before the endpoint stops itself; 0 or omitted disables it."""
    availability_zone: str | None = None


class UpdateEndpointRequest(_Request):
    """Body of PATCH `/endpoints/{id}`: every field is optional and only the ones given are sent.

    "Given" means "not None" (`to_body` excludes None, not merely unset fields), so a caller can pass
    `display_name=None` for "leave it alone". The API's JSON null for `inactive_timeout` is therefore
    never sent; it is not needed, because 0 is the documented way to turn the timeout off, and 0 is sent.
    """

    display_name: str | None = None
    state: DesiredState | None = None
    autoscaling: Autoscaling | None = None
    inactive_timeout: int | None = None


class HardwareSpec(_Response):
    gpu_type: str
    gpu_link: str
    gpu_memory: float
    """GPU memory in GB."""
    gpu_count: int


class EndpointPricing(_Response):
    cents_per_minute: float


class HardwareAvailability(_Response):
    status: str
    """Documented values: "available", "unavailable", "insufficient"; others pass through."""


class HardwareWithStatus(_Response):
    """An item of GET `/hardware`; `availability` is only present when the query named a model."""

    object: str
    id: str
    """The hardware id that create requests send, e.g. `2x_nvidia_h100_80gb_sxm`."""
    pricing: EndpointPricing
    specs: HardwareSpec
    availability: HardwareAvailability | None = None
    updated_at: datetime


class ListHardwareResponse(_Response):
    object: str
    data: list[HardwareWithStatus]


class ListAvailabilityZonesResponse(_Response):
    avzones: list[str]


class ErrorDetail(_Response):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(_Response):
    """The body of every documented error response: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail
