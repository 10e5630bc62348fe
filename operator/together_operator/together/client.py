"""Async client for the Together v1 dedicated-endpoint API.

`EndpointsAPI` is the narrow interface the reconciler depends on; `TogetherClient` implements it over
HTTP with httpx. Every failure surfaces as one of the `errors` classes.

Requests go through `http_client.TogetherHTTP`, shared with the v2 client: auth, rate limiting, the
retry policy (a create is never retried), error mapping, the `before_send` hook and redaction of the
key are described there.
"""

from types import TracebackType
from typing import Protocol, Self
from urllib.parse import quote

import httpx

from .http_client import BeforeSend, TogetherHTTP
from .models import (
    CreateEndpointRequest,
    DedicatedEndpoint,
    HardwareWithStatus,
    ListAvailabilityZonesResponse,
    ListEndpoint,
    ListEndpointsResponse,
    ListHardwareResponse,
    UpdateEndpointRequest,
)
from .ratelimit import RateLimiter


class EndpointsAPI(Protocol):
    """What the operator needs from a Together backend. A future v2 backend implements the same.

    Failures are raised as the `errors` classes, whatever the backend: in particular `NotFoundError`
    for an endpoint id that does not exist, and `TransientError` from `create_endpoint` when it cannot
    tell whether the endpoint was created. `create_endpoint` awaits `before_send` right before the POST
    goes out (after any wait for a rate-limiter slot), and sends nothing if it raises.
    """

    async def list_endpoints(
        self, *, type: str | None = "dedicated", usage_type: str | None = None, mine: bool | None = True
    ) -> list[ListEndpoint]: ...

    async def get_endpoint(self, endpoint_id: str) -> DedicatedEndpoint: ...

    async def create_endpoint(
        self, request: CreateEndpointRequest, *, before_send: BeforeSend | None = None
    ) -> DedicatedEndpoint: ...

    async def update_endpoint(
        self, endpoint_id: str, request: UpdateEndpointRequest
    ) -> DedicatedEndpoint: ...

    async def delete_endpoint(self, endpoint_id: str) -> None: ...

    async def list_hardware(self, model: str | None = None) -> list[HardwareWithStatus]: ...

    async def list_availability_zones(self) -> list[str]: ...


class TogetherClient(EndpointsAPI):
    """The Together v1 endpoints API over one pooled `httpx.AsyncClient`.

    `base_url` includes the version, e.g. `https://api.together.ai/v1`, with or without a trailing
    slash. Create it once and close it with `aclose()` (or use `async with`).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._http = TogetherHTTP(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            transport=transport,
            rate_limiter=rate_limiter,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._http.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def list_endpoints(
        self, *, type: str | None = "dedicated", usage_type: str | None = None, mine: bool | None = True
    ) -> list[ListEndpoint]:
        """GET /endpoints. None leaves a filter out; by default only the caller's dedicated endpoints."""
        params = _query(type=type, usage_type=usage_type, mine=mine)
        return await self._http.call(
            "GET",
            "endpoints",
            lambda body: ListEndpointsResponse.model_validate_json(body).data,
            params=params,
        )

    async def get_endpoint(self, endpoint_id: str) -> DedicatedEndpoint:
        """GET /endpoints/{id}; `NotFoundError` when there is no such endpoint."""
        return await self._http.call(
            "GET", _endpoint_path(endpoint_id), DedicatedEndpoint.model_validate_json
        )

    async def create_endpoint(
        self, request: CreateEndpointRequest, *, before_send: BeforeSend | None = None
    ) -> DedicatedEndpoint:
        """POST /endpoints, exactly once; `before_send` is awaited in the rate-limiter slot right before
        it, and an error it raises is raised here with nothing sent.

        A `TransientError` here means the outcome is unknown: the endpoint may exist. Look for it
        (list, match) before creating again.
        """
        return await self._http.call(
            "POST",
            "endpoints",
            DedicatedEndpoint.model_validate_json,
            json=request.to_body(),
            idempotent=False,
            before_send=before_send,
        )

    async def update_endpoint(self, endpoint_id: str, request: UpdateEndpointRequest) -> DedicatedEndpoint:
        """PATCH /endpoints/{id} with the fields set in `request`."""
        return await self._http.call(
            "PATCH",
            _endpoint_path(endpoint_id),
            DedicatedEndpoint.model_validate_json,
            json=request.to_body(),
        )

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """DELETE /endpoints/{id}.

        When a retry follows an attempt whose response was lost, the endpoint may already be gone and
        the retry answers `NotFoundError`: callers deleting should treat that as done.
        """
        await self._http.call("DELETE", _endpoint_path(endpoint_id), lambda body: None)

    async def list_hardware(self, model: str | None = None) -> list[HardwareWithStatus]:
        """GET /hardware; with `model`, only configurations that can serve it, with their availability."""
        return await self._http.call(
            "GET",
            "hardware",
            lambda body: ListHardwareResponse.model_validate_json(body).data,
            params=_query(model=model),
        )

    async def list_availability_zones(self) -> list[str]:
        """GET /clusters/availability-zones."""
        return await self._http.call(
            "GET",
            "clusters/availability-zones",
            lambda body: ListAvailabilityZonesResponse.model_validate_json(body).avzones,
        )


def _endpoint_path(endpoint_id: str) -> str:
    if not endpoint_id:
        raise ValueError("endpoint_id must not be empty")
    # Quoted whole, so an odd id can never reach another path ("../hardware") or add a query.
    return f"endpoints/{quote(endpoint_id, safe='')}"


def _query(**values: str | bool | None) -> dict[str, str]:
    """Query parameters without the None ones; booleans spelled as the API expects them."""
    params: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif value is not None:
            params[name] = value
    return params
