"""TogetherV2Client over real HTTP against the simulator's v2 API: the calls the reconciler will make,
in the platform's order, and what the call log saw arrive where retries matter.

States change only when a test advances the simulator's clock."""

from collections.abc import AsyncIterator

import pytest

from tests.simulator.api_helpers import MIXTRAL, STEADY, STEP_SECONDS
from tests.support.simulator_fixtures import SimulatorFactory
from together_operator.together import NotFoundError, PermanentError, RateLimitedError, TransientError
from together_operator.together.v2_client import TogetherV2Client
from together_operator.together.v2_models import (
    Autoscaling,
    CreateDeploymentRequest,
    DeploymentState,
    TrafficSplitEntry,
)
from together_simulator import FaultRule, RunningSimulator

HARDWARE = "2xnvidia-h100-80gb"


@pytest.fixture
def simulator(simulator_factory: SimulatorFactory) -> RunningSimulator:
    return simulator_factory(**STEADY)


@pytest.fixture
async def v2(simulator: RunningSimulator) -> AsyncIterator[TogetherV2Client]:
    # The v1 base URL, as TOGETHER_BASE_URL holds it: the client drops the /v1 itself.
    async with TogetherV2Client(simulator.base_url, simulator.api_key, max_retries=2) as client:
        yield client


async def mixtral_request(v2: TogetherV2Client, name: str = "blue") -> CreateDeploymentRequest:
    """Mixtral on HARDWARE with speculative decoding (its config pins a draft model)."""
    [model] = [model for model in await v2.list_supported_models() if model.name == MIXTRAL]
    [profile] = [
        profile
        for profile in model.deployment_profiles
        if profile.hardware == HARDWARE and (await v2.get_config(profile.config)).draft_model
    ]
    return CreateDeploymentRequest(
        name=name,
        model=profile.model,
        config=profile.config,
        autoscaling=Autoscaling(min_replicas=1, max_replicas=2),
    )


async def test_catalogue_look_ups(v2: TogetherV2Client) -> None:
    request = await mixtral_request(v2)
    configs = await v2.list_configs(request.model)
    config = await v2.get_config(request.config)
    instance_types = {instance.name: instance for instance in await v2.list_instance_types()}

    assert config.hardware == HARDWARE
    assert config.draft_model
    assert sorted(c.hardware or "" for c in configs) == sorted(  # each with and without a draft model
        2 * [f"{count}xnvidia-{gpu}-80gb" for gpu in ("a100", "h100") for count in (2, 4, 8)]
    )
    assert instance_types[HARDWARE].price_cents_per_hour > 0
    assert instance_types[HARDWARE].regions


async def test_create_route_scale_and_delete_in_the_platform_order(
    simulator: RunningSimulator, v2: TogetherV2Client
) -> None:
    project = await v2.project()
    endpoint = await v2.create_endpoint("chat")
    deployment = await v2.create_deployment(endpoint.id, await mixtral_request(v2))
    endpoint = await v2.set_traffic_split(
        endpoint.id, [TrafficSplitEntry(deployment_id=deployment.id, weight=1)], etag=endpoint.etag
    )
    simulator.advance_clock(2 * STEP_SECONDS)

    [listed] = await v2.list_endpoints()
    [summary] = listed.deployments
    assert listed.name == f"{project.slug}/chat"
    assert (summary.state, summary.ready_replicas, summary.autoscaling.max_replicas) == (
        DeploymentState.READY,
        1,
        2,
    )

    ready = await v2.get_deployment(endpoint.id, deployment.id)
    stopping = await v2.set_autoscaling(
        endpoint.id, deployment.id, Autoscaling(min_replicas=0, max_replicas=0), etag=ready.etag
    )
    endpoint = await v2.set_traffic_split(endpoint.id, [], etag=listed.etag)
    simulator.advance_clock(STEP_SECONDS)
    stopped = await v2.get_deployment(endpoint.id, deployment.id)
    await v2.delete_deployment(endpoint.id, deployment.id, etag=stopped.etag)
    await v2.delete_endpoint(endpoint.id, etag=(await v2.get_endpoint(endpoint.id)).etag)

    assert stopping.status.state == DeploymentState.STOPPING
    assert stopped.status.state == DeploymentState.STOPPED
    assert await v2.list_endpoints() == []
    with pytest.raises(NotFoundError):
        await v2.get_endpoint(endpoint.id)
    assert len(simulator.calls(path="/v3/whoami")) == 1


async def test_a_write_from_a_stale_read_is_refused(v2: TogetherV2Client) -> None:
    endpoint = await v2.create_endpoint("chat")
    deployment = await v2.create_deployment(endpoint.id, await mixtral_request(v2))
    await v2.set_autoscaling(endpoint.id, deployment.id, Autoscaling(max_replicas=3), etag=deployment.etag)

    with pytest.raises(PermanentError) as raised:
        await v2.set_autoscaling(
            endpoint.id, deployment.id, Autoscaling(max_replicas=4), etag=deployment.etag
        )

    assert raised.value.status_code == 409
    current = await v2.get_deployment(endpoint.id, deployment.id)
    assert current.autoscaling.max_replicas == 3


async def test_a_lost_create_is_not_repeated_and_the_deployment_is_found_by_name(
    simulator: RunningSimulator, v2: TogetherV2Client
) -> None:
    endpoint = await v2.create_endpoint("chat")
    simulator.set_faults(
        [FaultRule(fault="lose_create_response", method="POST", path=r"/v2/.*/deployments$")]
    )

    with pytest.raises(TransientError):
        await v2.create_deployment(endpoint.id, await mixtral_request(v2))

    assert [d.short_name for d in await v2.list_deployments(endpoint.id)] == ["blue"]
    assert len(simulator.calls(method="POST", path=r"/v2/.*/deployments")) == 1


async def test_reads_are_retried_through_rate_limits(
    simulator: RunningSimulator, v2: TogetherV2Client
) -> None:
    await v2.project()
    simulator.set_faults([FaultRule(fault="rate_limit", retry_after=0, path="/v2/", times=2)])

    assert await v2.list_endpoints() == []

    assert [call.status for call in simulator.calls(path=r"/v2/projects/.*/endpoints")] == [429, 429, 200]
    simulator.set_faults([FaultRule(fault="rate_limit", retry_after=0, path="/v2/")])
    with pytest.raises(RateLimitedError):
        await v2.list_endpoints()


async def test_endpoint_lists_filter_by_name(v2: TogetherV2Client) -> None:
    for index in range(3):
        await v2.create_endpoint(f"ep-{index}")

    named = await v2.list_endpoints(filter='name = "ep-1" OR name = "ep-2"')

    assert [endpoint.short_name for endpoint in named] == ["ep-1", "ep-2"]
