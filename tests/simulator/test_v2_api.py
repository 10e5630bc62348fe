"""The simulated v2 API (Dedicated Model Inference): projects, endpoints, deployments and their rules.

States change only when a test advances the clock (lifecycle steps of an hour, see conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.simulator.api_helpers import LLAMA, MIXTRAL, STEADY, STEP_SECONDS
from tests.simulator.v2_helpers import READY, STOPPED, V2
from tests.support.simulator_fixtures import SimulatorFactory
from together_simulator import RunningSimulator


@pytest.fixture
def v2(simulator: RunningSimulator) -> Iterator[V2]:
    client = V2(simulator)
    yield client
    client.close()


def test_each_account_has_a_project_and_sees_only_its_own(simulator_factory: SimulatorFactory) -> None:
    simulator = simulator_factory(accounts={"key-a": "alice", "key-b": "bob", "key-a2": "alice"}, **STEADY)
    alice, bob, alice_again = V2(simulator, "key-a"), V2(simulator, "key-b"), V2(simulator, "key-a2")
    endpoint = alice.create_endpoint()

    assert alice.project["slug"] == "alice"
    assert alice_again.project == alice.project
    assert bob.project["id"] != alice.project["id"]
    assert bob.http.get(f"{alice.prefix}/endpoints/{endpoint['id']}").status_code == 403
    assert bob.ok("GET", "/endpoints")["data"] == []
    whoami = alice.http.get("/v3/whoami").json()
    assert whoami["type"] == "project_api_key"
    assert "key-a" not in str(whoami)


def test_an_unknown_key_is_refused(simulator: RunningSimulator) -> None:
    response = httpx.get(
        f"{simulator.management_url}/v3/whoami", headers={"Authorization": "Bearer not-a-key"}, timeout=10.0
    )

    assert response.status_code == 401
    assert [(call.status, call.account) for call in simulator.calls(path="/v3/whoami")] == [(401, None)]


def test_endpoint_names_are_qualified_by_the_project_unique_and_immutable(v2: V2) -> None:
    endpoint = v2.create_endpoint("chat")

    assert endpoint["name"] == "devuser/chat"
    assert v2.ok("GET", f"/endpoints/{endpoint['id']}")["name"] == "devuser/chat"
    assert v2.request("POST", "/endpoints", json={"name": "devuser/chat"}).status_code == 409
    assert v2.request("POST", "/endpoints", json={"name": "someone-else/other"}).status_code == 400
    assert v2.request("POST", "/endpoints", json={"name": "Not_A_Name"}).status_code == 400
    renamed = v2.request("PATCH", f"/endpoints/{endpoint['id']}", json={"name": "other"})
    assert renamed.status_code == 400
    assert "immutable" in renamed.json()["error"]["message"]
    assert (
        v2.ok("PATCH", f"/endpoints/{endpoint['id']}", json={"name": "devuser/chat"})["name"]
        == "devuser/chat"
    )


def test_lists_page_with_a_cursor_filter_and_order(simulator: RunningSimulator, v2: V2) -> None:
    names = [f"ep-{index}" for index in range(5)]
    for name in names:
        v2.create_endpoint(name)
        simulator.advance_clock(1)

    seen: list[str] = []
    pages = 0
    query: dict[str, str | int] = {"limit": 2}
    while True:
        body = v2.ok("GET", "/endpoints", params=query)
        seen += [endpoint["name"] for endpoint in body["data"]]
        pages += 1
        if not body.get("next_cursor"):
            break
        query = {"limit": 2, "after": body["next_cursor"]}

    assert (seen, pages) == ([f"devuser/{name}" for name in names], 3)
    newest_first = v2.ok("GET", "/endpoints", params={"orderBy": "created_at desc"})["data"]
    assert [endpoint["name"] for endpoint in newest_first] == [f"devuser/{name}" for name in reversed(names)]
    filtered = v2.ok("GET", "/endpoints", params={"filter": 'name = "ep-1" OR name = "devuser/ep-3"'})["data"]
    assert [endpoint["name"] for endpoint in filtered] == ["devuser/ep-1", "devuser/ep-3"]
    wildcard = v2.ok("GET", "/endpoints", params={"filter": 'NOT name = "*-4"'})["data"]
    assert len(wildcard) == 4
    bad = v2.request("GET", "/endpoints", params={"filter": "colour = 'red'"})
    assert bad.status_code == 400
    assert "invalid filter expression" in bad.json()["error"]["message"]


def test_a_stale_etag_is_refused_with_409(v2: V2) -> None:
    endpoint = v2.create_endpoint()
    deployment = v2.create_deployment(endpoint["id"])
    v2.route(endpoint["id"], deployment["id"])

    stale = v2.request(
        "PATCH",
        f"/endpoints/{endpoint['id']}",
        json={"etag": endpoint["etag"], "visibility": "VISIBILITY_INTERNAL"},
    )
    current = v2.ok("GET", f"/endpoints/{endpoint['id']}")
    fresh = v2.ok(
        "PATCH",
        f"/endpoints/{endpoint['id']}",
        json={"etag": current["etag"], "visibility": "VISIBILITY_INTERNAL"},
    )

    assert stale.status_code == 409
    assert fresh["visibility"] == "VISIBILITY_INTERNAL"
    assert fresh["etag"] != current["etag"]
    deployment_path = f"/endpoints/{endpoint['id']}/deployments/{deployment['id']}"
    stale_scale = {"etag": "not-the-etag", "autoscaling": {"maxReplicas": 3}}
    assert v2.request("PATCH", deployment_path, json=stale_scale).status_code == 409
    assert v2.request("DELETE", deployment_path, params={"etag": "not-the-etag"}).status_code == 409


def test_an_empty_traffic_split_is_no_update_unless_the_mask_names_it(v2: V2) -> None:
    endpoint = v2.create_endpoint()
    deployment = v2.create_deployment(endpoint["id"])
    v2.route(endpoint["id"], deployment["id"])

    unmasked = v2.request("PATCH", f"/endpoints/{endpoint['id']}", json={"trafficSplit": []})
    masked = v2.ok(
        "PATCH",
        f"/endpoints/{endpoint['id']}",
        params={"updateMask": "trafficSplit"},
        json={"trafficSplit": []},
    )

    assert (unmasked.status_code, unmasked.json()["error"]["message"]) == (400, "no fields to update")
    assert masked["trafficSplit"] == []
    foreign = v2.request(
        "PATCH",
        f"/endpoints/{endpoint['id']}",
        json={"trafficSplit": [{"deploymentId": "dep_x", "weight": 1}]},
    )
    assert foreign.status_code == 400


def test_a_deployment_provisions_scales_and_becomes_ready(simulator: RunningSimulator, v2: V2) -> None:
    endpoint = v2.create_endpoint()
    deployment = v2.create_deployment(endpoint["id"], min_replicas=2, max_replicas=3)
    states = [deployment["status"]["state"]]
    for _ in range(2):
        simulator.advance_clock(STEP_SECONDS)
        states.append(v2.state(endpoint["id"], deployment["id"]))

    assert states == ["DEPLOYMENT_STATE_PROVISIONING", "DEPLOYMENT_STATE_SCALING", READY]
    ready = v2.deployment(endpoint["id"], deployment["id"])
    assert (ready["desiredReplicas"], ready["status"]["readyReplicas"]) == (2, 2)
    assert ready["status"]["message"]
    assert ready["name"] == "devuser/chat/blue"
    assert ready["hardware"] == "2xnvidia-h100-80gb"
    assert ready["model"].endswith(f"/revisions/{ready['modelRevisionId']}")
    summary = v2.ok("GET", f"/endpoints/{endpoint['id']}")["deployments"]
    assert [(s["id"], s["state"], s["readyReplicas"], s["autoscaling"]) for s in summary] == [
        (deployment["id"], READY, 2, {"minReplicas": 2, "maxReplicas": 3})
    ]


def test_zero_bounds_stop_a_deployment_and_bounds_restart_it(simulator: RunningSimulator, v2: V2) -> None:
    endpoint = v2.create_endpoint()
    deployment = v2.create_deployment(endpoint["id"])
    simulator.advance_clock(2 * STEP_SECONDS)

    stopping = v2.stop(endpoint["id"], deployment["id"])
    simulator.advance_clock(STEP_SECONDS)
    stopped = v2.deployment(endpoint["id"], deployment["id"])
    path = f"/endpoints/{endpoint['id']}/deployments/{deployment['id']}"
    restarted = v2.ok("PATCH", path, json={"autoscaling": {"minReplicas": 1, "maxReplicas": 2}})

    assert stopping["status"]["state"] == "DEPLOYMENT_STATE_STOPPING"
    assert (stopped["status"]["state"], stopped["desiredReplicas"]) == (STOPPED, 0)
    assert restarted["status"]["state"] == "DEPLOYMENT_STATE_PROVISIONING"


def test_autoscaling_rules_and_validate_only(v2: V2) -> None:
    endpoint = v2.create_endpoint()
    profile = v2.profile()
    body = {"name": "blue", "model": profile["model"], "config": profile["config"]}
    path = f"/endpoints/{endpoint['id']}/deployments"

    zero_floor = v2.request("POST", path, json={**body, "autoscaling": {"minReplicas": 0, "maxReplicas": 2}})
    inverted = v2.request("POST", path, json={**body, "autoscaling": {"minReplicas": 3, "maxReplicas": 2}})
    validated = v2.request(
        "POST", path, params={"validateOnly": "true"}, json={**body, "autoscaling": {"minReplicas": 1}}
    )

    assert (zero_floor.status_code, inverted.status_code, validated.status_code) == (400, 400, 200)
    assert v2.ok("GET", path)["data"] == []
    defaulted = v2.ok("POST", path, json={**body, "autoscaling": {"minReplicas": 2}})
    assert defaulted["autoscaling"] == {"minReplicas": 2, "maxReplicas": 2}


@pytest.mark.filterwarnings("error::UserWarning")  # pydantic warns when it serialises a dict as a model
def test_scaling_metrics_sent_on_an_update_are_kept_and_shown(v2: V2) -> None:
    endpoint = v2.create_endpoint()
    deployment = v2.create_deployment(endpoint["id"])
    path = f"/endpoints/{endpoint['id']}/deployments/{deployment['id']}"
    metric = {"name": "active_sessions", "type": "METRIC_TARGET_TYPE_VALUE", "target": 4.0}

    updated = v2.ok("PATCH", path, json={"autoscaling": {"scalingMetrics": [metric]}})

    assert updated["autoscaling"]["scalingMetrics"] == [metric]
    assert v2.deployment(endpoint["id"], deployment["id"])["autoscaling"]["scalingMetrics"] == [metric]


def test_a_config_must_belong_to_the_model(v2: V2) -> None:
    endpoint = v2.create_endpoint()
    llama_config = v2.profile(LLAMA, "1xnvidia-a100-80gb")["config"]
    body = {
        "name": "blue",
        "model": v2.profile()["model"],
        "config": llama_config,
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
    }
    assert v2.request("POST", f"/endpoints/{endpoint['id']}/deployments", json=body).status_code == 400


def test_deletion_follows_the_platform_order(simulator: RunningSimulator, v2: V2) -> None:
    endpoint = v2.create_endpoint()
    deployment = v2.create_deployment(endpoint["id"])
    v2.route(endpoint["id"], deployment["id"])
    simulator.advance_clock(2 * STEP_SECONDS)
    endpoint_path = f"/endpoints/{endpoint['id']}"
    deployment_path = f"{endpoint_path}/deployments/{deployment['id']}"

    running = v2.request("DELETE", deployment_path)
    v2.stop(endpoint["id"], deployment["id"])
    simulator.advance_clock(STEP_SECONDS)
    routed = v2.request("DELETE", deployment_path)
    endpoint_with_deployment = v2.request("DELETE", endpoint_path)
    v2.ok("PATCH", endpoint_path, params={"updateMask": "trafficSplit"}, json={"trafficSplit": []})

    assert [running.status_code, routed.status_code, endpoint_with_deployment.status_code] == [400, 400, 400]
    assert v2.ok("DELETE", deployment_path) == {}
    assert v2.ok("DELETE", endpoint_path) == {}
    assert v2.request("GET", endpoint_path).status_code == 404


def test_a_deployment_without_capacity_degrades_then_fails_after_the_ready_timeout(
    simulator_factory: SimulatorFactory,
) -> None:
    simulator = simulator_factory(v2_ready_timeout_seconds=5 * STEP_SECONDS, **STEADY)
    v2 = V2(simulator)
    endpoint = v2.create_endpoint()
    # The catalogue reports DeepSeek-R1 on 8x H100 as short of capacity.
    deployment = v2.create_deployment(
        endpoint["id"], model="deepseek-ai/DeepSeek-R1", hardware="8xnvidia-h100-80gb"
    )

    simulator.advance_clock(STEP_SECONDS)
    degraded = v2.deployment(endpoint["id"], deployment["id"])["status"]
    simulator.advance_clock(4 * STEP_SECONDS)
    failed = v2.deployment(endpoint["id"], deployment["id"])["status"]

    assert degraded["state"] == "DEPLOYMENT_STATE_DEGRADED"
    assert "insufficient GPU capacity" in degraded["message"]
    assert failed["state"] == "DEPLOYMENT_STATE_FAILED"
    assert failed["message"].startswith("Timed out waiting for readiness")


def test_the_catalogue_offers_every_v1_model_with_one_certified_config_per_hardware(v2: V2) -> None:
    """Per hardware one config; a model with a speculator has two, with and without its draft model."""
    supported = v2.http.get("/v2/supported-models").json()["data"]
    by_name = {entry["name"]: entry for entry in supported}

    def offers(model: str) -> list[tuple[str, bool]]:
        return sorted(
            (f"{p['gpuCount']}x{p['gpuType']}", bool(v2.config(p["config"]).get("draftModel")))
            for p in by_name[model]["deploymentProfiles"]
        )

    assert {MIXTRAL, LLAMA, "Qwen/Qwen3.5-9B-FP8", "deepseek-ai/DeepSeek-R1"} <= set(by_name)
    mixtral_hardware = [f"{count}xnvidia-{gpu}-80gb" for gpu in ("a100", "h100") for count in (2, 4, 8)]
    assert offers(MIXTRAL) == sorted(
        (hardware, draft) for hardware in mixtral_hardware for draft in (False, True)
    )
    assert [draft for _, draft in offers(LLAMA)] == [False, False, False]
    profile = by_name[MIXTRAL]["deploymentProfiles"][0]
    project, config_id = profile["config"].split("/")[1], profile["config"].split("/")[-1]
    config = v2.http.get(f"/v2/projects/{project}/configs/{config_id}").json()
    selectors = {selector["key"]: selector["value"] for selector in config["selectors"]}
    assert f"{selectors['accelerator_count']}x{selectors['accelerator_type']}" == (
        f"{profile['gpuCount']}x{profile['gpuType']}"
    )
    speculative = v2.config(v2.profile(speculative=True)["config"])
    assert speculative["draftModel"] == speculative["certifications"][0]["draftModel"]
    model_id = by_name[MIXTRAL]["baseModelId"]
    revisions = v2.http.get(f"/v2/projects/{project}/models/{model_id}/revisions").json()["data"]
    assert profile["model"].endswith(revisions[0]["revisionId"])
    instance_types = v2.http.get("/v2/public/inference-instance-types").json()["data"]
    h100x2 = next(it for it in instance_types if it["name"] == "2xnvidia-h100-80gb")
    assert (h100x2["priceCentsPerHour"], h100x2["gpuCount"]) == (672, 2)
    assert h100x2["regions"]


def test_another_projects_catalogue_and_endpoints_stay_private(v2: V2) -> None:
    assert v2.http.get("/v2/projects/proj_someone/endpoints").status_code == 403
    assert v2.http.get("/v2/projects/proj_someone/configs").status_code == 403
    assert v2.ok("GET", "/configs")["data"] == []


def test_deployment_lists_filter_on_state_and_model_regardless_of_revision(
    simulator: RunningSimulator, v2: V2
) -> None:
    endpoint = v2.create_endpoint()
    mixtral = v2.create_deployment(endpoint["id"], "blue")
    v2.create_deployment(endpoint["id"], "green", model=LLAMA, hardware="1xnvidia-a100-80gb")
    path = f"/endpoints/{endpoint['id']}/deployments"

    by_pinned_model = v2.ok("GET", path, params={"filter": f'model = "{mixtral["model"]}"'})["data"]
    simulator.advance_clock(2 * STEP_SECONDS)
    v2.stop(endpoint["id"], mixtral["id"])
    ready = v2.ok("GET", path, params={"filter": f'state = "{READY}"'})["data"]

    assert [d["name"] for d in by_pinned_model] == ["devuser/chat/blue"]
    assert [d["name"] for d in ready] == ["devuser/chat/green"]
