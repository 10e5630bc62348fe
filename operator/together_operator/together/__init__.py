"""Clients for the Together AI dedicated-endpoint REST APIs (v1 here, v2 in `v2_client`), over one
shared HTTP layer (`TogetherHTTP`). Imports neither kopf nor kubernetes."""

from .client import EndpointsAPI, TogetherClient
from .errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TogetherError,
    TransientError,
)
from .http_client import MAX_RETRY_DELAY, BeforeSend, TogetherHTTP
from .models import (
    Autoscaling,
    CreateEndpointRequest,
    DedicatedEndpoint,
    DesiredState,
    EndpointPricing,
    EndpointState,
    ErrorBody,
    ErrorDetail,
    HardwareAvailability,
    HardwareSpec,
    HardwareWithStatus,
    ListEndpoint,
    UpdateEndpointRequest,
)
from .ratelimit import RateLimiter

__all__ = [
    "MAX_RETRY_DELAY",
    "AuthError",
    "Autoscaling",
    "BeforeSend",
    "CreateEndpointRequest",
    "DedicatedEndpoint",
    "DesiredState",
    "EndpointPricing",
    "EndpointState",
    "EndpointsAPI",
    "ErrorBody",
    "ErrorDetail",
    "HardwareAvailability",
    "HardwareSpec",
    "HardwareWithStatus",
    "ListEndpoint",
    "NotFoundError",
    "PermanentError",
    "RateLimitedError",
    "RateLimiter",
    "TogetherClient",
    "TogetherError",
    "TogetherHTTP",
    "TransientError",
    "UpdateEndpointRequest",
]
