"""An application calls its dedicated endpoint with the official SDKs, knowing only the ConfigMap.

The operator publishes `TOGETHER_MODEL` (= status.endpointName), `TOGETHER_BASE_URL` and
`TOGETHER_ENDPOINT_ID` in the ConfigMap named by `spec.connection.configMapName` (docs/contract.md,
section 4); the app has the API key from its own Secret. Here the operator's part is played by our
Together client against the simulator, and `connection_values` builds what that ConfigMap would hold;
the apps below see nothing else. The integration tests read the real ConfigMap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import openai
import pytest
import together

from tests.support.simulator_fixtures import SimulatorFactory
from together_operator.together import (
    Autoscaling,
    CreateEndpointRequest,
    DedicatedEndpoint,
    DesiredState,
    TogetherClient,
    UpdateEndpointRequest,
)
from together_simulator import RunningSimulator

# Lifecycle steps of an hour: the endpoint changes state only when a test moves the clock.
STEP_SECONDS = 3600.0
QUESTION = "What is the capital of France?"

T = TypeVar("T")


def connection_values(endpoint: DedicatedEndpoint, base_url: str) -> dict[str, str]:
    """What the operator's connection ConfigMap holds for `endpoint`."""
    return {
        "TOGETHER_MODEL": endpoint.name,
        "TOGETHER_BASE_URL": base_url,
        "TOGETHER_ENDPOINT_ID": endpoint.id,
    }


class Operator:
    """Stands in for the operator: manages the endpoint with our client, as `together-operator run` does."""

    def __init__(self, simulator: RunningSimulator) -> None:
        self._simulator = simulator

    def create_started_endpoint(self) -> DedicatedEndpoint:
        request = CreateEndpointRequest(
            model="mistralai/Mixtral-8x7B-Instruct-v0.1",
            hardware="2x_nvidia_h100_80gb_sxm",
            autoscaling=Autoscaling(min_replicas=1, max_replicas=1),
            display_name="ml/support-bot",
        )
        endpoint = asyncio.run(self._call(lambda client: client.create_endpoint(request)))
        self._simulator.advance_clock(2 * STEP_SECONDS)
        return endpoint

    def set_state(self, endpoint_id: str, state: DesiredState) -> None:
        """PATCH the state and let the transition finish."""
        update = UpdateEndpointRequest(state=state)
        asyncio.run(self._call(lambda client: client.update_endpoint(endpoint_id, update)))
        self._simulator.advance_clock(2 * STEP_SECONDS)

    def delete(self, endpoint_id: str) -> None:
        asyncio.run(self._call(lambda client: client.delete_endpoint(endpoint_id)))

    async def _call(self, action: Callable[[TogetherClient], Awaitable[T]]) -> T:
        async with TogetherClient(self._simulator.base_url, self._simulator.api_key) as client:
            return await action(client)


@pytest.fixture
def simulator(simulator_factory: SimulatorFactory) -> RunningSimulator:
    return simulator_factory(transition_seconds=STEP_SECONDS)


@pytest.fixture
def operator(simulator: RunningSimulator) -> Operator:
    return Operator(simulator)


@pytest.fixture
def endpoint(operator: Operator) -> DedicatedEndpoint:
    return operator.create_started_endpoint()


@pytest.fixture
def app_env(simulator: RunningSimulator, endpoint: DedicatedEndpoint) -> dict[str, str]:
    """The app container's environment: the ConfigMap through envFrom, and the key from its own Secret."""
    return {**connection_values(endpoint, simulator.base_url), "TOGETHER_API_KEY": simulator.api_key}


def together_client(env: Mapping[str, str]) -> together.Together:
    return together.Together(base_url=env["TOGETHER_BASE_URL"], api_key=env["TOGETHER_API_KEY"])


def openai_client(env: Mapping[str, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=env["TOGETHER_BASE_URL"], api_key=env["TOGETHER_API_KEY"])


def expected_reply(model: str, question: str = QUESTION) -> str:
    """The simulator's deterministic answer."""
    return f"Echo from {model}: {question}"


class TestTheTogetherSdk:
    def test_chat_completion(self, app_env: dict[str, str]) -> None:
        with together_client(app_env) as client:
            reply = client.chat.completions.create(
                model=app_env["TOGETHER_MODEL"], messages=[{"role": "user", "content": QUESTION}]
            )

        assert reply.object == "chat.completion"
        assert reply.model == app_env["TOGETHER_MODEL"]
        assert reply.choices[0].message is not None
        assert reply.choices[0].message.content == expected_reply(app_env["TOGETHER_MODEL"])
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (6, 9)

    def test_completion(self, app_env: dict[str, str]) -> None:
        with together_client(app_env) as client:
            reply = client.completions.create(model=app_env["TOGETHER_MODEL"], prompt=QUESTION, max_tokens=3)

        assert reply.object == "text.completion"
        assert reply.choices[0].text == "Echo from " + app_env["TOGETHER_MODEL"] + ":"
        assert reply.choices[0].finish_reason == "length"

    def test_streamed_chat_completion(self, app_env: dict[str, str]) -> None:
        with together_client(app_env) as client:
            chunks = list(
                client.chat.completions.create(
                    model=app_env["TOGETHER_MODEL"],
                    messages=[{"role": "user", "content": QUESTION}],
                    stream=True,
                )
            )

        assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == expected_reply(
            app_env["TOGETHER_MODEL"]
        )
        assert chunks[-1].choices[0].finish_reason == "stop"

    def test_responses_fit_the_sdks_own_models_field_by_field(self, app_env: dict[str, str]) -> None:
        strict = together.Together(
            base_url=app_env["TOGETHER_BASE_URL"],
            api_key=app_env["TOGETHER_API_KEY"],
            _strict_response_validation=True,
        )
        with strict:
            chat = strict.chat.completions.create(
                model=app_env["TOGETHER_MODEL"], messages=[{"role": "user", "content": QUESTION}]
            )
            text = strict.completions.create(model=app_env["TOGETHER_MODEL"], prompt=QUESTION)

        assert (chat.prompt, text.prompt) == ([], [])


class TestTheOpenAiSdk:
    def test_chat_completion(self, app_env: dict[str, str]) -> None:
        with openai_client(app_env) as client:
            reply = client.chat.completions.create(
                model=app_env["TOGETHER_MODEL"], messages=[{"role": "user", "content": QUESTION}]
            )

        assert reply.object == "chat.completion"
        assert reply.model == app_env["TOGETHER_MODEL"]
        assert reply.choices[0].message.role == "assistant"
        assert reply.choices[0].message.content == expected_reply(app_env["TOGETHER_MODEL"])
        assert reply.usage is not None
        assert reply.usage.total_tokens == 15

    def test_completion(self, app_env: dict[str, str]) -> None:
        with openai_client(app_env) as client:
            reply = client.completions.create(model=app_env["TOGETHER_MODEL"], prompt=QUESTION)

        # Together's /completions answers "text.completion" (OpenAI's own: "text_completion"); the SDK
        # does not mind unless asked for strict validation.
        assert reply.object == "text.completion"  # type: ignore[comparison-overlap]
        assert reply.choices[0].text == expected_reply(app_env["TOGETHER_MODEL"])

    def test_streamed_chat_completion(self, app_env: dict[str, str]) -> None:
        with openai_client(app_env) as client:
            stream = client.chat.completions.create(
                model=app_env["TOGETHER_MODEL"], messages=[{"role": "user", "content": QUESTION}], stream=True
            )
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)

        assert text == expected_reply(app_env["TOGETHER_MODEL"])

    def test_chat_responses_fit_openais_models_field_by_field(self, app_env: dict[str, str]) -> None:
        strict = openai.OpenAI(
            base_url=app_env["TOGETHER_BASE_URL"],
            api_key=app_env["TOGETHER_API_KEY"],
            _strict_response_validation=True,
        )
        with strict:
            reply = strict.chat.completions.create(
                model=app_env["TOGETHER_MODEL"], messages=[{"role": "user", "content": QUESTION}]
            )

        assert reply.choices[0].message.content == expected_reply(app_env["TOGETHER_MODEL"])


def test_a_stopped_endpoint_is_refused_by_both_sdks_until_it_is_started_again(
    simulator: RunningSimulator, operator: Operator, app_env: dict[str, str]
) -> None:
    model = app_env["TOGETHER_MODEL"]
    not_running = (
        f"The dedicated endpoint for {model} is not running. "
        "Please visit https://api.together.ai/models to start the endpoint."
    )
    operator.set_state(app_env["TOGETHER_ENDPOINT_ID"], "STOPPED")
    simulator.clear_calls()

    with together_client(app_env) as together_app, openai_client(app_env) as openai_app:
        with pytest.raises(together.BadRequestError) as together_refusal:
            together_app.chat.completions.create(
                model=model, messages=[{"role": "user", "content": QUESTION}]
            )
        with pytest.raises(openai.BadRequestError) as openai_refusal:
            openai_app.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}])

        operator.set_state(app_env["TOGETHER_ENDPOINT_ID"], "STARTED")

        together_reply = together_app.chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}]
        )
        openai_reply = openai_app.chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}]
        )

    assert together_refusal.value.status_code == 400
    assert together_refusal.value.body == {
        "error": {
            "message": not_running,
            "type": "invalid_request_error",
            "param": None,
            "code": "dedicated_endpoint_not_running",
        }
    }
    assert (openai_refusal.value.status_code, openai_refusal.value.code) == (
        400,
        "dedicated_endpoint_not_running",
    )
    # The openai SDK keeps the inner error object as the body, the together SDK the whole body.
    assert openai_refusal.value.body == together_refusal.value.body["error"]
    assert together_reply.choices[0].message is not None
    assert together_reply.choices[0].message.content == expected_reply(model)
    assert openai_reply.choices[0].message.content == expected_reply(model)
    # Refusals are final for the SDKs: no retries, one call each.
    assert [(call.path, call.status) for call in simulator.calls(path="/v1/chat/completions")] == [
        ("/v1/chat/completions", 400),
        ("/v1/chat/completions", 400),
        ("/v1/chat/completions", 200),
        ("/v1/chat/completions", 200),
    ]


def test_a_deleted_endpoints_name_is_an_unknown_model_to_both_sdks(
    operator: Operator, app_env: dict[str, str]
) -> None:
    model = app_env["TOGETHER_MODEL"]
    operator.delete(app_env["TOGETHER_ENDPOINT_ID"])

    with together_client(app_env) as together_app, openai_client(app_env) as openai_app:
        with pytest.raises(together.NotFoundError) as together_refusal:
            together_app.completions.create(model=model, prompt=QUESTION)
        with pytest.raises(openai.NotFoundError) as openai_refusal:
            openai_app.completions.create(model=model, prompt=QUESTION)

    assert together_refusal.value.status_code == openai_refusal.value.status_code == 404
    assert openai_refusal.value.code == "model_not_available"
    assert together_refusal.value.body == {
        "error": {
            "message": f"Unable to access model {model}. "
            "Please visit https://api.together.ai/models to view the list of supported models.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_available",
        }
    }
