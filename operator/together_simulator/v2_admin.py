"""The admin side of v2: every project's deployments as they are inside, and changes made behind the
API client's back (by a person with the vendor's CLI or console, or by the platform itself).

    GET  /_admin/v2/deployments                      every deployment, with its endpoint and project
    POST /_admin/v2/deployments/{id}/out-of-band     body: {"action": ..., params}, see V2OutOfBandChange

Actions: `scale` (min_replicas, max_replicas; 0/0 stops), `unroute` (out of the traffic split),
`delete` (gone, whatever its state), `degrade` and `fail` (the platform reports DEGRADED or FAILED with
`message`). Changes made by hand move the etag, as any write does.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter

from together_simulator.admin import ADMIN_PREFIX
from together_simulator.errors import ApiError, read_json
from together_simulator.v2_state import DeploymentRecord, EndpointRecord, V2Store
from together_simulator.v2_wire import Autoscaling, DeploymentState


class AdminDeployment(BaseModel):
    id: str
    name: str
    endpoint_id: str
    endpoint_name: str
    project_id: str
    model: str
    config: str
    hardware: str
    autoscaling: Autoscaling
    state: DeploymentState
    message: str
    ready_replicas: int
    traffic_weight: float | None = Field(description="Its weight in the endpoint's split; None when out.")
    etag: str
    inactive_timeout: int | None = Field(default=None, description="Minutes; None or 0: off.")
    speculator: str | None = Field(
        default=None, description="The draft model its config pins (speculative decoding); None: none."
    )


class ScaleDeployment(BaseModel):
    action: Literal["scale"]
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=0)


class UnrouteDeployment(BaseModel):
    action: Literal["unroute"]


class DeleteDeployment(BaseModel):
    action: Literal["delete"]


class DegradeDeployment(BaseModel):
    action: Literal["degrade"]
    message: str = "Startup stalled: Not ready"


class FailDeployment(BaseModel):
    action: Literal["fail"]
    message: str = "Replica crashed: engine exited with code 1"


V2OutOfBandChange = Annotated[
    ScaleDeployment | UnrouteDeployment | DeleteDeployment | DegradeDeployment | FailDeployment,
    Field(discriminator="action"),
]
_change = TypeAdapter[V2OutOfBandChange](V2OutOfBandChange)


class V2Admin:
    def __init__(self, store: V2Store) -> None:
        self._store = store

    def deployments(self) -> list[AdminDeployment]:
        return [
            self._view(endpoint, deployment)
            for endpoint in self._store.all_endpoints()
            for deployment in endpoint.deployments.values()
        ]

    def out_of_band(self, deployment_id: str, change: V2OutOfBandChange) -> AdminDeployment | None:
        """Apply `change`; the deployment afterwards, None once deleted."""
        endpoint, deployment = self._find(deployment_id)
        match change:
            case ScaleDeployment(min_replicas=min_replicas, max_replicas=max_replicas):
                if min_replicas > max_replicas or (min_replicas == 0 and max_replicas > 0):
                    raise ApiError(400, f"invalid bounds {min_replicas}/{max_replicas}")
                bounds = {"min_replicas": min_replicas, "max_replicas": max_replicas}
                self._store.set_autoscaling(deployment, deployment.autoscaling.model_copy(update=bounds))
                self._store.touch_deployment(deployment)
            case UnrouteDeployment():
                endpoint.traffic_split.pop(deployment.id, None)
                self._store.touch_endpoint(endpoint)
            case DeleteDeployment():
                self._store.delete_deployment(endpoint, deployment)
                self._store.touch_endpoint(endpoint)
                return None
            case DegradeDeployment(message=message):
                self._store.degrade(deployment, message)
            case FailDeployment(message=message):
                self._store.fail(deployment, message)
        return self._view(endpoint, deployment)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{ADMIN_PREFIX}/v2/deployments", self._get_deployments),
            web.post(f"{ADMIN_PREFIX}/v2/deployments/{{deployment_id}}/out-of-band", self._post_out_of_band),
        ]

    def _find(self, deployment_id: str) -> tuple[EndpointRecord, DeploymentRecord]:
        for endpoint in self._store.all_endpoints():
            deployment = endpoint.deployments.get(deployment_id)
            if deployment is not None:
                return endpoint, deployment
        raise ApiError(404, f"deployment {deployment_id} not found", param="deployment_id")

    def _view(self, endpoint: EndpointRecord, deployment: DeploymentRecord) -> AdminDeployment:
        phase = self._store.phase(deployment)
        return AdminDeployment(
            id=deployment.id,
            name=deployment.name,
            endpoint_id=endpoint.id,
            endpoint_name=endpoint.name,
            project_id=endpoint.project_id,
            model=deployment.model.pinned,
            config=deployment.config.resource,
            hardware=deployment.config.hardware,
            autoscaling=deployment.autoscaling,
            state=phase.state,
            message=phase.message,
            ready_replicas=self._store.replicas(deployment).ready,
            traffic_weight=endpoint.traffic_split.get(deployment.id),
            etag=deployment.etag,
            inactive_timeout=deployment.inactive_timeout,
            speculator=deployment.config.speculator.pinned if deployment.config.speculator else None,
        )

    async def _get_deployments(self, request: web.Request) -> web.Response:
        return web.json_response([deployment.model_dump(mode="json") for deployment in self.deployments()])

    async def _post_out_of_band(self, request: web.Request) -> web.Response:
        change = _change.validate_python(await read_json(request))
        deployment = self.out_of_band(request.match_info["deployment_id"], change)
        if deployment is None:
            return web.Response(status=204)
        return web.json_response(deployment.model_dump(mode="json"))
