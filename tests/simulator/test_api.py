"""The simulator answers the v1 dedicated endpoint API as the real service does, over real HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.simulator.api_helpers import LLAMA, MIXTRAL, STEADY, api_client, create, create_body
from tests.support.simulator_fixtures import SimulatorFactory
from together_simulator import RunningSimulator

ERROR_KEYS = {"message", "type", "param", "code"}


def assert_error(response: httpx.Response, status: int, message_pattern: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert re.search(message_pattern, error["message"], re.IGNORECASE), error["message"]
    return error


class TestAuth:
    def test_unknown_key_gets_401_with_the_error_body(self, simulator: RunningSimulator) -> None:
        with api_client(simulator, api_key="not-a-key") as stranger:
            response = stranger.get("/endpoints")
        error = assert_error(response, 401, "invalid api key")
        assert error["code"] == "invalid_api_key"

    def test_missing_authorization_header_gets_401(self, simulator: RunningSimulator) -> None:
        response = httpx.get(f"{simulator.base_url}/hardware")
        assert_error(response, 401, "invalid api key")

    def test_each_key_is_an_account_that_sees_only_its_own_endpoints(
        self, simulator_factory: SimulatorFactory
    ) -> None:
        simulator = simulator_factory(accounts={"key-a": "alice", "key-b": "bob"}, **STEADY)
        with api_client(simulator, "key-a") as alice, api_client(simulator, "key-b") as bob:
            alices = create(alice)
            bobs = create(bob)

            assert alices["owner"] == "alice"
            assert alices["name"].startswith("alice/")
            assert [
                item["id"] for item in alice.get("/endpoints", params={"mine": "true"}).json()["data"]
            ] == [alices["id"]]
            assert [item["id"] for item in bob.get("/endpoints", params={"mine": "true"}).json()["data"]] == [
                bobs["id"]
            ]
            for response in (
                bob.get(f"/endpoints/{alices['id']}"),
                bob.patch(f"/endpoints/{alices['id']}", json={"state": "STOPPED"}),
                bob.delete(f"/endpoints/{alices['id']}"),
            ):
                assert_error(response, 403, "permission")
        # Bob's attempts changed nothing: both endpoints are still there, Alice's still starting.
        assert {endpoint.id: endpoint.state for endpoint in simulator.endpoints()}[alices["id"]] == "PENDING"


class TestCreate:
    def test_create_answers_200_with_the_new_dedicated_endpoint(self, api: httpx.Client) -> None:
        response = api.post(
            "/endpoints",
            json=create_body(display_name="my endpoint", autoscaling={"min_replicas": 1, "max_replicas": 3}),
        )

        assert response.status_code == 200
        endpoint = response.json()
        assert re.fullmatch(
            r"endpoint-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", endpoint["id"]
        )
        assert re.fullmatch(rf"devuser/{re.escape(MIXTRAL)}-[0-9a-f]{{8}}", endpoint["name"])
        assert endpoint | {"id": "", "name": "", "created_at": ""} == {
            "object": "endpoint",
            "id": "",
            "name": "",
            "display_name": "my endpoint",
            "model": MIXTRAL,
            "hardware": "2x_nvidia_h100_80gb_sxm",
            "type": "dedicated",
            "owner": "devuser",
            "state": "PENDING",
            "autoscaling": {"min_replicas": 1, "max_replicas": 3},
            "created_at": "",
        }
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", endpoint["created_at"])

    def test_llama_runs_on_one_a100(self, api: httpx.Client) -> None:
        endpoint = create(api, model=LLAMA, hardware="1x_nvidia_a100_80gb_sxm")
        assert endpoint["hardware"] == "1x_nvidia_a100_80gb_sxm"

    def test_create_in_stopped_state_does_not_start(self, api: httpx.Client) -> None:
        endpoint = create(api, state="STOPPED")
        assert endpoint["state"] == "STOPPED"

    def test_unknown_model_is_not_found(self, api: httpx.Client) -> None:
        response = api.post("/endpoints", json=create_body(model="nobody/no-such-model"))
        error = assert_error(response, 404, "model .*not found")
        assert error["param"] == "model"

    def test_hardware_not_offered_for_the_model_is_not_found(self, api: httpx.Client) -> None:
        response = api.post("/endpoints", json=create_body(hardware="1x_nvidia_a100_80gb_sxm"))
        error = assert_error(response, 404, "not available for this model")
        assert error["param"] == "hardware"

    def test_min_replicas_above_max_replicas_is_a_bad_request(self, api: httpx.Client) -> None:
        response = api.post(
            "/endpoints", json=create_body(autoscaling={"min_replicas": 3, "max_replicas": 2})
        )
        assert_error(response, 400, "min_replicas")

    @pytest.mark.parametrize(
        ("body", "param"),
        [
            (
                {
                    "hardware": "2x_nvidia_h100_80gb_sxm",
                    "autoscaling": {"min_replicas": 1, "max_replicas": 1},
                },
                "model",
            ),
            (create_body(hardware=""), "hardware"),
            (create_body(autoscaling={"min_replicas": "1", "max_replicas": 1}), "autoscaling.min_replicas"),
            (create_body(state="RUNNING"), "state"),
            (create_body(inactive_timeout=-1), "inactive_timeout"),
            (create_body(availability_zone="mars-north-1"), "availability_zone"),
        ],
    )
    def test_invalid_requests_are_bad_requests_naming_the_field(
        self, api: httpx.Client, body: dict[str, Any], param: str
    ) -> None:
        error = assert_error(api.post("/endpoints", json=body), 400, ".")
        assert error["param"] == param

    def test_a_body_that_is_not_json_is_a_bad_request(self, api: httpx.Client) -> None:
        assert_error(api.post("/endpoints", content=b"{not json"), 400, "not valid json")

    def test_availability_zone_is_accepted_in_the_body_or_the_query(
        self, simulator: RunningSimulator
    ) -> None:
        with api_client(simulator) as api:
            from_body = create(api, availability_zone="us-east-1a")
            response = api.post(
                "/endpoints", json=create_body(), params={"availability_zone": "us-central-4b"}
            )
        from_query = response.json()

        zones = {endpoint.id: endpoint.availability_zone for endpoint in simulator.endpoints()}
        assert zones == {from_body["id"]: "us-east-1a", from_query["id"]: "us-central-4b"}


class TestList:
    def test_list_items_leave_out_display_name_hardware_and_autoscaling(self, api: httpx.Client) -> None:
        endpoint = create(api)

        body = api.get("/endpoints", params={"mine": "true"}).json()

        assert body["object"] == "list"
        (item,) = body["data"]
        assert item == {
            "object": "endpoint",
            "id": endpoint["id"],
            "name": endpoint["name"],
            "model": MIXTRAL,
            "type": "dedicated",
            "owner": "devuser",
            "state": "PENDING",
            "created_at": endpoint["created_at"],
        }

    def test_unfiltered_list_includes_together_serverless_endpoints(self, api: httpx.Client) -> None:
        endpoint = create(api)

        items = api.get("/endpoints").json()["data"]

        assert endpoint["id"] in [item["id"] for item in items]
        serverless = [item for item in items if item["type"] == "serverless"]
        assert serverless
        assert {item["owner"] for item in serverless} == {"together"}

    @pytest.mark.parametrize(
        ("params", "expected_types"),
        [
            ({"type": "dedicated"}, {"dedicated"}),
            ({"type": "serverless"}, {"serverless"}),
            ({"mine": "true"}, {"dedicated"}),
            ({"mine": "false"}, {"dedicated", "serverless"}),
            ({"usage_type": "on-demand"}, {"dedicated"}),
            ({"usage_type": "reserved"}, set()),
        ],
    )
    def test_filters(self, api: httpx.Client, params: dict[str, str], expected_types: set[str]) -> None:
        create(api)

        items = api.get("/endpoints", params=params).json()["data"]

        assert {item["type"] for item in items} == expected_types

    @pytest.mark.parametrize("params", [{"type": "shared"}, {"usage_type": "spot"}, {"mine": "maybe"}])
    def test_invalid_filter_values_are_bad_requests(self, api: httpx.Client, params: dict[str, str]) -> None:
        error = assert_error(api.get("/endpoints", params=params), 400, "invalid")
        assert error["param"] == next(iter(params))


class TestGetUpdateDelete:
    def test_get_answers_the_full_endpoint(self, api: httpx.Client) -> None:
        endpoint = create(api, display_name="shown")

        fetched = api.get(f"/endpoints/{endpoint['id']}").json()

        assert fetched | {"state": ""} == endpoint | {"state": ""}

    def test_unknown_endpoint_is_not_found(self, api: httpx.Client) -> None:
        missing = "endpoint-00000000-0000-4000-8000-000000000000"
        for response in (
            api.get(f"/endpoints/{missing}"),
            api.patch(f"/endpoints/{missing}", json={"display_name": "x"}),
            api.delete(f"/endpoints/{missing}"),
        ):
            assert_error(response, 404, "endpoint .* not found")

    def test_update_changes_display_name_and_autoscaling(self, api: httpx.Client) -> None:
        endpoint = create(api)

        response = api.patch(
            f"/endpoints/{endpoint['id']}",
            json={"display_name": "renamed", "autoscaling": {"min_replicas": 2, "max_replicas": 4}},
        )

        assert response.status_code == 200
        assert response.json()["display_name"] == "renamed"
        assert response.json()["autoscaling"] == {"min_replicas": 2, "max_replicas": 4}
        assert api.get(f"/endpoints/{endpoint['id']}").json()["autoscaling"] == {
            "min_replicas": 2,
            "max_replicas": 4,
        }

    def test_update_with_min_replicas_above_max_replicas_is_a_bad_request(self, api: httpx.Client) -> None:
        endpoint = create(api)

        response = api.patch(
            f"/endpoints/{endpoint['id']}", json={"autoscaling": {"min_replicas": 5, "max_replicas": 1}}
        )

        assert_error(response, 400, "min_replicas")
        assert api.get(f"/endpoints/{endpoint['id']}").json()["autoscaling"] == {
            "min_replicas": 1,
            "max_replicas": 1,
        }

    def test_update_sets_and_clears_inactive_timeout(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = create(api)

        api.patch(f"/endpoints/{endpoint['id']}", json={"inactive_timeout": 30})
        set_to = simulator.endpoints()[0].inactive_timeout
        api.patch(f"/endpoints/{endpoint['id']}", json={"inactive_timeout": None})
        cleared_to = simulator.endpoints()[0].inactive_timeout

        assert (set_to, cleared_to) == (30, None)

    def test_delete_answers_204_and_the_endpoint_is_gone(self, api: httpx.Client) -> None:
        endpoint = create(api)

        response = api.delete(f"/endpoints/{endpoint['id']}")

        assert response.status_code == 204
        assert response.content == b""
        assert api.get(f"/endpoints/{endpoint['id']}").status_code == 404
        assert api.get("/endpoints", params={"mine": "true"}).json()["data"] == []


class TestHardwareAndZones:
    def test_hardware_without_model_lists_everything_without_availability(self, api: httpx.Client) -> None:
        items = api.get("/hardware").json()["data"]

        ids = {item["id"] for item in items}
        assert {"1x_nvidia_a100_80gb_sxm", "8x_nvidia_h100_80gb_sxm"} <= ids
        assert all("availability" not in item for item in items)
        assert all(item["object"] == "hardware" for item in items)

    def test_hardware_for_a_model_lists_its_options_with_availability(self, api: httpx.Client) -> None:
        items = api.get("/hardware", params={"model": MIXTRAL}).json()["data"]

        assert sorted(item["id"] for item in items) == sorted(
            f"{count}x_nvidia_{gpu}_80gb_sxm" for gpu in ("a100", "h100") for count in (2, 4, 8)
        )
        assert {item["availability"]["status"] for item in items} == {"available"}
        two_h100 = next(item for item in items if item["id"] == "2x_nvidia_h100_80gb_sxm")
        assert two_h100["specs"] == {
            "gpu_type": "h100-80gb",
            "gpu_link": "sxm",
            "gpu_memory": 80,
            "gpu_count": 2,
        }
        assert two_h100["pricing"]["cents_per_minute"] > 0

    def test_hardware_for_an_unknown_model_is_empty(self, api: httpx.Client) -> None:
        assert api.get("/hardware", params={"model": "nobody/no-such-model"}).json()["data"] == []

    def test_availability_zones(self, api: httpx.Client) -> None:
        body = api.get("/clusters/availability-zones").json()

        assert {"us-central-4b", "us-east-1a"} <= set(body["avzones"])

    def test_catalogue_file_replaces_the_sections_it_names(
        self, simulator_factory: SimulatorFactory, tmp_path: Path
    ) -> None:
        catalogue = tmp_path / "catalogue.yaml"
        catalogue.write_text(
            "hardware:\n"
            "  - {id: 1x_nvidia_l40s_48gb_pcie, gpu_type: l40s-48gb, gpu_link: pcie, gpu_memory: 48,"
            " gpu_count: 1, cents_per_minute: 2.5}\n"
            "models:\n"
            "  - {id: acme/tiny-model, hardware: {1x_nvidia_l40s_48gb_pcie: insufficient}}\n"
        )
        simulator = simulator_factory(catalogue_file=catalogue, **STEADY)
        with api_client(simulator) as api:
            hardware = api.get("/hardware", params={"model": "acme/tiny-model"}).json()["data"]
            zones = api.get("/clusters/availability-zones").json()["avzones"]
            mixtral = api.post("/endpoints", json=create_body())

        assert [(item["id"], item["availability"]["status"]) for item in hardware] == [
            ("1x_nvidia_l40s_48gb_pcie", "insufficient")
        ]
        assert "us-east-1a" in zones
        assert mixtral.status_code == 404


def test_unknown_paths_answer_with_the_error_body(api: httpx.Client) -> None:
    assert_error(api.get("/no-such-thing"), 404, "not found")
