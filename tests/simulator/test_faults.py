"""Fault injection: every kind, as a client sees it and as the call log records it."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.simulator.api_helpers import STEADY, api_client, create, create_body, state_of
from tests.support.simulator_fixtures import SimulatorFactory
from together_simulator import FaultRule, RunningSimulator


def test_latency_delays_the_answer_past_a_short_client_timeout(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    simulator.set_faults([{"fault": "latency", "seconds": 2.0, "times": 1}])

    with pytest.raises(httpx.ReadTimeout):
        api.get("/hardware", timeout=0.2)
    answered = api.get("/hardware", timeout=0.2)

    assert answered.status_code == 200
    # The delayed call is logged on arrival, while the server still holds it.
    assert [call.faults for call in simulator.calls(path="/v1/hardware")] == [["latency"], []]


def test_rate_limit_answers_429_with_retry_after_for_the_next_n_calls(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    simulator.set_faults([FaultRule(fault="rate_limit", retry_after=3, times=2)])

    responses = [api.get("/endpoints") for _ in range(3)]

    assert [response.status_code for response in responses] == [429, 429, 200]
    assert responses[0].headers["Retry-After"] == "3"
    assert set(responses[0].json()["error"]) == {"message", "type", "param", "code"}
    assert [call.status for call in simulator.calls()] == [429, 429, 200]
    assert simulator.faults() == []


def test_server_error_answers_the_configured_5xx_with_the_error_body(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    simulator.set_faults([{"fault": "server_error", "status": 503, "times": 1}])

    response = api.get("/clusters/availability-zones")

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"
    assert api.get("/clusters/availability-zones").status_code == 200


def test_dropped_connection_gives_no_response_and_is_logged_with_status_0(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    simulator.set_faults([{"fault": "drop_connection", "times": 1}])

    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/endpoints")

    (call,) = simulator.calls()
    assert (call.status, call.faults) == (0, ["drop_connection"])


def test_lost_create_response_still_creates_the_endpoint(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    simulator.set_faults([{"fault": "lose_create_response", "times": 1}])

    rejected = api.post("/endpoints", json=create_body(model="nobody/no-such-model"))
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/endpoints", json=create_body(display_name="lost"))
    answered = api.post("/endpoints", json=create_body(display_name="answered"))

    # A create that fails validation does not use the rule up; the first successful one does.
    assert (rejected.status_code, answered.status_code) == (404, 200)
    listed = api.get("/endpoints", params={"mine": "true"}).json()["data"]
    assert len(listed) == 2
    assert {endpoint.display_name for endpoint in simulator.endpoints()} == {"lost", "answered"}
    assert [(call.status, call.faults) for call in simulator.calls(method="POST")] == [
        (404, []),
        (0, ["lose_create_response"]),
        (200, []),
    ]


def test_error_after_update_answers_200_then_the_endpoint_is_in_error(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    target, bystander = create(api), create(api)
    simulator.set_faults([{"fault": "error_after_update", "path": f"/v1/endpoints/{target['id']}$"}])

    updates = [
        api.patch(
            f"/endpoints/{endpoint['id']}", json={"autoscaling": {"min_replicas": 1, "max_replicas": 2}}
        )
        for endpoint in (target, bystander)
    ]

    assert [response.status_code for response in updates] == [200, 200]
    assert updates[0].json()["state"] == "PENDING"
    assert state_of(api, target["id"]) == "ERROR"
    assert state_of(api, bystander["id"]) == "PENDING"


def test_an_endpoint_in_error_can_be_started_again(simulator: RunningSimulator, api: httpx.Client) -> None:
    endpoint = create(api)
    simulator.set_faults([{"fault": "error_after_update", "times": 1}])
    api.patch(f"/endpoints/{endpoint['id']}", json={"display_name": "breaks it"})

    response = api.patch(f"/endpoints/{endpoint['id']}", json={"state": "STARTED"})

    assert response.json()["state"] == "PENDING"


def test_rules_apply_only_to_the_method_and_path_they_name(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    simulator.set_faults([{"fault": "server_error", "method": "get", "path": "/v1/hardware"}])

    assert api.get("/hardware", params={"model": "x"}).status_code == 500
    assert api.get("/endpoints").status_code == 200
    assert api.post("/endpoints", json=create_body()).status_code == 200


def test_probability_faults_some_calls_and_a_seed_makes_which_ones_repeatable(
    simulator_factory: SimulatorFactory,
) -> None:
    def statuses(seed: int) -> list[int]:
        rule = FaultRule(fault="server_error", probability=0.5)
        simulator = simulator_factory(seed=seed, faults=[rule], **STEADY)
        with api_client(simulator) as api:
            return [api.get("/clusters/availability-zones").status_code for _ in range(30)]

    first, again, other_seed = statuses(7), statuses(7), statuses(8)

    assert set(first) == {200, 500}
    assert first == again
    assert first != other_seed


def test_faults_from_the_config_apply_from_the_first_call(simulator_factory: SimulatorFactory) -> None:
    simulator = simulator_factory(faults=[FaultRule(fault="rate_limit", times=1)], **STEADY)
    with api_client(simulator) as api:
        assert [api.get("/endpoints").status_code for _ in range(2)] == [429, 200]


def test_remaining_times_are_visible_and_rules_can_be_cleared(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    simulator.set_faults([{"fault": "rate_limit", "times": 3}, {"fault": "latency", "seconds": 0.01}])
    api.get("/endpoints")

    remaining = [(rule.fault, rule.times) for rule in simulator.faults()]
    simulator.clear_faults()

    assert remaining == [("rate_limit", 2), ("latency", None)]
    assert simulator.faults() == []
    assert api.get("/endpoints").status_code == 200


def test_invalid_rules_are_rejected(simulator: RunningSimulator) -> None:
    response = httpx.put(f"{simulator.admin_url}/faults", json=[{"fault": "server_error", "status": 404}])
    bad_regex = httpx.put(f"{simulator.admin_url}/faults", json=[{"fault": "latency", "path": "("}])

    assert (response.status_code, bad_regex.status_code) == (400, 400)


def test_a_create_held_by_latency_still_happens_when_the_client_gives_up(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    simulator.set_faults([{"fault": "latency", "method": "POST", "seconds": 1.0, "times": 1}])

    with pytest.raises(httpx.ReadTimeout):
        api.post("/endpoints", json=create_body(), timeout=0.2)
    deadline = time.monotonic() + 10
    while not simulator.endpoints() and time.monotonic() < deadline:
        time.sleep(0.1)

    # The request had arrived whole: as on a real server, the caller hanging up does not cancel it.
    assert len(simulator.endpoints()) == 1
    assert [call.status for call in simulator.calls(method="POST")] == [200]
