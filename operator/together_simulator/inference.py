"""Inference through the simulated endpoints: POST /v1/chat/completions and POST /v1/completions.

Applications send the endpoint's system name (`status.endpointName`, e.g.
`devuser/mistralai/Mixtral-8x7B-Instruct-v0.1-bb04c904`) as `model`, with the same bearer key and base
URL as the management API (dedicated-endpoints-guide.txt, "Send traffic to your endpoint"). The reply is
deterministic: an echo of the last user message (or the prompt) that names the model, cut to
`max_tokens` words, one word counting as one token. A successful call is traffic: it restarts the
endpoint's idle clock, so `inactive_timeout` counts from it.

Response shapes are those of the real service, which is OpenAI-compatible with a few differences that
both SDKs accept: `prompt: []` on every completion, and `object: "text.completion"` (not OpenAI's
"text_completion") for /completions, as recorded in Together's LoRA inference docs and in
mlcommons/modelbench's Together tests. `stream: true` answers server-sent events: one chunk per word, a
last chunk with `finish_reason` and `usage`, then `data: [DONE]`.

Which `model` answers, and the error otherwise. The bodies are real ones, found in public reports:
- The caller's dedicated endpoint while STARTED, or a serverless model of the catalogue: 200.
- The caller's dedicated endpoint in any other state (stopped, starting, stopping, error): 400
  `dedicated_endpoint_not_running`, "The dedicated endpoint for M is not running. Please visit
  https://api.together.ai/models to start the endpoint." (HeyPuter/puter#3168, a real 400 body). Both
  SDKs raise `BadRequestError`; this is what an app sees while its endpoint is stopped or scaled to zero.
- A model the catalogue offers only on dedicated endpoints, sent by its plain id: 400
  `model_not_available`, "Unable to access non-serverless model M. Please visit
  https://api.together.ai/models/M to create and start a new dedicated endpoint for the model."
  (evo-design/evo#95, HeyPuter/puter#3168).
- Anything else, another account's endpoint name included (its existence is not revealed): 404
  `model_not_available`, "Unable to access model M. Please visit https://api.together.ai/models to view
  the list of supported models." (a recorded response in maruel/genai's Together provider tests; in 2024
  the same 404 carried the code `model_not_found`, evo-design/evo#14). Both SDKs raise `NotFoundError`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from together_simulator.api import ACCOUNT
from together_simulator.catalogue import Catalogue
from together_simulator.errors import ApiError, read_json_object, validation_error
from together_simulator.state import EndpointStore, SimulatedClock
from together_simulator.v2_api import API_KEY
from together_simulator.v2_inference import V2Inference

CHAT_PATH = "/chat/completions"
COMPLETIONS_PATH = "/completions"

FinishReason = Literal["stop", "length"]


class ContentPart(BaseModel):
    """One part of a multimodal message; only text parts contribute to the reply."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return " ".join(part.text for part in self.content or [] if part.text)


class _InferenceRequest(BaseModel):
    # Sampling parameters (temperature, top_p, stop, ...) are accepted and have no effect.
    model_config = ConfigDict(extra="allow")

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False


RequestT = TypeVar("RequestT", bound=_InferenceRequest)


class ChatRequest(_InferenceRequest):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(_InferenceRequest):
    prompt: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    prompt: list[dict[str, str]] = Field(default_factory=list, description="Echoed prompt; always empty.")
    choices: list[ChatChoice]
    usage: Usage


class TextChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: FinishReason
    logprobs: None = None


class TextCompletion(BaseModel):
    id: str
    object: Literal["text.completion"] = "text.completion"
    created: int
    model: str
    prompt: list[dict[str, str]] = Field(default_factory=list, description="Echoed prompt; always empty.")
    choices: list[TextChoice]
    usage: Usage


class Reply(BaseModel):
    """What the simulated model says: words already cut to max_tokens."""

    words: list[str]
    finish_reason: FinishReason
    usage: Usage

    @property
    def text(self) -> str:
        return " ".join(self.words)


def reply_to(model: str, question: str, prompt_texts: Sequence[str], max_tokens: int | None) -> Reply:
    """The deterministic answer of `model` to `question`, with usage counted in words."""
    words = f"Echo from {model}: {question}".split()
    finish_reason: FinishReason = "stop"
    if max_tokens is not None and len(words) > max_tokens:
        words, finish_reason = words[:max_tokens], "length"
    prompt_tokens = sum(len(text.split()) for text in prompt_texts)
    usage = Usage(
        prompt_tokens=prompt_tokens, completion_tokens=len(words), total_tokens=prompt_tokens + len(words)
    )
    return Reply(words=words, finish_reason=finish_reason, usage=usage)


class InferenceApi:
    """The two inference routes; the auth middleware has put the caller's account on each request."""

    def __init__(
        self,
        store: EndpointStore,
        catalogue: Catalogue,
        clock: SimulatedClock,
        prefix: str,
        v2: V2Inference | None = None,
    ):
        self._store = store
        self._v2 = v2
        self._catalogue = catalogue
        self._clock = clock
        self._prefix = prefix
        self._ids = itertools.count(1)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{self._prefix}{CHAT_PATH}", self.chat_completions),
            web.post(f"{self._prefix}{COMPLETIONS_PATH}", self.completions),
        ]

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        chat = _parse(ChatRequest, await read_json_object(request))
        self._admit(chat.model, request)
        user_messages = [message for message in chat.messages if message.role == "user"]
        question = user_messages[-1].text if user_messages else ""
        reply = reply_to(chat.model, question, [m.text for m in chat.messages], chat.max_tokens)
        completion_id, created = self._new_id(), int(self._clock.wall())
        if chat.stream:

            def chat_chunk(text: str, finish_reason: FinishReason | None) -> dict[str, object]:
                delta = {"role": "assistant", "content": text}
                return {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": chat.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                }

            return await _stream(request, reply, chat_chunk)
        body = ChatCompletion(
            id=completion_id,
            created=created,
            model=chat.model,
            choices=[
                ChatChoice(message=AssistantMessage(content=reply.text), finish_reason=reply.finish_reason)
            ],
            usage=reply.usage,
        )
        return web.json_response(body.model_dump(mode="json"))

    async def completions(self, request: web.Request) -> web.StreamResponse:
        completion = _parse(CompletionRequest, await read_json_object(request))
        self._admit(completion.model, request)
        reply = reply_to(completion.model, completion.prompt, [completion.prompt], completion.max_tokens)
        completion_id, created = self._new_id(), int(self._clock.wall())
        if completion.stream:

            def text_chunk(text: str, finish_reason: FinishReason | None) -> dict[str, object]:
                # Together's chunks carry the token too, and the finish reason at the top level as well.
                return {
                    "id": completion_id,
                    "object": "completion.chunk",
                    "created": created,
                    "model": completion.model,
                    "token": {"id": 0, "text": text, "logprob": 0.0, "special": finish_reason is not None},
                    "choices": [{"index": 0, "text": text, "finish_reason": finish_reason}],
                    "finish_reason": finish_reason,
                }

            return await _stream(request, reply, text_chunk)
        body = TextCompletion(
            id=completion_id,
            created=created,
            model=completion.model,
            choices=[TextChoice(text=reply.text, finish_reason=reply.finish_reason)],
            usage=reply.usage,
        )
        return web.json_response(body.model_dump(mode="json"))

    def _admit(self, model: str, request: web.Request) -> None:
        """Return if `model` answers for the caller (recording the endpoint's traffic), else raise the
        error the real service gives; see the module docstring for the cases and their sources, and
        `v2_inference` for v2 names."""
        account = request[ACCOUNT]
        if self._v2 is not None and self._v2.admit(model, account, request[API_KEY]):
            return
        record = self._store.by_name(model)
        if record is not None and record.owner == account:
            if self._store.state(record) != "STARTED":
                raise ApiError(
                    400,
                    f"The dedicated endpoint for {model} is not running. "
                    "Please visit https://api.together.ai/models to start the endpoint.",
                    code="dedicated_endpoint_not_running",
                )
            self._store.record_traffic(record)
            return
        if any(shared.name == model for shared in self._catalogue.serverless_endpoints):
            return
        if self._catalogue.model(model) is not None:
            raise ApiError(
                400,
                f"Unable to access non-serverless model {model}. Please visit "
                f"https://api.together.ai/models/{model} to create and start a new dedicated endpoint "
                "for the model.",
                code="model_not_available",
            )
        raise ApiError(
            404,
            f"Unable to access model {model}. "
            "Please visit https://api.together.ai/models to view the list of supported models.",
            code="model_not_available",
        )

    def _new_id(self) -> str:
        # The service's ids look like "8f3317dd3c3a39ef-YYZ" (a hex number and a data centre).
        return f"{next(self._ids):016x}-SIM"


ChunkBuilder = Callable[[str, FinishReason | None], dict[str, object]]
"""A stream chunk carrying `text`, with the finish reason on the last one (None before)."""


async def _stream(request: web.Request, reply: Reply, chunk: ChunkBuilder) -> web.StreamResponse:
    """Server-sent events: a chunk per word, a last one with the finish reason and usage, then [DONE]."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for position, word in enumerate(reply.words):
        await response.write(_event(chunk(word if position == 0 else f" {word}", None)))
    await response.write(_event({**chunk("", reply.finish_reason), "usage": reply.usage.model_dump()}))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _event(data: dict[str, object]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def _parse(model: type[RequestT], body: dict[str, object]) -> RequestT:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise validation_error(error) from error
