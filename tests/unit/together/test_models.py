"""The pydantic models read what the v1 API documents and write only what we mean to send."""

from datetime import UTC, datetime

import pydantic
import pytest

from together_operator.together import (
    Autoscaling,
    CreateEndpointRequest,
    DedicatedEndpoint,
    EndpointState,
    ErrorBody,
    UpdateEndpointRequest,
)
from together_operator.together.models import (
    ListAvailabilityZonesResponse,
    ListEndpointsResponse,
    ListHardwareResponse,
)

# The examples of the DedicatedEndpoint schema in tests/vendor/together-openapi/endpoints-v1-openapi.yaml,
# assembled into one body.
DEDICATED_ENDPOINT_EXAMPLE = {
    "object": "endpoint",
    "id": "endpoint-d23901de-ef8f-44bf-b3e7-de9c1ca8f2d7",
    "name": "devuser/deepseek-ai/DeepSeek-R1-a32b82a1",
    "display_name": "My DeepSeek R1 endpoint",
    "model": "deepseek-ai/DeepSeek-R1",
    "hardware": "8x_nvidia_h200_140gb_sxm",
    "type": "dedicated",
    "owner": "devuser",
    "state": "STARTED",
    "autoscaling": {"min_replicas": 2, "max_replicas": 5},
    "created_at": "2025-02-04T10:43:55.405Z",
}

# The item of the GET /endpoints response example, verbatim.
LIST_ITEM_EXAMPLE = {
    "object": "endpoint",
    "id": "endpoint-5c0c20db-62fe-4f41-8ffc-d9e4ea1a264e",
    "name": "allenai/OLMo-7B",
    "model": "allenai/OLMo-7B",
    "type": "serverless",
    "owner": "together",
    "state": "STARTED",
    "created_at": "2024-02-28T21:34:35.444Z",
}

HARDWARE_ITEM_EXAMPLE = {
    "object": "hardware",
    "id": "2x_nvidia_a100_80gb_sxm",
    "pricing": {"cents_per_minute": 5.42},
    "specs": {"gpu_type": "a100-80gb", "gpu_link": "sxm", "gpu_memory": 80, "gpu_count": 2},
    "availability": {"status": "available"},
    "updated_at": "2025-02-04T10:43:55.405Z",
}


def test_dedicated_endpoint_example_parses_with_every_field() -> None:
    endpoint = DedicatedEndpoint.model_validate(DEDICATED_ENDPOINT_EXAMPLE)

    assert endpoint.id == "endpoint-d23901de-ef8f-44bf-b3e7-de9c1ca8f2d7"
    assert endpoint.name == "devuser/deepseek-ai/DeepSeek-R1-a32b82a1"
    assert endpoint.display_name == "My DeepSeek R1 endpoint"
    assert endpoint.hardware == "8x_nvidia_h200_140gb_sxm"
    assert endpoint.state == EndpointState.STARTED
    assert endpoint.autoscaling == Autoscaling(min_replicas=2, max_replicas=5)
    assert endpoint.created_at == datetime(2025, 2, 4, 10, 43, 55, 405000, tzinfo=UTC)


def test_list_endpoints_example_parses_without_display_name_hardware_or_autoscaling() -> None:
    listing = ListEndpointsResponse.model_validate({"object": "list", "data": [LIST_ITEM_EXAMPLE]})

    [item] = listing.data
    assert item.id == "endpoint-5c0c20db-62fe-4f41-8ffc-d9e4ea1a264e"
    assert item.type == "serverless"
    assert item.created_at == datetime(2024, 2, 28, 21, 34, 35, 444000, tzinfo=UTC)


@pytest.mark.parametrize("state", ["DEGRADED", "READY", "stopped"])
def test_unknown_state_is_carried_through_verbatim(state: str) -> None:
    endpoint = DedicatedEndpoint.model_validate({**DEDICATED_ENDPOINT_EXAMPLE, "state": state})
    listing = ListEndpointsResponse.model_validate(
        {"object": "list", "data": [{**LIST_ITEM_EXAMPLE, "state": state}]}
    )

    assert endpoint.state == state
    assert listing.data[0].state == state
    assert state not in EndpointState.KNOWN


def test_fields_the_server_adds_later_are_ignored() -> None:
    body = {
        **DEDICATED_ENDPOINT_EXAMPLE,
        "autoscaling": {"min_replicas": 1, "max_replicas": 1, "scaling_metric": "gpu"},
        "region": "us-central-4b",
    }

    endpoint = DedicatedEndpoint.model_validate(body)

    assert endpoint.autoscaling == Autoscaling(min_replicas=1, max_replicas=1)
    assert "region" not in endpoint.model_dump()


def test_a_response_missing_a_required_field_is_rejected() -> None:
    body = {key: value for key, value in DEDICATED_ENDPOINT_EXAMPLE.items() if key != "autoscaling"}

    with pytest.raises(pydantic.ValidationError, match="autoscaling"):
        DedicatedEndpoint.model_validate(body)


def test_parsed_responses_are_immutable() -> None:
    endpoint = DedicatedEndpoint.model_validate(DEDICATED_ENDPOINT_EXAMPLE)

    with pytest.raises(pydantic.ValidationError, match="frozen"):
        endpoint.state = "STOPPED"  # type: ignore[misc]


def test_hardware_listing_parses_specs_pricing_and_availability() -> None:
    without_model_filter = {k: v for k, v in HARDWARE_ITEM_EXAMPLE.items() if k != "availability"}
    unknown_status = {**HARDWARE_ITEM_EXAMPLE, "availability": {"status": "reserved-only"}}

    listing = ListHardwareResponse.model_validate(
        {"object": "list", "data": [HARDWARE_ITEM_EXAMPLE, without_model_filter, unknown_status]}
    )

    with_status, without_status, with_unknown_status = listing.data
    assert with_status.id == "2x_nvidia_a100_80gb_sxm"
    assert with_status.specs.gpu_count == 2
    assert with_status.specs.gpu_memory == 80.0
    assert with_status.pricing.cents_per_minute == 5.42
    assert with_status.availability is not None
    assert with_status.availability.status == "available"
    assert without_status.availability is None
    assert with_unknown_status.availability is not None
    assert with_unknown_status.availability.status == "reserved-only"


def test_availability_zones_parse_as_strings() -> None:
    response = ListAvailabilityZonesResponse.model_validate({"avzones": ["us-central-4b", "us-east-1a"]})

    assert response.avzones == ["us-central-4b", "us-east-1a"]


def test_error_body_parses_with_param_and_code_defaulting_to_none() -> None:
    body = ErrorBody.model_validate(
        {"error": {"message": "Model not found", "type": "invalid_request_error"}}
    )

    assert body.error.message == "Model not found"
    assert body.error.type == "invalid_request_error"
    assert body.error.param is None
    assert body.error.code is None


def test_create_request_with_required_fields_sends_exactly_those() -> None:
    request = CreateEndpointRequest(
        model="Qwen/Qwen3.5-9B-FP8",
        hardware="1x_nvidia_a100_80gb_sxm",
        autoscaling=Autoscaling(min_replicas=2, max_replicas=5),
    )

    # The body of the cURL example for POST /endpoints.
    assert request.to_body() == {
        "model": "Qwen/Qwen3.5-9B-FP8",
        "hardware": "1x_nvidia_a100_80gb_sxm",
        "autoscaling": {"min_replicas": 2, "max_replicas": 5},
    }


def test_create_request_sends_every_option_that_is_set_and_zero_timeout_as_zero() -> None:
    request = CreateEndpointRequest(
        model="m",
        hardware="2x_nvidia_h100_80gb_sxm",
        autoscaling=Autoscaling(min_replicas=1, max_replicas=1),
        display_name="team/chat",
        disable_speculative_decoding=True,
        state=EndpointState.STOPPED,
        inactive_timeout=0,
        availability_zone="us-central-4b",
    )

    body = request.to_body()

    assert body == {
        "model": "m",
        "hardware": "2x_nvidia_h100_80gb_sxm",
        "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        "display_name": "team/chat",
        "disable_speculative_decoding": True,
        "state": "STOPPED",
        "inactive_timeout": 0,
        "availability_zone": "us-central-4b",
    }
    assert "disable_prompt_cache" not in body


def test_create_request_rejects_a_state_the_api_does_not_accept() -> None:
    with pytest.raises(pydantic.ValidationError, match="state"):
        CreateEndpointRequest(
            model="m",
            hardware="h",
            autoscaling=Autoscaling(min_replicas=1, max_replicas=1),
            state="PENDING",
        )


def test_requests_reject_fields_the_api_does_not_have() -> None:
    with pytest.raises(pydantic.ValidationError, match="replicas"):
        UpdateEndpointRequest(replicas=3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("request_", "body"),
    [
        (UpdateEndpointRequest(), {}),
        (UpdateEndpointRequest(state=EndpointState.STOPPED), {"state": "STOPPED"}),
        (UpdateEndpointRequest(display_name="renamed"), {"display_name": "renamed"}),
        (
            UpdateEndpointRequest(autoscaling=Autoscaling(min_replicas=2, max_replicas=4)),
            {"autoscaling": {"min_replicas": 2, "max_replicas": 4}},
        ),
        (UpdateEndpointRequest(inactive_timeout=0), {"inactive_timeout": 0}),
        (UpdateEndpointRequest(inactive_timeout=60, display_name=None), {"inactive_timeout": 60}),
    ],
    ids=["nothing", "state", "display-name", "autoscaling", "zero-timeout", "none-means-unchanged"],
)
def test_update_request_sends_only_the_fields_given(
    request_: UpdateEndpointRequest, body: dict[str, object]
) -> None:
    assert request_.to_body() == body
