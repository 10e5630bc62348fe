"""Inference through the simulated endpoints, over raw HTTP: POST /v1/chat/completions and /v1/completions.

An endpoint answers under its system name while it is STARTED; otherwise the caller gets the error the
real service gives (see together_simulator/inference.py for the bodies and where they come
from). The SDKs' view of the same calls is in tests/client/test_inference_sdks.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.simulator.api_helpers import MINUTE_SECONDS, MIXTRAL, STEADY, STEP_SECONDS, api_client, create
from tests.support.simulator_fixtures import SimulatorFactory
from together_simulator import RunningSimulator

SERVERLESS = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


def chat(api: httpx.Client, model: str, content: str = "What is 2+2?", **extra: Any) -> httpx.Response:
    return api.post(
        "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}], **extra},
    )


def started(simulator: RunningSimulator, api: httpx.Client, **overrides: Any) -> dict[str, Any]:
    """A new endpoint of the caller's, brought to STARTED."""
    endpoint = create(api, **overrides)
    simulator.advance_clock(2 * STEP_SECONDS)
    return endpoint


def assert_error(response: httpx.Response, status: int, code: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


def server_sent_events(response: httpx.Response) -> list[str]:
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]


class TestAStartedEndpoint:
    def test_chat_completion_echoes_the_last_user_message(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = started(simulator, api)
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": "First answer"},
            {"role": "user", "content": "What is 2+2?"},
        ]

        response = api.post("/chat/completions", json={"model": endpoint["name"], "messages": messages})

        assert response.status_code == 200, response.text
        body = response.json()
        assert isinstance(body.pop("id"), str)
        assert isinstance(body.pop("created"), int)
        assert body == {
            "object": "chat.completion",
            "model": endpoint["name"],
            "prompt": [],
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": f"Echo from {endpoint['name']}: What is 2+2?",
                    },
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            # One word, one token: 2 + 2 + 2 + 3 words in, "Echo from NAME: What is 2+2?" out.
            "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
        }

    def test_the_same_request_gets_the_same_reply(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = started(simulator, api)

        first, second = chat(api, endpoint["name"]), chat(api, endpoint["name"])

        assert first.json()["choices"] == second.json()["choices"]
        assert first.json()["id"] != second.json()["id"]

    def test_text_parts_of_a_multimodal_message_are_read(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = started(simulator, api)
        content = [{"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": "x"}}]

        response = api.post(
            "/chat/completions",
            json={"model": endpoint["name"], "messages": [{"role": "user", "content": content}]},
        )

        assert (
            response.json()["choices"][0]["message"]["content"] == f"Echo from {endpoint['name']}: Describe"
        )

    def test_completion_echoes_the_prompt(self, simulator: RunningSimulator, api: httpx.Client) -> None:
        endpoint = started(simulator, api)

        response = api.post(
            "/completions", json={"model": endpoint["name"], "prompt": "Once upon a time", "temperature": 0.7}
        )

        assert response.status_code == 200, response.text
        body = response.json()
        # Together's /completions says "text.completion" where OpenAI's says "text_completion".
        assert (body["object"], body["model"], body["prompt"]) == ("text.completion", endpoint["name"], [])
        assert body["choices"] == [
            {
                "index": 0,
                "text": f"Echo from {endpoint['name']}: Once upon a time",
                "finish_reason": "stop",
                "logprobs": None,
            }
        ]
        assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}

    def test_max_tokens_cuts_the_reply_with_finish_reason_length(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = started(simulator, api)

        response = chat(api, endpoint["name"], max_tokens=2)

        (choice,) = response.json()["choices"]
        assert (choice["message"]["content"], choice["finish_reason"]) == ("Echo from", "length")
        assert response.json()["usage"]["completion_tokens"] == 2

    def test_a_streamed_chat_sends_a_chunk_per_word_then_usage_then_done(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = started(simulator, api)

        events = server_sent_events(chat(api, endpoint["name"], content="Hi", stream=True))

        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
        assert len({chunk["id"] for chunk in chunks}) == 1
        text = "".join(chunk["choices"][0]["delta"]["content"] for chunk in chunks)
        assert text == f"Echo from {endpoint['name']}: Hi"
        assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None] * 4 + ["stop"]
        assert chunks[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}

    def test_a_streamed_completion_sends_text_chunks(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = started(simulator, api)

        response = api.post("/completions", json={"model": endpoint["name"], "prompt": "Hi", "stream": True})

        chunks = [json.loads(event) for event in server_sent_events(response)[:-1]]
        assert {chunk["object"] for chunk in chunks} == {"completion.chunk"}
        assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == f"Echo from {endpoint['name']}: Hi"
        assert chunks[-1]["finish_reason"] == chunks[-1]["choices"][0]["finish_reason"] == "stop"

    def test_a_call_is_traffic_that_restarts_the_idle_clock(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = started(simulator, api, inactive_timeout=5)
        simulator.advance_clock(4 * MINUTE_SECONDS)

        assert chat(api, endpoint["name"]).status_code == 200
        (just_used,) = simulator.endpoints()
        simulator.advance_clock(4 * MINUTE_SECONDS)

        # Without the call, 8 idle minutes would have passed the 5-minute timeout.
        assert just_used.idle_seconds is not None
        assert just_used.idle_seconds < MINUTE_SECONDS
        (later,) = simulator.endpoints()
        assert (later.state, later.auto_stopped) == ("STARTED", False)

    def test_calls_are_in_the_call_log(self, simulator: RunningSimulator, api: httpx.Client) -> None:
        endpoint = started(simulator, api)
        simulator.clear_calls()

        chat(api, endpoint["name"])
        api.post("/completions", json={"model": "unknown/model", "prompt": "Hi"})

        assert [(call.method, call.path, call.status, call.account) for call in simulator.calls()] == [
            ("POST", "/v1/chat/completions", 200, "devuser"),
            ("POST", "/v1/completions", 404, "devuser"),
        ]


class TestModelsThatDoNotAnswer:
    @pytest.mark.parametrize("state", ["PENDING", "STARTING", "STOPPING", "STOPPED"])
    def test_an_endpoint_that_is_not_started_is_not_running(
        self, simulator: RunningSimulator, api: httpx.Client, state: str
    ) -> None:
        endpoint = create(api)
        steps = {"PENDING": 0, "STARTING": 1, "STOPPING": 2, "STOPPED": 2}[state]
        simulator.advance_clock(steps * STEP_SECONDS)
        if state in ("STOPPING", "STOPPED"):
            api.patch(f"/endpoints/{endpoint['id']}", json={"state": "STOPPED"})
            simulator.advance_clock(STEP_SECONDS if state == "STOPPED" else 0)
        assert simulator.endpoints()[0].state == state

        for response in (
            chat(api, endpoint["name"]),
            api.post("/completions", json={"model": endpoint["name"], "prompt": "Hi"}),
        ):
            assert_error(
                response,
                400,
                "dedicated_endpoint_not_running",
                f"The dedicated endpoint for {endpoint['name']} is not running. "
                "Please visit https://api.together.ai/models to start the endpoint.",
            )

    def test_a_refused_call_is_not_traffic(self, simulator: RunningSimulator, api: httpx.Client) -> None:
        endpoint = create(api, inactive_timeout=5)
        simulator.advance_clock(2 * STEP_SECONDS + 5 * MINUTE_SECONDS)

        # The idle endpoint has stopped itself; a request does not wake it up.
        assert chat(api, endpoint["name"]).status_code == 400
        simulator.advance_clock(STEP_SECONDS)
        (view,) = simulator.endpoints()
        assert (view.state, view.auto_stopped) == ("STOPPED", True)

    def test_after_a_start_the_endpoint_answers_again(
        self, simulator: RunningSimulator, api: httpx.Client
    ) -> None:
        endpoint = create(api, state="STOPPED")
        refused = chat(api, endpoint["name"])

        api.patch(f"/endpoints/{endpoint['id']}", json={"state": "STARTED"})
        simulator.advance_clock(2 * STEP_SECONDS)

        assert (refused.status_code, chat(api, endpoint["name"]).status_code) == (400, 200)

    def test_another_accounts_endpoint_is_as_unknown_as_a_made_up_name(
        self, simulator_factory: SimulatorFactory
    ) -> None:
        simulator = simulator_factory(accounts={"key-a": "alice", "key-b": "bob"}, **STEADY)
        with api_client(simulator, "key-a") as alice, api_client(simulator, "key-b") as bob:
            alices = started(simulator, alice)

            for model in (alices["name"], "alice/made-up-endpoint"):
                assert_error(
                    chat(bob, model),
                    404,
                    "model_not_available",
                    f"Unable to access model {model}. "
                    "Please visit https://api.together.ai/models to view the list of supported models.",
                )
            assert chat(alice, alices["name"]).status_code == 200

    def test_a_dedicated_only_model_by_its_plain_id_needs_an_endpoint(self, api: httpx.Client) -> None:
        assert_error(
            chat(api, MIXTRAL),
            400,
            "model_not_available",
            f"Unable to access non-serverless model {MIXTRAL}. Please visit https://api.together.ai/models/"
            f"{MIXTRAL} to create and start a new dedicated endpoint for the model.",
        )

    def test_an_unknown_key_is_unauthorized(self, simulator: RunningSimulator) -> None:
        with api_client(simulator, "not-a-key") as stranger:
            response = chat(stranger, SERVERLESS)

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_serverless_models_of_the_catalogue_answer(api: httpx.Client) -> None:
    response = chat(api, SERVERLESS, content="Hello")

    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == f"Echo from {SERVERLESS}: Hello"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}, "model"),
        ("/chat/completions", {"model": SERVERLESS}, "messages"),
        ("/chat/completions", {"model": SERVERLESS, "messages": []}, "messages"),
        ("/chat/completions", {"model": SERVERLESS, "messages": [{"content": "Hi"}]}, "messages.0.role"),
        ("/completions", {"model": SERVERLESS}, "prompt"),
        ("/completions", {"model": SERVERLESS, "prompt": "Hi", "max_tokens": 0}, "max_tokens"),
    ],
)
def test_invalid_requests_are_bad_requests_naming_the_field(
    api: httpx.Client, path: str, body: dict[str, Any], param: str
) -> None:
    response = api.post(path, json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
