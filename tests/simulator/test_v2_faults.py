"""v2 beside v1: inference for v2 names, fault injection, out-of-band changes and the call log."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.simulator.api_helpers import STEP_SECONDS, api_client
from tests.simulator.v2_helpers import READY, STOPPED, V2
from together_simulator import FaultRule, RunningSimulator


@pytest.fixture
def v2(simulator: RunningSimulator) -> Iterator[V2]:
    client = V2(simulator)
    yield client
    client.close()


def chat(simulator: RunningSimulator, model: str) -> httpx.Response:
    with api_client(simulator) as inference:
        return inference.post(
            "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
        )


def test_inference_answers_a_v2_endpoint_once_a_ready_deployment_is_in_its_split(
    simulator: RunningSimulator, v2: V2
) -> None:
    endpoint = v2.create_endpoint("chat")
    deployment = v2.create_deployment(endpoint["id"])

    unconfigured = chat(simulator, "devuser/chat")
    v2.route(endpoint["id"], deployment["id"])
    not_ready = chat(simulator, "devuser/chat")
    simulator.advance_clock(2 * STEP_SECONDS)
    answered = chat(simulator, "devuser/chat")
    by_deployment = chat(simulator, "devuser/chat/blue")

    assert (unconfigured.status_code, unconfigured.json()["error"]["code"]) == (
        503,
        "endpoint_not_configured",
    )
    assert (not_ready.status_code, not_ready.json()["error"]["code"]) == (503, "endpoint_not_ready")
    assert answered.status_code == 200
    assert answered.json()["model"] == "devuser/chat"
    assert by_deployment.status_code == 200
    assert chat(simulator, "someone/chat").status_code == 404


def test_a_lost_create_response_leaves_the_deployment_created(simulator: RunningSimulator, v2: V2) -> None:
    endpoint = v2.create_endpoint()
    simulator.set_faults(
        [FaultRule(fault="lose_create_response", method="POST", path=r"/v2/.*/deployments$")]
    )

    with pytest.raises(httpx.RemoteProtocolError):
        v2.create_deployment(endpoint["id"])

    assert [d["name"] for d in v2.ok("GET", f"/endpoints/{endpoint['id']}/deployments")["data"]] == [
        "devuser/chat/blue"
    ]
    [call] = simulator.calls(method="POST", path=r"/v2/.*/deployments")
    assert (call.status, call.faults) == (0, ["lose_create_response"])


def test_rate_limits_and_server_errors_apply_to_v2_calls(simulator: RunningSimulator, v2: V2) -> None:
    simulator.set_faults(
        [
            FaultRule(fault="rate_limit", path="/v2/", times=1),
            FaultRule(fault="server_error", path="/v2/", times=1),
        ]
    )

    statuses = [v2.request("GET", "/endpoints").status_code for _ in range(3)]

    assert statuses == [429, 500, 200]
    assert [call.status for call in simulator.calls(path=r"/v2/.*")] == [429, 500, 200]


def test_out_of_band_changes_show_through_the_api(simulator: RunningSimulator, v2: V2) -> None:
    endpoint = v2.create_endpoint()
    blue = v2.create_deployment(endpoint["id"], "blue")
    green = v2.create_deployment(endpoint["id"], "green")
    v2.route(endpoint["id"], blue["id"], green["id"])
    simulator.advance_clock(2 * STEP_SECONDS)

    scaled = simulator.v2_out_of_band(blue["id"], "scale", min_replicas=2, max_replicas=4)
    simulator.v2_out_of_band(green["id"], "unroute")
    simulator.advance_clock(STEP_SECONDS)
    seen = v2.ok("GET", f"/endpoints/{endpoint['id']}")

    assert scaled is not None
    assert scaled.etag != blue["etag"]
    assert [entry["deploymentId"] for entry in seen["trafficSplit"]] == [blue["id"]]
    assert {(s["name"], s["state"], s["readyReplicas"]) for s in seen["deployments"]} == {
        ("devuser/chat/blue", READY, 2),
        ("devuser/chat/green", READY, 1),
    }

    simulator.v2_out_of_band(green["id"], "scale", min_replicas=0, max_replicas=0)
    simulator.advance_clock(STEP_SECONDS)
    assert v2.state(endpoint["id"], green["id"]) == STOPPED
    simulator.v2_out_of_band(blue["id"], "degrade", message="Startup stalled: Not ready")
    degraded = v2.deployment(endpoint["id"], blue["id"])["status"]
    assert (degraded["state"], degraded["message"]) == (
        "DEPLOYMENT_STATE_DEGRADED",
        "Startup stalled: Not ready",
    )
    simulator.v2_out_of_band(blue["id"], "fail", message="Replica crashed")
    assert v2.state(endpoint["id"], blue["id"]) == "DEPLOYMENT_STATE_FAILED"
    assert simulator.v2_out_of_band(green["id"], "delete") is None
    assert v2.request("GET", f"/endpoints/{endpoint['id']}/deployments/{green['id']}").status_code == 404
    assert [d.name for d in simulator.v2_deployments()] == ["blue"]


def test_error_after_update_fails_the_deployment_behind_a_200(simulator: RunningSimulator, v2: V2) -> None:
    endpoint = v2.create_endpoint()
    deployment = v2.create_deployment(endpoint["id"])
    simulator.set_faults([FaultRule(fault="error_after_update", method="PATCH", path="/v2/", times=1)])

    updated = v2.request(
        "PATCH",
        f"/endpoints/{endpoint['id']}/deployments/{deployment['id']}",
        json={"autoscaling": {"maxReplicas": 2}},
    )

    assert updated.status_code == 200
    status = v2.deployment(endpoint["id"], deployment["id"])["status"]
    assert (status["state"], status["message"]) == (
        "DEPLOYMENT_STATE_FAILED",
        "Replica crashed after the update",
    )
