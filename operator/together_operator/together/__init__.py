"""Client for the Together AI dedicated-endpoint REST API (v1). Imports neither kopf nor kubernetes."""

from .client import MAX_RETRY_DELAY, EndpointsAPI, TogetherClient
from .errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TogetherError,
    TransientError,
)
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
    "TransientError",
    "UpdateEndpointRequest",
]
