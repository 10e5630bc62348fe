"""Request bodies and calls the simulator tests share."""

from __future__ import annotations

from typing import Any

import httpx

from together_simulator import RunningSimulator

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
LLAMA = "meta-llama/Llama-3-8b-chat-hf"

# Lifecycle steps of an hour and a real minute per minute: nothing moves unless the clock is advanced.
STEP_SECONDS = 3600.0
MINUTE_SECONDS = 60.0
STEADY: dict[str, Any] = {"transition_seconds": STEP_SECONDS, "minute_seconds": MINUTE_SECONDS}


def create_body(**overrides: Any) -> dict[str, Any]:
    """A valid create request: Mixtral on 2x H100, one replica."""
    body: dict[str, Any] = {
        "model": MIXTRAL,
        "hardware": "2x_nvidia_h100_80gb_sxm",
        "autoscaling": {"min_replicas": 1, "max_replicas": 1},
    }
    body.update(overrides)
    return body


def api_client(simulator: RunningSimulator, api_key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key or simulator.api_key}"}
    return httpx.Client(base_url=simulator.base_url, headers=headers, timeout=10.0)


def create(api: httpx.Client, **overrides: Any) -> dict[str, Any]:
    response = api.post("/endpoints", json=create_body(**overrides))
    assert response.status_code == 200, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


def state_of(api: httpx.Client, endpoint_id: str) -> str:
    response = api.get(f"/endpoints/{endpoint_id}")
    assert response.status_code == 200, response.text
    state: str = response.json()["state"]
    return state
