"""The admin interface: out-of-band changes as a person with the vendor CLI makes them, and the call log."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.simulator.api_helpers import STEP_SECONDS, api_client, create, state_of
from tests.support.simulator_fixtures import SimulatorFactory
from together_simulator import RunningSimulator


class TestOutOfBand:
    def test_stop_then_start(self, simulator: RunningSimulator, api: httpx.Client) -> None:
        endpoint = create(api)
        simulator.advance_clock(2 * STEP_SECONDS)

        stopping = simulator.out_of_band(endpoint["id"], "stop")
        simulator.advance_clock(STEP_SECONDS)
        stopped = state_of(api, endpoint["id"])
        starting = simulator.out_of_band(endpoint["id"], "start")

        assert stopping is not None
        assert starting is not None
        assert (stopping.state, stopped, starting.state) == ("STOPPING", "STOPPED", "PENDING")
        assert not stopping.auto_stopped

    def test_scale_changes_the_autoscaling_the_api_reports(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = create(api)

        simulator.out_of_band(endpoint["id"], "scale", min_replicas=2, max_replicas=3)

        assert api.get(f"/endpoints/{endpoint['id']}").json()["autoscaling"] == {
            "min_replicas": 2,
            "max_replicas": 3,
        }

    def test_scale_is_validated_like_an_update(self, simulator: RunningSimulator, api: httpx.Client) -> None:
        endpoint = create(api)

        with pytest.raises(httpx.HTTPStatusError) as rejected:
            simulator.out_of_band(endpoint["id"], "scale", min_replicas=4, max_replicas=3)

        assert rejected.value.response.status_code == 400

    def test_rename_changes_the_display_name(self, simulator: RunningSimulator, api: httpx.Client) -> None:
        endpoint = create(api)

        simulator.out_of_band(endpoint["id"], "rename", display_name="renamed in the console")

        assert api.get(f"/endpoints/{endpoint['id']}").json()["display_name"] == "renamed in the console"

    def test_delete_removes_the_endpoint(self, simulator: RunningSimulator, api: httpx.Client) -> None:
        endpoint = create(api)

        result = simulator.out_of_band(endpoint["id"], "delete")

        assert result is None
        assert api.get(f"/endpoints/{endpoint['id']}").status_code == 404

    def test_error_puts_the_endpoint_in_error(self, simulator: RunningSimulator, api: httpx.Client) -> None:
        endpoint = create(api)

        simulator.out_of_band(endpoint["id"], "error")

        assert state_of(api, endpoint["id"]) == "ERROR"

    def test_out_of_band_changes_are_not_api_calls(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = create(api)
        simulator.clear_calls()

        simulator.out_of_band(endpoint["id"], "stop")
        simulator.traffic(endpoint["id"])
        simulator.endpoints()

        assert simulator.calls() == []

    @pytest.mark.parametrize(
        ("endpoint_id", "change", "status"),
        [
            ("endpoint-00000000-0000-4000-8000-000000000000", {"action": "stop"}, 404),
            (None, {"action": "explode"}, 400),
            (None, {"action": "rename"}, 400),
        ],
    )
    def test_unknown_endpoints_and_invalid_changes_are_rejected(
        self,
        simulator: RunningSimulator,
        api: httpx.Client,
        endpoint_id: str | None,
        change: dict[str, str],
        status: int,
    ) -> None:
        target = endpoint_id or create(api)["id"]

        response = httpx.post(f"{simulator.admin_url}/endpoints/{target}/out-of-band", json=change)

        assert response.status_code == status
        assert "message" in response.json()["error"]


class TestCallLog:
    def test_each_api_call_is_logged_with_method_path_query_status_time_and_account(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        before = time.time()
        endpoint = create(api)
        api.get("/endpoints", params={"mine": "true", "type": "dedicated"})
        api.delete(f"/endpoints/{endpoint['id']}")
        after = time.time()

        calls = simulator.calls()

        assert [(call.method, call.path, call.query, call.status, call.account) for call in calls] == [
            ("POST", "/v1/endpoints", {}, 200, "devuser"),
            ("GET", "/v1/endpoints", {"mine": "true", "type": "dedicated"}, 200, "devuser"),
            ("DELETE", f"/v1/endpoints/{endpoint['id']}", {}, 204, "devuser"),
        ]
        assert before <= calls[0].time <= calls[1].time <= calls[2].time <= after

    def test_calls_with_an_unknown_key_are_logged_without_account(self, simulator: RunningSimulator) -> None:
        httpx.get(f"{simulator.base_url}/endpoints", headers={"Authorization": "Bearer wrong"})

        assert [(call.status, call.account) for call in simulator.calls()] == [(401, None)]

    def test_calls_filter_by_method_and_whole_path_regex(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = create(api)
        api.get("/endpoints")
        api.get(f"/endpoints/{endpoint['id']}")
        api.get("/hardware")

        assert len(simulator.calls(method="GET")) == 3
        assert [call.path for call in simulator.calls(method="GET", path="/v1/endpoints")] == [
            "/v1/endpoints"
        ]
        assert len(simulator.calls(path="/v1/endpoints.*")) == 3
        assert len(simulator.calls(method="post")) == 1

    def test_clear_calls_empties_the_log(self, simulator: RunningSimulator, api: httpx.Client) -> None:
        api.get("/hardware")

        simulator.clear_calls()
        api.get("/clusters/availability-zones")

        assert [call.path for call in simulator.calls()] == ["/v1/clusters/availability-zones"]

    def test_the_log_keeps_only_the_most_recent_calls(self, simulator_factory: SimulatorFactory) -> None:
        simulator = simulator_factory(call_log_limit=2)
        with api_client(simulator) as api:
            for path in ("/hardware", "/endpoints", "/clusters/availability-zones"):
                api.get(path)

        assert [call.path for call in simulator.calls()] == [
            "/v1/endpoints",
            "/v1/clusters/availability-zones",
        ]
