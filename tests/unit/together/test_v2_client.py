"""The v2 client on the wire, seen through an in-memory transport: where calls go, what they carry,
which are retried, and how lists are followed to the end."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from together_operator.together import AuthError, PermanentError, TransientError
from together_operator.together.v2_client import TogetherV2Client, management_base_url
from together_operator.together.v2_models import (
    Autoscaling,
    Config,
    CreateDeploymentRequest,
    DeploymentProfile,
    Endpoint,
    TrafficSplitEntry,
)

API_KEY = "tok-unit-0123456789"
PROJECT = {"id": "proj_1", "name": "acme", "slug": "acme"}
WHOAMI = {"type": "project_api_key", "api_key": {"id": "key_1"}, "organization": {"id": "o", "name": "o"}}
ENDPOINT = {
    "id": "ep_1",
    "name": "acme/chat",
    "projectId": "proj_1",
    "etag": "e1",
    "visibility": "VISIBILITY_PRIVATE",
    "trafficSplit": [],
    "deployments": [],
    "createdAt": "2026-01-01T00:00:00Z",
}
DEPLOYMENT = {
    "id": "dep_1",
    "name": "acme/chat/blue",
    "endpointId": "ep_1",
    "etag": "d1",
    "model": "projects/proj_platform/models/ml_1/revisions/rv_1",
    "config": "projects/proj_platform/configs/cr_1",
    "hardware": "2xnvidia-h100-80gb",
    "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
    "status": {"state": "DEPLOYMENT_STATE_SOMETHING_NEW", "message": "hm"},
}

Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """Answers whoami, and other paths from a script per path (the last answer repeats); records requests."""

    def __init__(self, scripts: dict[str, list[httpx.Response]]) -> None:
        self.scripts = scripts
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v3/whoami":
            return httpx.Response(200, json={**WHOAMI, "project": PROJECT})
        answers = self.scripts[request.url.path]
        seen = sum(1 for r in self.requests if r.url.path == request.url.path)
        return answers[min(seen, len(answers)) - 1]

    def sent(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]


def client(server: Server, max_retries: int = 2) -> TogetherV2Client:
    return TogetherV2Client(
        "https://api.example.test/v1", API_KEY, max_retries=max_retries, transport=httpx.MockTransport(server)
    )


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


ENDPOINTS = "/v2/projects/proj_1/endpoints"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://api.together.xyz/v1", "https://api.together.xyz"),
        ("https://api.together.xyz/v1/", "https://api.together.xyz"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_management_calls_go_to_the_host_without_v1(base_url: str, expected: str) -> None:
    assert management_base_url(base_url) == expected


async def test_the_project_is_looked_up_once_per_client() -> None:
    server = Server({ENDPOINTS: [httpx.Response(200, json={"data": [ENDPOINT]})]})
    async with client(server) as v2:
        first, *_ = await asyncio.gather(*(v2.list_endpoints() for _ in range(3)))
        await v2.list_endpoints()

    assert [endpoint.short_name for endpoint in first] == ["chat"]
    assert [request.url.path for request in server.requests] == ["/v3/whoami"] + [ENDPOINTS] * 4
    assert server.requests[1].headers["Authorization"] == f"Bearer {API_KEY}"


async def test_lists_are_followed_to_the_last_page() -> None:
    second = {**ENDPOINT, "id": "ep_2", "name": "acme/other"}
    server = Server(
        {
            ENDPOINTS: [
                httpx.Response(200, json={"data": [ENDPOINT], "next_cursor": "c1"}),
                httpx.Response(200, json={"data": [second], "next_cursor": None}),
            ]
        }
    )
    async with client(server) as v2:
        endpoints = await v2.list_endpoints(filter='name = "a*"')

    assert [endpoint.id for endpoint in endpoints] == ["ep_1", "ep_2"]
    queries = [dict(request.url.params) for request in server.sent(ENDPOINTS)]
    assert queries == [
        {"filter": 'name = "a*"', "limit": "500"},
        {"filter": 'name = "a*"', "limit": "500", "after": "c1"},
    ]


async def test_a_repeated_cursor_is_an_error_not_a_loop() -> None:
    page = httpx.Response(200, json={"data": [ENDPOINT], "next_cursor": "c1"})
    server = Server({ENDPOINTS: [page]})
    async with client(server) as v2:
        with pytest.raises(TransientError, match="repeated page cursor"):
            await v2.list_endpoints()


async def test_a_create_is_sent_once_even_when_the_answer_is_lost() -> None:
    unavailable = httpx.Response(
        503, headers={"Retry-After": "0"}, json={"error": {"message": "x", "type": "t"}}
    )
    server = Server({ENDPOINTS: [unavailable], f"{ENDPOINTS}/ep_1/deployments": [unavailable]})
    async with client(server) as v2:
        with pytest.raises(TransientError):
            await v2.create_endpoint("chat")
        with pytest.raises(TransientError):
            await v2.create_deployment(
                "ep_1",
                CreateDeploymentRequest(
                    name="blue",
                    model="m",
                    config="c",
                    autoscaling=Autoscaling(min_replicas=1, max_replicas=1),
                ),
            )

    assert [request.method for request in server.sent(ENDPOINTS)] == ["POST"]
    assert body(server.sent(ENDPOINTS)[0]) == {"name": "chat"}
    deployment_posts = server.sent(f"{ENDPOINTS}/ep_1/deployments")
    assert len(deployment_posts) == 1
    assert body(deployment_posts[0]) == {
        "name": "blue",
        "model": "m",
        "config": "c",
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
    }


async def test_reads_are_retried() -> None:
    unavailable = httpx.Response(
        503, headers={"Retry-After": "0"}, json={"error": {"message": "x", "type": "t"}}
    )
    path = f"{ENDPOINTS}/ep_1"
    server = Server({path: [unavailable, httpx.Response(200, json=ENDPOINT)]})
    async with client(server) as v2:
        endpoint = await v2.get_endpoint("ep_1")

    assert endpoint.etag == "e1"
    assert len(server.sent(path)) == 2


async def test_updates_name_their_field_and_carry_the_etag() -> None:
    endpoint_path = f"{ENDPOINTS}/ep_1"
    deployment_path = f"{endpoint_path}/deployments/dep_1"
    server = Server(
        {
            endpoint_path: [httpx.Response(200, json=ENDPOINT)],
            deployment_path: [httpx.Response(200, json=DEPLOYMENT)],
        }
    )
    async with client(server) as v2:
        await v2.set_traffic_split("ep_1", [], etag="e1")
        await v2.set_traffic_split("ep_1", [TrafficSplitEntry(deployment_id="dep_1", weight=1)], etag=None)
        deployment = await v2.set_autoscaling(
            "ep_1", "dep_1", Autoscaling(min_replicas=0, max_replicas=0), etag="d1"
        )
        await v2.set_inactive_timeout("ep_1", "dep_1", 0)
        await v2.delete_deployment("ep_1", "dep_1", etag="d2")

    patches = server.sent(endpoint_path)
    assert [dict(request.url.params) for request in patches] == [{"updateMask": "trafficSplit"}] * 2
    assert [body(request) for request in patches] == [
        {"trafficSplit": [], "etag": "e1"},
        {"trafficSplit": [{"deploymentId": "dep_1", "weight": 1.0}]},
    ]
    scale, timeout, delete = server.sent(deployment_path)
    assert (dict(scale.url.params), body(scale)) == (
        {"updateMask": "autoscaling"},
        {"autoscaling": {"minReplicas": 0, "maxReplicas": 0}, "etag": "d1"},
    )
    assert (dict(timeout.url.params), body(timeout)) == (
        {"updateMask": "inactiveTimeout"},
        {"inactiveTimeout": 0},
    )
    assert (delete.method, dict(delete.url.params)) == ("DELETE", {"etag": "d2"})
    # A state this client has never heard of is carried through, not an error.
    assert deployment.status.state == "DEPLOYMENT_STATE_SOMETHING_NEW"


async def test_a_stale_etag_is_a_permanent_409() -> None:
    path = f"{ENDPOINTS}/ep_1"
    conflict = httpx.Response(409, json={"error": {"message": "stale etag", "type": "invalid_request_error"}})
    server = Server({path: [conflict]})
    async with client(server) as v2:
        with pytest.raises(PermanentError) as raised:
            await v2.set_traffic_split("ep_1", [], etag="old")

    assert raised.value.status_code == 409
    assert len(server.sent(path)) == 1


def test_hardware_is_named_as_the_3x_cli_names_it() -> None:
    config = Config.model_validate(
        {
            "id": "cr_1",
            "projectId": "proj_platform",
            "referenceModel": "projects/proj_platform/models/ml_1",
            "selectors": [
                {"key": "accelerator_type", "value": "nvidia-h100-80gb"},
                {"key": "accelerator_count", "value": "2"},
            ],
        }
    )
    profile = DeploymentProfile.model_validate(
        {"config": config.resource, "model": "m", "gpuCount": 2, "gpuType": "nvidia-h100-80gb"}
    )

    assert config.hardware == profile.hardware == "2xnvidia-h100-80gb"
    assert config.resource == "projects/proj_platform/configs/cr_1"
    assert Config.model_validate({**config.model_dump(by_alias=True), "selectors": []}).hardware is None
    assert Endpoint.model_validate(ENDPOINT).short_name == "chat"


async def test_a_key_without_a_project_is_an_auth_error() -> None:
    def organization_key(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**WHOAMI, "type": "org_api_key"})

    transport = httpx.MockTransport(organization_key)
    async with TogetherV2Client("https://api.example.test/v1", API_KEY, transport=transport) as v2:
        with pytest.raises(AuthError, match="not scoped to a project"):
            await v2.list_endpoints()
