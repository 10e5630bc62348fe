"""TogetherClient over real HTTP against the Together API simulator.

Each test asserts what the client returned or raised and, where retries matter, what the simulator's
call log saw arrive: the number of attempts is the point, not a detail.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from together_operator.together import (
    AuthError,
    Autoscaling,
    CreateEndpointRequest,
    DedicatedEndpoint,
    EndpointState,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TogetherClient,
    TransientError,
    UpdateEndpointRequest,
)
from together_simulator import Call, RunningSimulator

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
MIXTRAL_HARDWARE = "2x_nvidia_h100_80gb_sxm"
ENDPOINTS_PATH = "/v1/endpoints"


def mixtral(**options: Any) -> CreateEndpointRequest:
    return CreateEndpointRequest(
        model=MIXTRAL,
        hardware=MIXTRAL_HARDWARE,
        autoscaling=Autoscaling(min_replicas=1, max_replicas=2),
        **options,
    )


@pytest.fixture
async def client(simulator: RunningSimulator) -> AsyncIterator[TogetherClient]:
    async with TogetherClient(simulator.base_url, simulator.api_key) as client:
        yield client


@pytest.fixture
async def endpoint(client: TogetherClient) -> DedicatedEndpoint:
    return await client.create_endpoint(mixtral(display_name="team/chat"))


def statuses(simulator: RunningSimulator, method: str, path: str) -> list[int | None]:
    return [call.status for call in simulator.calls(method=method, path=path)]


async def calls_once_logged(simulator: RunningSimulator, path: str) -> list[Call]:
    """The calls to `path`, waiting (up to 10 s) for the first to be logged."""
    for _ in range(100):
        calls = simulator.calls(path=path)
        if calls:
            return calls
        await asyncio.sleep(0.1)
    raise AssertionError(f"no call to {path} was logged")


async def test_create_returns_the_new_endpoint_starting_up(
    simulator: RunningSimulator, client: TogetherClient
) -> None:
    created = await client.create_endpoint(
        mixtral(display_name="team/chat", disable_speculative_decoding=True, inactive_timeout=0)
    )

    assert created.id.startswith("endpoint-")
    assert created.name.startswith(f"{created.owner}/{MIXTRAL}-")
    assert created.display_name == "team/chat"
    assert created.model == MIXTRAL
    assert created.hardware == MIXTRAL_HARDWARE
    assert created.autoscaling == Autoscaling(min_replicas=1, max_replicas=2)
    assert created.state == EndpointState.PENDING
    [stored] = simulator.endpoints()
    assert stored.id == created.id
    assert stored.disable_speculative_decoding is True
    assert stored.inactive_timeout == 0


async def test_create_can_start_an_endpoint_stopped(client: TogetherClient) -> None:
    created = await client.create_endpoint(mixtral(state=EndpointState.STOPPED))

    assert created.state == EndpointState.STOPPED


async def test_get_returns_the_endpoint(client: TogetherClient, endpoint: DedicatedEndpoint) -> None:
    fetched = await client.get_endpoint(endpoint.id)

    assert fetched.model_dump(exclude={"state"}) == endpoint.model_dump(exclude={"state"})


async def test_list_defaults_to_my_dedicated_endpoints(
    client: TogetherClient, endpoint: DedicatedEndpoint
) -> None:
    listed = await client.list_endpoints()

    assert [(item.id, item.name, item.type) for item in listed] == [(endpoint.id, endpoint.name, "dedicated")]


async def test_list_without_filters_includes_serverless_endpoints(
    client: TogetherClient, endpoint: DedicatedEndpoint
) -> None:
    listed = await client.list_endpoints(type=None, mine=None)

    assert endpoint.id in {item.id for item in listed}
    assert "serverless" in {item.type for item in listed}


async def test_list_filters_by_usage_type(client: TogetherClient, endpoint: DedicatedEndpoint) -> None:
    assert [item.id for item in await client.list_endpoints(usage_type="on-demand")] == [endpoint.id]
    assert await client.list_endpoints(usage_type="reserved") == []


async def test_update_changes_only_what_it_names(
    simulator: RunningSimulator, client: TogetherClient, endpoint: DedicatedEndpoint
) -> None:
    updated = await client.update_endpoint(
        endpoint.id,
        UpdateEndpointRequest(autoscaling=Autoscaling(min_replicas=2, max_replicas=4), inactive_timeout=0),
    )

    assert updated.autoscaling == Autoscaling(min_replicas=2, max_replicas=4)
    assert updated.display_name == "team/chat"
    [stored] = simulator.endpoints()
    assert stored.inactive_timeout == 0


async def test_update_stops_an_endpoint(client: TogetherClient, endpoint: DedicatedEndpoint) -> None:
    updated = await client.update_endpoint(
        endpoint.id, UpdateEndpointRequest(state=EndpointState.STOPPED, display_name="renamed")
    )

    assert updated.state in (EndpointState.STOPPING, EndpointState.STOPPED)
    assert updated.display_name == "renamed"


async def test_delete_then_get_is_not_found(
    simulator: RunningSimulator, client: TogetherClient, endpoint: DedicatedEndpoint
) -> None:
    await client.delete_endpoint(endpoint.id)

    with pytest.raises(NotFoundError) as caught:
        await client.get_endpoint(endpoint.id)

    assert caught.value.status_code == 404
    assert endpoint.id in caught.value.message
    assert statuses(simulator, "DELETE", f"{ENDPOINTS_PATH}/{endpoint.id}") == [204]
    assert simulator.endpoints() == []


async def test_an_endpoint_deleted_out_of_band_is_not_found(
    simulator: RunningSimulator, client: TogetherClient, endpoint: DedicatedEndpoint
) -> None:
    simulator.out_of_band(endpoint.id, "delete")

    with pytest.raises(NotFoundError):
        await client.get_endpoint(endpoint.id)


async def test_an_endpoint_in_error_after_an_update_reads_as_error(
    simulator: RunningSimulator, client: TogetherClient, endpoint: DedicatedEndpoint
) -> None:
    simulator.set_faults([{"fault": "error_after_update", "times": 1}])

    await client.update_endpoint(endpoint.id, UpdateEndpointRequest(display_name="renamed"))

    assert (await client.get_endpoint(endpoint.id)).state == EndpointState.ERROR


async def test_hardware_for_a_model_lists_its_configurations_with_availability(
    client: TogetherClient,
) -> None:
    hardware = await client.list_hardware(model=MIXTRAL)

    assert {item.id for item in hardware} == {
        f"{count}x_nvidia_{gpu}_80gb_sxm" for gpu in ("a100", "h100") for count in (2, 4, 8)
    }
    assert all(item.availability is not None for item in hardware)
    two_h100 = next(item for item in hardware if item.id == MIXTRAL_HARDWARE)
    assert (two_h100.specs.gpu_count, two_h100.specs.gpu_type) == (2, "h100-80gb")
    assert two_h100.pricing.cents_per_minute > 0


async def test_hardware_without_a_model_lists_everything_without_availability(client: TogetherClient) -> None:
    hardware = await client.list_hardware()

    assert MIXTRAL_HARDWARE in {item.id for item in hardware}
    assert all(item.availability is None for item in hardware)


async def test_availability_zones(client: TogetherClient) -> None:
    zones = await client.list_availability_zones()

    assert "us-central-4b" in zones
    assert all(isinstance(zone, str) for zone in zones)


async def test_an_unknown_key_is_an_auth_error(simulator: RunningSimulator) -> None:
    async with TogetherClient(simulator.base_url, "not-a-known-key") as client:
        with pytest.raises(AuthError) as caught:
            await client.list_endpoints()

    assert caught.value.status_code == 401
    assert "not-a-known-key" not in str(caught.value)
    assert "not-a-known-key" not in repr(caught.value)
    assert len(simulator.calls(method="GET")) == 1


async def test_an_unknown_model_is_permanent_with_the_servers_message(client: TogetherClient) -> None:
    with pytest.raises(PermanentError) as caught:
        await client.create_endpoint(
            CreateEndpointRequest(
                model="acme/no-such-model",
                hardware=MIXTRAL_HARDWARE,
                autoscaling=Autoscaling(min_replicas=1, max_replicas=1),
            )
        )

    assert isinstance(caught.value, NotFoundError)
    assert (
        caught.value.message == "Model acme/no-such-model not found or not supported for dedicated endpoints"
    )
    assert caught.value.param == "model"
    assert "acme/no-such-model" in str(caught.value)


async def test_min_above_max_is_a_bad_request(simulator: RunningSimulator, client: TogetherClient) -> None:
    with pytest.raises(PermanentError) as caught:
        await client.create_endpoint(
            CreateEndpointRequest(
                model=MIXTRAL,
                hardware=MIXTRAL_HARDWARE,
                autoscaling=Autoscaling(min_replicas=3, max_replicas=1),
            )
        )

    assert caught.value.status_code == 400
    assert "min_replicas (3) cannot be greater than max_replicas (1)" in caught.value.message
    assert simulator.endpoints() == []


async def test_rate_limited_get_is_retried_no_sooner_than_retry_after(
    simulator: RunningSimulator, client: TogetherClient
) -> None:
    simulator.set_faults(
        [{"fault": "rate_limit", "method": "GET", "path": f"{ENDPOINTS_PATH}$", "times": 1, "retry_after": 1}]
    )

    assert await client.list_endpoints() == []

    first, second = simulator.calls(method="GET", path=ENDPOINTS_PATH)
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 1.0


async def test_rate_limit_on_every_attempt_ends_in_rate_limited_error(simulator: RunningSimulator) -> None:
    simulator.set_faults([{"fault": "rate_limit", "retry_after": 0}])

    async with TogetherClient(simulator.base_url, simulator.api_key, max_retries=1) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.list_availability_zones()

    assert caught.value.retry_after == 0
    assert statuses(simulator, "GET", "/v1/clusters/availability-zones") == [429, 429]


async def test_server_error_on_create_is_not_retried(
    simulator: RunningSimulator, client: TogetherClient
) -> None:
    simulator.set_faults([{"fault": "server_error", "method": "POST", "status": 503, "times": 1}])

    with pytest.raises(TransientError) as caught:
        await client.create_endpoint(mixtral())

    assert caught.value.status_code == 503
    assert statuses(simulator, "POST", ENDPOINTS_PATH) == [503]


async def test_a_lost_create_response_is_transient_and_never_resent(
    simulator: RunningSimulator, client: TogetherClient
) -> None:
    simulator.set_faults([{"fault": "lose_create_response", "times": 1}])

    with pytest.raises(TransientError) as caught:
        await client.create_endpoint(mixtral())

    assert caught.value.status_code is None
    assert len(simulator.calls(method="POST", path=ENDPOINTS_PATH)) == 1
    # Why a create must not be retried: the server did create it.
    assert len(simulator.endpoints()) == 1


async def test_a_dropped_connection_on_get_is_retried(
    simulator: RunningSimulator, client: TogetherClient, endpoint: DedicatedEndpoint
) -> None:
    path = f"{ENDPOINTS_PATH}/{endpoint.id}"
    simulator.set_faults([{"fault": "drop_connection", "method": "GET", "path": path, "times": 1}])

    fetched = await client.get_endpoint(endpoint.id)

    assert fetched.id == endpoint.id
    assert statuses(simulator, "GET", path) == [0, 200]


async def test_a_server_error_on_update_is_retried(
    simulator: RunningSimulator, client: TogetherClient, endpoint: DedicatedEndpoint
) -> None:
    path = f"{ENDPOINTS_PATH}/{endpoint.id}"
    simulator.set_faults([{"fault": "server_error", "method": "PATCH", "path": path, "times": 1}])

    updated = await client.update_endpoint(endpoint.id, UpdateEndpointRequest(display_name="renamed"))

    assert updated.display_name == "renamed"
    assert statuses(simulator, "PATCH", path) == [500, 200]


async def test_a_slow_server_times_out_as_transient(simulator: RunningSimulator) -> None:
    simulator.set_faults([{"fault": "latency", "seconds": 1.0, "times": 1}])

    async with TogetherClient(simulator.base_url, simulator.api_key, timeout=0.3, max_retries=0) as client:
        with pytest.raises(TransientError) as caught:
            await client.list_availability_zones()

    assert caught.value.message == "ReadTimeout: no response within 0.3s"
    # The simulator logs the call once its delay is over; waiting for that also lets it finish cleanly.
    [call] = await calls_once_logged(simulator, "/v1/clusters/availability-zones")
    assert call.faults == ["latency"]


async def test_a_base_url_with_a_trailing_slash_reaches_the_same_api(simulator: RunningSimulator) -> None:
    async with TogetherClient(f"{simulator.base_url}/", simulator.api_key) as client:
        zones = await client.list_availability_zones()

    assert zones
    assert statuses(simulator, "GET", "/v1/clusters/availability-zones") == [200]
