"""Calls the v2 simulator tests share: an authenticated client on the management host and the
catalogue look-ups a deployment needs."""

from __future__ import annotations

from typing import Any

import httpx

from tests.simulator.api_helpers import MIXTRAL
from together_simulator import RunningSimulator

READY = "DEPLOYMENT_STATE_READY"
STOPPED = "DEPLOYMENT_STATE_STOPPED"


class V2:
    """The v2 API of a simulator as one key sees it: its project, and paths relative to the project."""

    def __init__(self, simulator: RunningSimulator, api_key: str | None = None) -> None:
        self.http = httpx.Client(
            base_url=simulator.management_url,
            headers={"Authorization": f"Bearer {api_key or simulator.api_key}"},
            timeout=10.0,
        )
        whoami = self.http.get("/v3/whoami")
        assert whoami.status_code == 200, whoami.text
        self.project: dict[str, Any] = whoami.json()["project"]
        self.prefix = f"/v2/projects/{self.project['id']}"

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"{self.prefix}{path}", **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def profile(
        self, model: str = MIXTRAL, hardware: str = "2xnvidia-h100-80gb", speculative: bool = False
    ) -> dict[str, Any]:
        """The certified deployment profile (model and config resource names) of `model` on `hardware`,
        with or without speculative decoding (a draft model in its config)."""
        models = self.http.get("/v2/supported-models", params={"search": model}).json()["data"]
        entry = next(entry for entry in models if entry["name"] == model)
        profiles = [
            profile
            for profile in entry["deploymentProfiles"]
            if f"{profile['gpuCount']}x{profile['gpuType']}" == hardware
            and bool(self.config(profile["config"]).get("draftModel")) == speculative
        ]
        assert len(profiles) == 1, profiles
        chosen: dict[str, Any] = profiles[0]
        return chosen

    def config(self, resource: str) -> dict[str, Any]:
        """A config revision by resource name, `projects/{p}/configs/{cr_...}`."""
        config: dict[str, Any] = self.http.get(f"/v2/{resource}").json()
        return config

    def create_endpoint(self, name: str = "chat") -> dict[str, Any]:
        return self.ok("POST", "/endpoints", json={"name": name})

    def create_deployment(
        self,
        endpoint_id: str,
        name: str = "blue",
        min_replicas: int = 1,
        max_replicas: int = 1,
        **profile: Any,
    ) -> dict[str, Any]:
        chosen = self.profile(**profile)
        body = {
            "name": name,
            "model": chosen["model"],
            "config": chosen["config"],
            "autoscaling": {"minReplicas": min_replicas, "maxReplicas": max_replicas},
        }
        return self.ok("POST", f"/endpoints/{endpoint_id}/deployments", json=body)

    def deployment(self, endpoint_id: str, deployment_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/endpoints/{endpoint_id}/deployments/{deployment_id}")

    def state(self, endpoint_id: str, deployment_id: str) -> str:
        state: str = self.deployment(endpoint_id, deployment_id)["status"]["state"]
        return state

    def route(self, endpoint_id: str, *deployment_ids: str) -> dict[str, Any]:
        split = [{"deploymentId": deployment_id, "weight": 1} for deployment_id in deployment_ids]
        return self.ok(
            "PATCH",
            f"/endpoints/{endpoint_id}",
            params={"updateMask": "trafficSplit"},
            json={"trafficSplit": split},
        )

    def stop(self, endpoint_id: str, deployment_id: str) -> dict[str, Any]:
        return self.ok(
            "PATCH",
            f"/endpoints/{endpoint_id}/deployments/{deployment_id}",
            json={"autoscaling": {"minReplicas": 0, "maxReplicas": 0}},
        )
