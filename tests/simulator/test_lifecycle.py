"""Endpoints move PENDING -> STARTING -> STARTED and STOPPING -> STOPPED, and stop when idle too long.

Most tests advance the simulator's clock instead of waiting, so each step is observed exactly.
"""

from __future__ import annotations

import time

import httpx

from tests.simulator.api_helpers import MINUTE_SECONDS, STEP_SECONDS, api_client, create, state_of
from tests.support.simulator_fixtures import SimulatorFactory
from together_simulator import RunningSimulator


def test_create_moves_through_pending_and_starting_to_started(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    endpoint = create(api)
    observed = [endpoint["state"]]

    for _ in range(2):
        simulator.advance_clock(STEP_SECONDS)
        observed.append(state_of(api, endpoint["id"]))

    assert observed == ["PENDING", "STARTING", "STARTED"]


def test_stop_moves_through_stopping_to_stopped(simulator: RunningSimulator, api: httpx.Client) -> None:
    endpoint = create(api)
    simulator.advance_clock(2 * STEP_SECONDS)

    response = api.patch(f"/endpoints/{endpoint['id']}", json={"state": "STOPPED"})
    simulator.advance_clock(STEP_SECONDS)

    assert response.json()["state"] == "STOPPING"
    assert state_of(api, endpoint["id"]) == "STOPPED"


def test_start_of_a_stopped_endpoint_goes_through_pending_again(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    endpoint = create(api, state="STOPPED")

    response = api.patch(f"/endpoints/{endpoint['id']}", json={"state": "STARTED"})
    simulator.advance_clock(STEP_SECONDS)
    halfway = state_of(api, endpoint["id"])
    simulator.advance_clock(STEP_SECONDS)

    assert (response.json()["state"], halfway, state_of(api, endpoint["id"])) == (
        "PENDING",
        "STARTING",
        "STARTED",
    )


def test_asking_for_the_state_an_endpoint_is_heading_to_changes_nothing(
    simulator: RunningSimulator, api: httpx.Client
) -> None:
    endpoint = create(api)
    simulator.advance_clock(STEP_SECONDS)

    response = api.patch(f"/endpoints/{endpoint['id']}", json={"state": "STARTED"})

    assert response.json()["state"] == "STARTING"


def test_transitions_happen_in_real_time(simulator_factory: SimulatorFactory) -> None:
    simulator = simulator_factory(transition_seconds=0.05)
    with api_client(simulator) as api:
        endpoint = create(api)
        states = [endpoint["state"]]
        for _ in range(200):
            if states[-1] == "STARTED":
                break
            time.sleep(0.02)
            states.append(state_of(api, endpoint["id"]))

    assert states[-1] == "STARTED"
    order = ["PENDING", "STARTING", "STARTED"]
    assert [order.index(state) for state in states] == sorted(order.index(state) for state in states)


class TestInactiveTimeout:
    def test_an_idle_endpoint_stops_after_its_inactive_timeout(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = create(api, inactive_timeout=5)
        simulator.advance_clock(2 * STEP_SECONDS)

        simulator.advance_clock(5 * MINUTE_SECONDS - 1)
        just_before = state_of(api, endpoint["id"])
        simulator.advance_clock(1)
        at_timeout = state_of(api, endpoint["id"])
        simulator.advance_clock(STEP_SECONDS)

        assert (just_before, at_timeout, state_of(api, endpoint["id"])) == ("STARTED", "STOPPING", "STOPPED")
        (view,) = simulator.endpoints()
        assert view.auto_stopped

    def test_traffic_restarts_the_idle_clock(self, simulator: RunningSimulator, api: httpx.Client) -> None:
        endpoint = create(api, inactive_timeout=5)
        simulator.advance_clock(2 * STEP_SECONDS + 4 * MINUTE_SECONDS)

        used = simulator.traffic(endpoint["id"])
        simulator.advance_clock(4 * MINUTE_SECONDS)

        # Without the traffic, 8 idle minutes would have passed the 5-minute timeout.
        assert state_of(api, endpoint["id"]) == "STARTED"
        assert used.idle_seconds is not None
        assert used.idle_seconds < MINUTE_SECONDS
        idle_seconds = simulator.endpoints()[0].idle_seconds
        assert idle_seconds is not None
        assert 4 * MINUTE_SECONDS <= idle_seconds < 5 * MINUTE_SECONDS

    def test_no_timeout_or_zero_means_no_auto_stop(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoints = [create(api), create(api, inactive_timeout=0)]

        simulator.advance_clock(2 * STEP_SECONDS + 24 * 60 * MINUTE_SECONDS)

        assert [state_of(api, endpoint["id"]) for endpoint in endpoints] == ["STARTED", "STARTED"]

    def test_a_timeout_shorter_than_the_idle_time_so_far_stops_from_the_moment_it_is_set(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = create(api)
        simulator.advance_clock(2 * STEP_SECONDS + 60 * MINUTE_SECONDS)

        response = api.patch(f"/endpoints/{endpoint['id']}", json={"inactive_timeout": 5})

        # Not backdated: a stop begun 55 minutes ago would already be over.
        assert response.json()["state"] == "STOPPING"
        simulator.advance_clock(STEP_SECONDS)
        assert state_of(api, endpoint["id"]) == "STOPPED"

    def test_a_restarted_endpoint_is_no_longer_marked_auto_stopped(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = create(api, inactive_timeout=1)
        simulator.advance_clock(3 * STEP_SECONDS + MINUTE_SECONDS)
        stopped = simulator.endpoints()[0]

        api.patch(f"/endpoints/{endpoint['id']}", json={"state": "STARTED"})

        assert (stopped.state, stopped.auto_stopped) == ("STOPPED", True)
        assert not simulator.endpoints()[0].auto_stopped

    def test_auto_stop_happens_in_real_time_with_a_short_minute(
        self, simulator_factory: SimulatorFactory
    ) -> None:
        simulator = simulator_factory(transition_seconds=0.0, minute_seconds=0.05)
        with api_client(simulator) as api:
            endpoint = create(api, inactive_timeout=1)
            states = [state_of(api, endpoint["id"])]
            for _ in range(200):
                if states[-1] == "STOPPED":
                    break
                time.sleep(0.02)
                states.append(state_of(api, endpoint["id"]))

        assert (states[0], states[-1]) == ("STARTED", "STOPPED")
