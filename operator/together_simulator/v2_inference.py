"""Which v2 names answer on the inference routes, and the errors otherwise.

An application sends `<project slug>/<endpoint name>` (routed by the endpoint's traffic split) or
`<project slug>/<endpoint name>/<deployment name>` (that deployment) as `model`, with a key of the
project. The reference's troubleshooting names `routing_error` with 503 for an endpoint that cannot
route; the simulator answers 503, type `routing_error`, with one of two codes:
- `endpoint_not_configured`: the endpoint's traffic split is empty.
- `endpoint_not_ready`: no deployment in the split (or the one named) has a ready replica.
"""

from __future__ import annotations

from together_simulator.errors import ApiError
from together_simulator.v2_state import DeploymentRecord, EndpointRecord, V2Store


class V2Inference:
    def __init__(self, store: V2Store) -> None:
        self._store = store

    def admit(self, model: str, account: str, api_key: str) -> bool:
        """True if `model` is a v2 name of the caller's project that can answer now; False if it is no
        v2 name of theirs (the v1 rules apply); raises the routing error when it cannot answer."""
        project = self._store.project(account, api_key)
        parts = model.split("/")
        if len(parts) not in (2, 3) or parts[0] != project.slug:
            return False
        endpoint = self._store.endpoint_named(project.id, parts[1])
        if endpoint is None:
            return False
        if len(parts) == 3:
            deployment = next((d for d in endpoint.deployments.values() if d.name == parts[2]), None)
            if deployment is None:
                return False
            if not self._ready(deployment):
                raise _not_ready(model)
            return True
        if not endpoint.traffic_split:
            raise ApiError(
                503,
                f"Endpoint {model} has no deployments in its traffic split.",
                error_type="routing_error",
                code="endpoint_not_configured",
            )
        if not self._routable(endpoint):
            raise _not_ready(model)
        return True

    def _ready(self, deployment: DeploymentRecord) -> bool:
        return self._store.replicas(deployment).ready > 0

    def _routable(self, endpoint: EndpointRecord) -> bool:
        return bool(self._store.traffic_shares(endpoint))


def _not_ready(model: str) -> ApiError:
    return ApiError(
        503,
        f"Endpoint {model} has no ready replicas to route to.",
        error_type="routing_error",
        code="endpoint_not_ready",
    )
