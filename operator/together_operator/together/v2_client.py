"""Async client for the Together v2 API (Dedicated Model Inference): projects, endpoints, deployments
and the model catalogue, as the official SDK `together==3.1.1` speaks it.

`DedicatedInferenceAPI` is the narrow interface the reconciler will depend on; `TogetherV2Client`
implements it over the HTTP layer it shares with the v1 `TogetherClient` (`http_client.TogetherHTTP`:
errors, retries, redaction, rate limiting): a POST is never retried, GET/PATCH/DELETE are.
Management calls go to the host of `TOGETHER_BASE_URL` with its `/v1` suffix dropped (`/v2/...`,
`/v3/whoami`). The key's project is looked up once (`whoami`) and kept: one client per key. Lists
follow `next_cursor` to the last page.
Updates carry the etag they were given, so a write based on a stale read fails with a 409
(`PermanentError`, `status_code` 409) instead of overwriting someone else's change.
"""

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from .errors import AuthError, TransientError
from .http_client import TogetherHTTP
from .ratelimit import RateLimiter
from .v2_models import (
    Autoscaling,
    Config,
    CreateDeploymentRequest,
    Deployment,
    Endpoint,
    InstanceType,
    Page,
    Project,
    SupportedModel,
    TrafficSplitEntry,
    Whoami,
    unpinned_model,
)

PAGE_SIZE = 500
"""The largest page the API serves: the fewest calls for a whole list."""

ItemT = TypeVar("ItemT", bound=BaseModel)


def management_base_url(base_url: str) -> str:
    """The host the v2 management API lives on: `https://api.together.ai/v1` -> `https://api.together.ai`."""
    return base_url.rstrip("/").removesuffix("/v1")


class DedicatedInferenceAPI(Protocol):
    """What the operator needs from Together v2. Failures are the `errors` classes, as for v1."""

    async def project(self) -> Project: ...

    async def list_supported_models(self) -> list[SupportedModel]: ...

    async def list_configs(self, model: str) -> list[Config]: ...

    async def get_config(self, config: str) -> Config: ...

    async def list_instance_types(self) -> list[InstanceType]: ...

    async def list_endpoints(self, *, filter: str | None = None) -> list[Endpoint]: ...

    async def get_endpoint(self, endpoint_id: str) -> Endpoint: ...

    async def create_endpoint(self, name: str) -> Endpoint: ...

    async def set_traffic_split(
        self, endpoint_id: str, split: list[TrafficSplitEntry], *, etag: str | None
    ) -> Endpoint: ...

    async def delete_endpoint(self, endpoint_id: str, *, etag: str | None = None) -> None: ...

    async def list_deployments(self, endpoint_id: str) -> list[Deployment]: ...

    async def get_deployment(self, endpoint_id: str, deployment_id: str) -> Deployment: ...

    async def create_deployment(self, endpoint_id: str, request: CreateDeploymentRequest) -> Deployment: ...

    async def set_autoscaling(
        self, endpoint_id: str, deployment_id: str, autoscaling: Autoscaling, *, etag: str | None
    ) -> Deployment: ...

    async def set_inactive_timeout(
        self, endpoint_id: str, deployment_id: str, minutes: int
    ) -> Deployment: ...

    async def delete_deployment(
        self, endpoint_id: str, deployment_id: str, *, etag: str | None = None
    ) -> None: ...


class TogetherV2Client(DedicatedInferenceAPI):
    """The v2 API over one pooled connection. `base_url` is `TOGETHER_BASE_URL` (its `/v1` is dropped)."""

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
            management_base_url(base_url),
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            transport=transport,
            rate_limiter=rate_limiter,
        )
        self._project: Project | None = None
        self._project_lock = asyncio.Lock()

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

    # --- identity -----------------------------------------------------------------------------------

    async def project(self) -> Project:
        """The key's project, from `GET /v3/whoami` the first time, kept afterwards."""
        async with self._project_lock:
            if self._project is None:
                whoami = await self._http.call("GET", "v3/whoami", Whoami.model_validate_json)
                if whoami.project is None:
                    # A user or organization credential: a human has to give the operator a project key.
                    raise AuthError(
                        f"the API key is not scoped to a project (whoami type {whoami.type!r}); "
                        "v2 needs a project API key",
                        method="GET",
                        path="v3/whoami",
                    )
                self._project = whoami.project
            return self._project

    # --- catalogue ----------------------------------------------------------------------------------

    async def list_supported_models(self) -> list[SupportedModel]:
        return await self._all("v2/supported-models", SupportedModel)

    async def list_configs(self, model: str) -> list[Config]:
        """The config revisions of `model` (a model resource name), from the model's owning project."""
        owner = _resource_project(model)
        return await self._all(
            f"v2/projects/{_segment(owner)}/configs", Config, params={"referenceModel": unpinned_model(model)}
        )

    async def get_config(self, config: str) -> Config:
        """A config revision by resource name, `projects/{p}/configs/{cr_...}`."""
        parts = config.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "configs":
            raise ValueError(f"not a config resource name: {config!r}")
        return await self._http.call(
            "GET",
            f"v2/projects/{_segment(parts[1])}/configs/{_segment(parts[3])}",
            Config.model_validate_json,
        )

    async def list_instance_types(self) -> list[InstanceType]:
        return await self._all("v2/public/inference-instance-types", InstanceType)

    # --- endpoints ----------------------------------------------------------------------------------

    async def list_endpoints(self, *, filter: str | None = None) -> list[Endpoint]:
        """Every endpoint of the project (all pages), each with its deployments' state and autoscaling."""
        params = {"filter": filter} if filter is not None else {}
        return await self._all(await self._endpoints_path(), Endpoint, params=params)

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        return await self._http.call(
            "GET", await self._endpoint_path(endpoint_id), Endpoint.model_validate_json
        )

    async def create_endpoint(self, name: str) -> Endpoint:
        """POST, exactly once: a `TransientError` means the endpoint may exist; look it up by name."""
        return await self._http.call(
            "POST",
            await self._endpoints_path(),
            Endpoint.model_validate_json,
            json={"name": name},
            idempotent=False,
        )

    async def set_traffic_split(
        self, endpoint_id: str, split: list[TrafficSplitEntry], *, etag: str | None
    ) -> Endpoint:
        """Replace the split (named in updateMask, so an empty split clears it)."""
        body: dict[str, object] = {"trafficSplit": [entry.to_body() for entry in split]}
        if etag is not None:
            body["etag"] = etag
        return await self._http.call(
            "PATCH",
            await self._endpoint_path(endpoint_id),
            Endpoint.model_validate_json,
            params={"updateMask": "trafficSplit"},
            json=body,
        )

    async def delete_endpoint(self, endpoint_id: str, *, etag: str | None = None) -> None:
        """Only an endpoint without deployments can go; a retry after a lost response may see 404."""
        await self._http.call(
            "DELETE", await self._endpoint_path(endpoint_id), _ignore, params=_etag_query(etag)
        )

    # --- deployments --------------------------------------------------------------------------------

    async def list_deployments(self, endpoint_id: str) -> list[Deployment]:
        return await self._all(f"{await self._endpoint_path(endpoint_id)}/deployments", Deployment)

    async def get_deployment(self, endpoint_id: str, deployment_id: str) -> Deployment:
        return await self._http.call(
            "GET", await self._deployment_path(endpoint_id, deployment_id), Deployment.model_validate_json
        )

    async def create_deployment(self, endpoint_id: str, request: CreateDeploymentRequest) -> Deployment:
        """POST, exactly once: a `TransientError` means the deployment may exist; look it up by name."""
        return await self._http.call(
            "POST",
            f"{await self._endpoint_path(endpoint_id)}/deployments",
            Deployment.model_validate_json,
            json=request.to_body(),
            idempotent=False,
        )

    async def set_autoscaling(
        self, endpoint_id: str, deployment_id: str, autoscaling: Autoscaling, *, etag: str | None
    ) -> Deployment:
        """New replica bounds; 0/0 stops the deployment, bounds on a stopped one restart it."""
        body: dict[str, object] = {"autoscaling": autoscaling.to_body()}
        if etag is not None:
            body["etag"] = etag
        return await self._http.call(
            "PATCH",
            await self._deployment_path(endpoint_id, deployment_id),
            Deployment.model_validate_json,
            params={"updateMask": "autoscaling"},
            json=body,
        )

    async def set_inactive_timeout(self, endpoint_id: str, deployment_id: str, minutes: int) -> Deployment:
        """Minutes without a request before the deployment stops itself; 0 turns that off."""
        return await self._http.call(
            "PATCH",
            await self._deployment_path(endpoint_id, deployment_id),
            Deployment.model_validate_json,
            params={"updateMask": "inactiveTimeout"},
            json={"inactiveTimeout": minutes},
        )

    async def delete_deployment(
        self, endpoint_id: str, deployment_id: str, *, etag: str | None = None
    ) -> None:
        """Only a STOPPED deployment out of the traffic split can go; after a lost response, 404."""
        await self._http.call(
            "DELETE",
            await self._deployment_path(endpoint_id, deployment_id),
            _ignore,
            params=_etag_query(etag),
        )

    # --- paths and pages ----------------------------------------------------------------------------

    async def _endpoints_path(self) -> str:
        return f"v2/projects/{_segment((await self.project()).id)}/endpoints"

    async def _endpoint_path(self, endpoint_id: str) -> str:
        return f"{await self._endpoints_path()}/{_segment(endpoint_id)}"

    async def _deployment_path(self, endpoint_id: str, deployment_id: str) -> str:
        return f"{await self._endpoint_path(endpoint_id)}/deployments/{_segment(deployment_id)}"

    async def _all(
        self, path: str, item: type[ItemT], *, params: dict[str, str] | None = None
    ) -> list[ItemT]:
        """Every item of a list, page after page until `next_cursor` is empty."""
        parse: Callable[[bytes], Page[ItemT]] = Page[item].model_validate_json  # type: ignore[valid-type]
        items: list[ItemT] = []
        cursors: set[str] = set()
        query = {**(params or {}), "limit": str(PAGE_SIZE)}
        while True:
            page = await self._http.call("GET", path, parse, params=query)
            items += page.data
            if not page.next_cursor:
                return items
            if page.next_cursor in cursors:
                raise TransientError(
                    f"the server repeated page cursor {page.next_cursor!r}", method="GET", path=path
                )
            cursors.add(page.next_cursor)
            query = {**query, "after": page.next_cursor}


def _segment(value: str) -> str:
    if not value:
        raise ValueError("an id in a path must not be empty")
    # Quoted whole, so an odd id can never reach another path or add a query.
    return quote(value, safe="")


def _resource_project(resource: str) -> str:
    parts = resource.split("/")
    if len(parts) < 4 or parts[0] != "projects":
        raise ValueError(f"not a resource name: {resource!r}")
    return parts[1]


def _etag_query(etag: str | None) -> dict[str, str]:
    return {"etag": etag} if etag is not None else {}


def _ignore(body: bytes) -> None:
    return None
