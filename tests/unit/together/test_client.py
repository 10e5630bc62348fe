"""What the client puts on the wire and how it retries, seen through an in-memory transport.

The client tests in tests/client cover the same behaviour against the simulator over real HTTP; these
pin down the details a server cannot easily show (headers, query spelling, backoff bounds).
"""

import contextlib
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from together_operator.together import (
    MAX_RETRY_DELAY,
    AuthError,
    Autoscaling,
    CreateEndpointRequest,
    EndpointsAPI,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RateLimiter,
    TogetherClient,
    TransientError,
    UpdateEndpointRequest,
)
from together_operator.together.errors import UnexpectedResponseError
from together_operator.together.http_client import retry_delay

API_KEY = "tok-unit-0123456789"

ENDPOINT_BODY = {
    "object": "endpoint",
    "id": "endpoint-1",
    "name": "devuser/m-1234",
    "display_name": "d",
    "model": "m",
    "hardware": "1x_nvidia_a100_80gb_sxm",
    "type": "dedicated",
    "owner": "devuser",
    "state": "PENDING",
    "autoscaling": {"min_replicas": 1, "max_replicas": 1},
    "created_at": "2025-02-04T10:43:55.405Z",
}

CREATE_REQUEST = CreateEndpointRequest(
    model="m", hardware="1x_nvidia_a100_80gb_sxm", autoscaling=Autoscaling(min_replicas=1, max_replicas=1)
)


class Server:
    """Answers requests from a script of responses (the last one repeats) and records them."""

    def __init__(self, *responses: httpx.Response | Callable[[httpx.Request], httpx.Response]) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.responses[min(len(self.requests), len(self.responses)) - 1]
        return response(request) if callable(response) else response

    def client(self, base_url: str = "https://api.example.test/v1", max_retries: int = 2) -> TogetherClient:
        return TogetherClient(base_url, API_KEY, max_retries=max_retries, transport=httpx.MockTransport(self))


def error_response(status_code: int, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status_code, json={"error": {"message": message, "type": "test_error"}}, headers=headers
    )


def raise_(error: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return handler


def test_together_client_implements_every_method_of_the_endpoints_api() -> None:
    api_methods = {name for name in vars(EndpointsAPI) if not name.startswith("_")}

    assert api_methods == {
        "list_endpoints",
        "get_endpoint",
        "create_endpoint",
        "update_endpoint",
        "delete_endpoint",
        "list_hardware",
        "list_availability_zones",
    }
    # TogetherClient subclasses the protocol, so a missing method would silently inherit its stub.
    assert all(getattr(TogetherClient, name) is not getattr(EndpointsAPI, name) for name in api_methods)


@pytest.mark.parametrize("base_url", ["https://api.example.test/v1", "https://api.example.test/v1/"])
async def test_requests_go_under_the_base_url_with_bearer_auth_and_user_agent(base_url: str) -> None:
    server = Server(httpx.Response(200, json={"avzones": ["us-central-4b"]}))

    async with server.client(base_url) as client:
        zones = await client.list_availability_zones()

    assert zones == ["us-central-4b"]
    [request] = server.requests
    assert request.url == "https://api.example.test/v1/clusters/availability-zones"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["User-Agent"].startswith("together-operator/")


async def test_list_filters_default_to_my_dedicated_endpoints_with_booleans_spelled_lowercase() -> None:
    server = Server(httpx.Response(200, json={"object": "list", "data": []}))

    async with server.client() as client:
        await client.list_endpoints()
        await client.list_endpoints(type=None, usage_type="on-demand", mine=False)

    assert [dict(r.url.params) for r in server.requests] == [
        {"type": "dedicated", "mine": "true"},
        {"usage_type": "on-demand", "mine": "false"},
    ]


async def test_hardware_query_names_the_model_only_when_given() -> None:
    server = Server(httpx.Response(200, json={"object": "list", "data": []}))

    async with server.client() as client:
        await client.list_hardware()
        await client.list_hardware(model="deepseek-ai/DeepSeek-R1")

    assert [dict(r.url.params) for r in server.requests] == [{}, {"model": "deepseek-ai/DeepSeek-R1"}]


async def test_endpoint_id_is_escaped_into_a_single_path_segment() -> None:
    server = Server(error_response(404, "not found"))

    async with server.client() as client:
        with pytest.raises(NotFoundError):
            await client.get_endpoint("../hardware?model=x")

    assert server.requests[0].url.raw_path == b"/v1/endpoints/..%2Fhardware%3Fmodel%3Dx"


async def test_update_sends_only_the_given_fields_as_json() -> None:
    server = Server(httpx.Response(200, json=ENDPOINT_BODY))

    async with server.client() as client:
        await client.update_endpoint("endpoint-1", UpdateEndpointRequest(state="STOPPED", inactive_timeout=0))

    [request] = server.requests
    assert request.method == "PATCH"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"state": "STOPPED", "inactive_timeout": 0}


async def test_delete_accepts_no_content() -> None:
    server = Server(httpx.Response(204))

    async with server.client() as client:
        await client.delete_endpoint("endpoint-1")

    assert server.requests[0].method == "DELETE"


async def test_get_is_retried_after_a_server_error_and_returns_the_later_success() -> None:
    server = Server(
        error_response(503, "overloaded", **{"Retry-After": "0"}), httpx.Response(200, json=ENDPOINT_BODY)
    )

    async with server.client() as client:
        endpoint = await client.get_endpoint("endpoint-1")

    assert endpoint.id == "endpoint-1"
    assert len(server.requests) == 2


async def test_get_gives_up_after_max_retries_with_the_last_error() -> None:
    server = Server(error_response(502, "bad gateway", **{"Retry-After": "0"}))

    async with server.client(max_retries=2) as client:
        with pytest.raises(TransientError, match="bad gateway") as caught:
            await client.get_endpoint("endpoint-1")

    assert caught.value.status_code == 502
    assert len(server.requests) == 3


async def test_no_retry_when_max_retries_is_zero() -> None:
    server = Server(error_response(500, "oops", **{"Retry-After": "0"}))

    async with server.client(max_retries=0) as client:
        with pytest.raises(TransientError):
            await client.list_endpoints()

    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("first_response", "error_class"),
    [
        (error_response(500, "internal", **{"Retry-After": "0"}), TransientError),
        (error_response(429, "slow down", **{"Retry-After": "0"}), RateLimitedError),
        (
            raise_(httpx.RemoteProtocolError("Server disconnected without sending a response.")),
            TransientError,
        ),
    ],
    ids=["5xx", "429", "connection-lost"],
)
async def test_create_is_sent_exactly_once_whatever_the_failure(
    first_response: httpx.Response | Callable[[httpx.Request], httpx.Response],
    error_class: type[Exception],
) -> None:
    server = Server(first_response, httpx.Response(200, json=ENDPOINT_BODY))

    async with server.client() as client:
        with pytest.raises(error_class):
            await client.create_endpoint(CREATE_REQUEST)

    assert [r.method for r in server.requests] == ["POST"]


class RecordingLimiter(RateLimiter):
    """An unlimited rate limiter that logs when a call takes and gives back its slot."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(0)
        self.log = log

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.log.append("slot taken")
        try:
            yield
        finally:
            self.log.append("slot given back")


def recording_server(log: list[str]) -> Server:
    def answer(request: httpx.Request) -> httpx.Response:
        log.append(f"{request.method} sent")
        return httpx.Response(200, json=ENDPOINT_BODY)

    return Server(answer)


async def test_a_create_runs_its_before_send_hook_in_its_rate_limiter_slot_right_before_the_post() -> None:
    log: list[str] = []
    server = recording_server(log)

    async def before_send() -> None:
        log.append("hook")

    transport = httpx.MockTransport(server)
    async with TogetherClient(
        "https://api.example.test/v1", API_KEY, transport=transport, rate_limiter=RecordingLimiter(log)
    ) as client:
        await client.create_endpoint(CREATE_REQUEST, before_send=before_send)

    assert log == ["slot taken", "hook", "POST sent", "slot given back"]


async def test_a_create_whose_before_send_hook_fails_sends_nothing_and_raises_the_hook_s_error() -> None:
    log: list[str] = []
    server = recording_server(log)

    async def before_send() -> None:
        raise RuntimeError("intent write refused: 409")

    transport = httpx.MockTransport(server)
    async with TogetherClient(
        "https://api.example.test/v1", API_KEY, transport=transport, rate_limiter=RecordingLimiter(log)
    ) as client:
        with pytest.raises(RuntimeError, match="409"):
            await client.create_endpoint(CREATE_REQUEST, before_send=before_send)

    assert server.requests == []
    assert log == ["slot taken", "slot given back"]


async def test_permanent_errors_are_not_retried() -> None:
    server = Server(error_response(404, "Endpoint not found"))

    async with server.client() as client:
        with pytest.raises(NotFoundError, match="Endpoint not found"):
            await client.delete_endpoint("endpoint-1")

    assert len(server.requests) == 1


async def test_retry_after_longer_than_the_cap_is_left_to_the_caller() -> None:
    server = Server(error_response(429, "quota", **{"Retry-After": str(int(MAX_RETRY_DELAY) + 50)}))

    async with server.client() as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.list_endpoints()

    assert caught.value.retry_after == MAX_RETRY_DELAY + 50
    assert len(server.requests) == 1


async def test_connection_failures_and_timeouts_are_transient_and_retried_on_get() -> None:
    server = Server(
        raise_(httpx.ConnectError("[Errno 111] Connection refused")),
        raise_(httpx.ReadTimeout("")),
        httpx.Response(200, json={"avzones": []}),
    )

    async with server.client() as client:
        assert await client.list_availability_zones() == []

    assert len(server.requests) == 3


async def test_timeout_message_says_how_long_was_waited() -> None:
    server = Server(raise_(httpx.ReadTimeout("")))

    async with TogetherClient(
        "https://api.example.test/v1",
        API_KEY,
        timeout=5,
        max_retries=0,
        transport=httpx.MockTransport(server),
    ) as client:
        with pytest.raises(TransientError) as caught:
            await client.get_endpoint("endpoint-1")

    assert caught.value.status_code is None
    assert caught.value.message == "ReadTimeout: no response within 5s"


async def test_a_malformed_success_body_is_transient_and_retried_on_get() -> None:
    server = Server(
        httpx.Response(200, json={**ENDPOINT_BODY, "autoscaling": None}),
        httpx.Response(200, json=ENDPOINT_BODY),
    )

    async with server.client() as client:
        assert (await client.get_endpoint("endpoint-1")).id == "endpoint-1"

    assert len(server.requests) == 2


async def test_a_success_body_that_is_not_json_is_transient() -> None:
    server = Server(httpx.Response(200, text="<html>maintenance</html>"))

    async with server.client(max_retries=0) as client:
        with pytest.raises(TransientError, match="unexpected response body"):
            await client.get_endpoint("endpoint-1")


async def test_an_error_page_without_the_error_body_is_described_by_its_status() -> None:
    server = Server(httpx.Response(502, html="<html><body>Bad Gateway</body></html>"))

    async with server.client(max_retries=0) as client:
        with pytest.raises(TransientError) as caught:
            await client.list_endpoints()

    assert caught.value.message == "Bad Gateway"
    assert caught.value.error_type is None


async def test_a_redirect_is_permanent_and_points_at_the_base_url() -> None:
    server = Server(httpx.Response(301, headers={"Location": "https://api.example.test/v1/endpoints"}))

    async with server.client() as client:
        with pytest.raises(PermanentError, match="check the base URL"):
            await client.list_endpoints()

    assert len(server.requests) == 1


async def test_the_api_key_is_never_in_an_error_even_when_the_server_echoes_it() -> None:
    server = Server(error_response(401, f"Invalid API key: {API_KEY}"))

    async with server.client() as client:
        with pytest.raises(AuthError) as caught:
            await client.list_endpoints()

    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)
    assert "Invalid API key: <redacted>" in str(caught.value)


async def test_a_key_from_a_secret_with_a_trailing_newline_is_sent_without_it() -> None:
    server = Server(httpx.Response(200, json={"avzones": []}))

    async with TogetherClient(
        "https://api.example.test/v1", f"{API_KEY}\n", transport=httpx.MockTransport(server)
    ) as client:
        await client.list_availability_zones()

    assert server.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"


def test_a_key_that_cannot_be_a_header_is_refused_without_being_echoed() -> None:
    with pytest.raises(ValueError, match="cannot be sent in an HTTP header") as caught:
        TogetherClient("https://api.example.test/v1", f"{API_KEY}\r\nX-Injected: 1")

    assert API_KEY not in str(caught.value)


@pytest.mark.parametrize("base_url", ["api.together.ai/v1", "ftp://api.together.ai/v1"])
def test_a_base_url_that_is_not_http_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        TogetherClient(base_url, API_KEY)


def server_error(retry_after: float | None = None) -> TransientError:
    return TransientError("x", method="GET", path="endpoints", status_code=503, retry_after=retry_after)


def rate_limited(retry_after: float | None = None) -> RateLimitedError:
    return RateLimitedError("x", method="GET", path="endpoints", status_code=429, retry_after=retry_after)


@pytest.mark.parametrize("retries_done", [0, 1, 2, 10])
def test_backoff_doubles_per_retry_with_jitter_up_to_the_cap(retries_done: int) -> None:
    ceiling = min(0.5 * 2**retries_done, MAX_RETRY_DELAY)

    delays = [retry_delay(retries_done, server_error()) for _ in range(200)]

    assert all(delay is not None and ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize("error", [rate_limited(retry_after=2.0), server_error(retry_after=2.0)])
def test_retry_after_is_honoured_never_early_and_at_most_ten_percent_late(
    error: TransientError | RateLimitedError,
) -> None:
    delays = [retry_delay(0, error) for _ in range(200)]

    assert all(delay is not None and 2.0 <= delay <= 2.2 for delay in delays)


def test_permanent_errors_get_no_retry_delay() -> None:
    assert retry_delay(0, PermanentError("bad", method="GET", path="endpoints", status_code=400)) is None


async def test_an_unreadable_create_answer_carries_the_endpoint_id_it_names() -> None:
    """The endpoint exists: its id is all the operator needs to find it, so it is kept if readable."""
    server = Server(httpx.Response(200, json={"id": "endpoint-made", "state": "PENDING"}))

    async with server.client() as client:
        with pytest.raises(UnexpectedResponseError) as raised:
            await client.create_endpoint(CREATE_REQUEST)

    assert raised.value.endpoint_id == "endpoint-made"
    assert raised.value.status_code == 200
