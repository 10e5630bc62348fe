"""The simulator's responses conform to Together's OpenAPI file (endpoints-v1-openapi.yaml, vendored in
tests/vendor/together-openapi with its source and licence).

Two parts: every kind of response the simulator gives for well-formed calls is validated against the
spec's response schema, and schemathesis generates requests from the spec and checks what comes back.

Checks left out of the generated run, because the spec documents less than the real service does
(the simulator follows the service, not the gaps in its spec):
- `status_code_conformance`: the service answers 400 to invalid input (min_replicas > max_replicas,
  bad query values), 401 to an unknown key and 404 to an unknown model or hardware on create; the
  spec lists only 200/403/500 (and 404 for the `{endpointId}` operations).
- `positive_data_acceptance`: a request can be schema-valid and still name a model or hardware the
  catalogue does not offer, which the service rejects.
- `negative_data_rejection`: the service accepts some requests the spec's schemas would reject,
  e.g. unknown JSON fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.schemas import BaseSchema

from tests.simulator.api_helpers import create_body
from together_simulator import RunningSimulator

SPEC = Path(__file__).parents[1] / "vendor/together-openapi/endpoints-v1-openapi.yaml"

EXCLUDED_CHECKS = [
    checks.status_code_conformance,
    checks.positive_data_acceptance,
    checks.negative_data_rejection,
]


@pytest.fixture
def spec() -> BaseSchema:
    return schemathesis.openapi.from_path(SPEC)


def test_every_kind_of_response_matches_the_spec(spec: BaseSchema, api: httpx.Client) -> None:
    created = api.post("/endpoints", json=create_body(display_name="conformance"))
    endpoint_path = f"/endpoints/{created.json()['id']}"
    responses = [
        ("/endpoints", "POST", created),
        ("/endpoints", "GET", api.get("/endpoints")),
        ("/endpoints", "GET", api.get("/endpoints", params={"mine": "true", "type": "dedicated"})),
        ("/endpoints/{endpointId}", "GET", api.get(endpoint_path)),
        ("/endpoints/{endpointId}", "PATCH", api.patch(endpoint_path, json={"state": "STOPPED"})),
        ("/hardware", "GET", api.get("/hardware")),
        ("/hardware", "GET", api.get("/hardware", params={"model": "meta-llama/Llama-3-8b-chat-hf"})),
        ("/clusters/availability-zones", "GET", api.get("/clusters/availability-zones")),
        ("/endpoints/{endpointId}", "DELETE", api.delete(endpoint_path)),
        ("/endpoints/{endpointId}", "GET", api.get(endpoint_path)),
        ("/endpoints/{endpointId}", "PATCH", api.patch(endpoint_path, json={"state": "STARTED"})),
    ]

    assert [response.status_code for _, _, response in responses] == [200] * 8 + [204, 404, 404]
    for path, method, response in responses:
        spec[path][method].validate_response(response)


# Loading the file needs no server; the generated calls are aimed at each test's simulator.
generated = schemathesis.openapi.from_path(SPEC)


@pytest.fixture
def existing_endpoint_id(api: httpx.Client) -> str:
    endpoint_id: str = api.post("/endpoints", json=create_body()).json()["id"]
    return endpoint_id


@generated.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_generated_requests_get_conforming_responses(
    case: schemathesis.Case[Any], simulator: RunningSimulator, existing_endpoint_id: str
) -> None:
    # Random ids would only ever meet 404; the explicit test above covers unknown ids.
    if "endpointId" in (case.path_parameters or {}):
        case.path_parameters = {"endpointId": existing_endpoint_id}
    case.call_and_validate(
        base_url=simulator.base_url,
        headers={"Authorization": f"Bearer {simulator.api_key}"},
        excluded_checks=EXCLUDED_CHECKS,
    )
