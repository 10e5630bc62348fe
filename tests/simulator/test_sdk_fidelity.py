"""The official `together` SDK 2.x drives the simulator through every v1 endpoint operation.

The SDK is generated from the vendor's OpenAPI file; with `_strict_response_validation` it checks
every response against its own models, so a field the simulator gets wrong fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from together import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Together,
)

from tests.simulator.api_helpers import LLAMA, MIXTRAL, STEADY, STEP_SECONDS
from tests.support.simulator_fixtures import SimulatorFactory
from together_simulator import FaultRule, RunningSimulator


def sdk(simulator: RunningSimulator, api_key: str | None = None, max_retries: int = 0) -> Together:
    return Together(
        base_url=simulator.base_url,
        api_key=api_key or simulator.api_key,
        max_retries=max_retries,
        _strict_response_validation=True,
    )


@pytest.fixture
def client(simulator: RunningSimulator) -> Iterator[Together]:
    with sdk(simulator) as together:
        yield together


def test_every_endpoint_operation(simulator: RunningSimulator, client: Together) -> None:
    created = client.endpoints.create(
        model=MIXTRAL,
        hardware="2x_nvidia_h100_80gb_sxm",
        autoscaling={"min_replicas": 1, "max_replicas": 2},
        display_name="sdk endpoint",
        disable_speculative_decoding=True,
        inactive_timeout=60,
        availability_zone="us-east-1a",
        state="STARTED",
    )
    assert (created.object, created.type, created.state, created.owner) == (
        "endpoint",
        "dedicated",
        "PENDING",
        "devuser",
    )
    assert isinstance(created.created_at, datetime)
    assert created.name.startswith(f"devuser/{MIXTRAL}-")

    simulator.advance_clock(2 * STEP_SECONDS)
    retrieved = client.endpoints.retrieve(created.id)
    assert (retrieved.id, retrieved.display_name, retrieved.state) == (created.id, "sdk endpoint", "STARTED")

    listed = client.endpoints.list(mine=True, type="dedicated", usage_type="on-demand")
    assert [(item.id, item.state) for item in listed.data] == [(created.id, "STARTED")]

    scaled = client.endpoints.update(
        created.id,
        autoscaling={"min_replicas": 2, "max_replicas": 4},
        display_name="scaled",
        inactive_timeout=0,
    )
    assert (scaled.autoscaling.min_replicas, scaled.autoscaling.max_replicas, scaled.display_name) == (
        2,
        4,
        "scaled",
    )

    assert client.endpoints.update(created.id, state="STOPPED").state == "STOPPING"
    simulator.advance_clock(STEP_SECONDS)
    assert client.endpoints.retrieve(created.id).state == "STOPPED"
    assert client.endpoints.update(created.id, state="STARTED").state == "PENDING"

    client.endpoints.delete(created.id)
    with pytest.raises(NotFoundError):
        client.endpoints.retrieve(created.id)

    assert created.id not in [endpoint.id for endpoint in simulator.endpoints()]
    assert [(call.method, call.status) for call in simulator.calls()] == [
        ("POST", 200),
        ("GET", 200),
        ("GET", 200),
        ("PATCH", 200),
        ("PATCH", 200),
        ("GET", 200),
        ("PATCH", 200),
        ("DELETE", 204),
        ("GET", 404),
    ]


def test_list_without_filters_includes_serverless_endpoints(client: Together) -> None:
    client.endpoints.create(
        model=LLAMA, hardware="1x_nvidia_a100_80gb_sxm", autoscaling={"min_replicas": 1, "max_replicas": 1}
    )

    types = {item.type for item in client.endpoints.list().data}

    assert types == {"dedicated", "serverless"}


def test_hardware_with_and_without_model(client: Together) -> None:
    everything = client.endpoints.list_hardware()
    for_mixtral = client.endpoints.list_hardware(model=MIXTRAL)

    assert all(hardware.availability is None for hardware in everything.data)
    assert {hardware.id for hardware in for_mixtral.data} <= {hardware.id for hardware in everything.data}
    assert {hardware.availability.status for hardware in for_mixtral.data if hardware.availability} == {
        "available"
    }
    assert len(for_mixtral.data) == 6


def test_availability_zones(client: Together) -> None:
    assert "us-central-4b" in client.endpoints.list_avzones().avzones


def test_errors_map_to_the_sdk_exceptions(simulator_factory: SimulatorFactory) -> None:
    simulator = simulator_factory(accounts={"key-a": "alice", "key-b": "bob"}, **STEADY)
    with (
        sdk(simulator, "key-a") as alice,
        sdk(simulator, "key-b") as bob,
        sdk(simulator, "wrong") as stranger,
    ):
        alices = alice.endpoints.create(
            model=MIXTRAL,
            hardware="2x_nvidia_h100_80gb_sxm",
            autoscaling={"min_replicas": 1, "max_replicas": 1},
        )
        with pytest.raises(AuthenticationError):
            stranger.endpoints.list()
        with pytest.raises(PermissionDeniedError):
            bob.endpoints.retrieve(alices.id)
        with pytest.raises(NotFoundError, match="not available for this model"):
            alice.endpoints.create(
                model=MIXTRAL,
                hardware="1x_nvidia_a100_80gb_sxm",
                autoscaling={"min_replicas": 1, "max_replicas": 1},
            )
        with pytest.raises(BadRequestError, match="min_replicas"):
            alice.endpoints.update(alices.id, autoscaling={"min_replicas": 3, "max_replicas": 1})


def test_the_sdk_retries_rate_limited_calls(simulator: RunningSimulator) -> None:
    simulator.set_faults([FaultRule(fault="rate_limit", retry_after=0.05, times=2)])

    with sdk(simulator, max_retries=2) as patient:
        zones = patient.endpoints.list_avzones()
    with sdk(simulator, max_retries=0) as impatient:
        simulator.set_faults([FaultRule(fault="rate_limit", times=1)])
        with pytest.raises(RateLimitError):
            impatient.endpoints.list_avzones()

    assert zones.avzones
    assert [call.status for call in simulator.calls()] == [429, 429, 200, 429]


def test_a_lost_create_response_is_a_connection_error_for_the_sdk(
    simulator: RunningSimulator, client: Together
) -> None:
    simulator.set_faults([FaultRule(fault="lose_create_response", times=1)])

    with pytest.raises(APIConnectionError):
        client.endpoints.create(
            model=MIXTRAL,
            hardware="2x_nvidia_h100_80gb_sxm",
            autoscaling={"min_replicas": 1, "max_replicas": 1},
        )

    assert len(client.endpoints.list(mine=True).data) == 1
