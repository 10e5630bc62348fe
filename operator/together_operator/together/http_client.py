"""The HTTP layer both Together clients (`client.TogetherClient` for v1, `v2_client.TogetherV2Client`)
send their calls through: bearer auth, the process-wide rate limiter, the retry policy, the mapping of
every failure to one of the `errors` classes, the `before_send` hook, and logs and errors that never
carry the API key.

Retries: a call that cannot change anything twice (GET; PATCH, whose values are absolute; DELETE) is
retried up to `max_retries` times on `TransientError` and `RateLimitedError`, with short exponential
backoff and jitter, never sooner than the server's Retry-After. A Retry-After longer than
`MAX_RETRY_DELAY` is not waited out here: the error goes to the caller, which can requeue the work
instead of holding a worker. A create (POST, `idempotent=False`) is never retried, whatever the
failure: a response lost on the way back may belong to something that now exists, and a second POST
would make another.

A create's `before_send` hook is awaited inside its rate-limiter slot, right before the POST goes out:
the caller records its intent then, so the time it records is when the POST was sent, however long
the slot took. If the hook raises, nothing is sent.
"""

import asyncio
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from .errors import (
    PermanentError,
    RateLimitedError,
    TogetherError,
    TransientError,
    UnexpectedResponseError,
    error_for_status,
    parse_retry_after,
)
from .models import ErrorBody
from .ratelimit import RateLimiter

MAX_RETRY_DELAY = 10.0
"""Longest wait (seconds) between two attempts of one call, whatever the server asks."""

_BACKOFF_BASE = 0.5
"""Seconds before the first retry when the server gave no Retry-After; doubles each retry."""

_CONNECT_TIMEOUT = 10.0
"""Connecting is quick or hopeless; a short bound frees the caller sooner when the network is down."""

_ECHO_PREFIX = 8
"""Servers may echo the key cut short (a header too long for them, say): text starting with the key's
first this many characters is redacted too, for keys at least twice as long."""

_log = logging.getLogger(__name__)

T = TypeVar("T")

BeforeSend = Callable[[], Awaitable[None]]
"""Awaited right before a request is sent, inside its rate-limiter slot."""


def _user_agent() -> str:
    try:
        return f"together-operator/{version('together-operator')}"
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "together-operator/unknown"


def retry_delay(retries_done: int, error: TogetherError) -> float | None:
    """Seconds to wait before retrying a call that failed with `error`, or None if it must not be retried.

    Only the retry budget and idempotency are decided by the caller; this decides by the error alone.
    """
    if not isinstance(error, RateLimitedError | TransientError):
        return None
    backoff = min(_BACKOFF_BASE * 2.0**retries_done, MAX_RETRY_DELAY)
    if error.retry_after is not None:
        if error.retry_after > MAX_RETRY_DELAY:
            return None
        # Never sooner than the backoff (a Retry-After of 0 would have every client hammer the API), and
        # up to 10% later than asked, so clients told the same moment do not all return at once.
        return max(error.retry_after, backoff) * random.uniform(1.0, 1.1)
    return random.uniform(backoff / 2, backoff)


class TogetherHTTP:
    """Calls to one Together base URL with one API key, over one pooled `httpx.AsyncClient`.

    `base_url` is where relative paths land (with or without a trailing slash). Create it once and
    close it with `aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        # Secrets created with `echo` end in a newline; anything else unprintable would make httpx
        # raise an error that quotes the header, key included, so it is refused here without echoing it.
        key = api_key.strip()
        if not key:
            raise ValueError("api_key is empty")
        if not key.isascii() or not key.isprintable():
            raise ValueError("api_key contains characters that cannot be sent in an HTTP header")
        self._api_key = key
        self._echo = (
            re.compile(re.escape(key[:_ECHO_PREFIX]) + r"[^\s'\"]*") if len(key) >= 2 * _ECHO_PREFIX else None
        )
        self._max_retries = max_retries
        self._rate_limiter = rate_limiter or RateLimiter(0)
        self._timeout = timeout
        # httpx adds the trailing slash a base URL lacks, so relative paths land under /v1/ either way.
        self._http = httpx.AsyncClient(
            base_url=url,
            headers={
                "Authorization": f"Bearer {key}",
                "User-Agent": _user_agent(),
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, _CONNECT_TIMEOUT)),
            follow_redirects=False,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        parse: Callable[[bytes], T],
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        idempotent: bool = True,
        before_send: BeforeSend | None = None,
    ) -> T:
        """Send one request to `path` (under the base URL), retrying it when that is safe and useful
        (never when `idempotent` is False), and parse the success body with `parse`. `before_send` is
        awaited in the rate-limiter slot right before the request goes out; if it raises, nothing is
        sent."""
        retries_done = 0
        while True:
            try:
                response = await self._send(method, path, params=params, json=json, before_send=before_send)
                try:
                    return parse(response.content)
                except ValidationError as exc:
                    raise UnexpectedResponseError(
                        f"unexpected response body: {_summarise(exc)}",
                        method=method,
                        path=path,
                        status_code=response.status_code,
                        endpoint_id=_id_in(response.content),
                    ) from exc
            except TogetherError as error:
                delay = retry_delay(retries_done, error)
                if not idempotent or retries_done >= self._max_retries or delay is None:
                    raise
                retries_done += 1
                _log.info(
                    "Retrying %s in %.2fs (retry %d of %d) after: %s",
                    error.operation,
                    delay,
                    retries_done,
                    self._max_retries,
                    error,
                )
                await asyncio.sleep(delay)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None,
        json: dict[str, Any] | None,
        before_send: BeforeSend | None,
    ) -> httpx.Response:
        """One HTTP exchange; any outcome but a 2xx response becomes a `TogetherError`. What
        `before_send` raises is the caller's own error, not the request's: it goes out as it is."""
        async with self._rate_limiter.slot():
            if before_send is not None:
                await before_send()
            response = await self._exchange(method, path, params=params, json=json)
        if response.is_success:
            return response
        raise self._error_from_response(response, method, path)

    async def _exchange(
        self, method: str, path: str, *, params: dict[str, str] | None, json: dict[str, Any] | None
    ) -> httpx.Response:
        """The request itself; a failure to get any response becomes a `TransientError`."""
        try:
            return await self._http.request(method, path, params=params, json=json)
        except httpx.TimeoutException as exc:
            raise TransientError(
                f"{type(exc).__name__}: no response within {self._timeout:g}s", method=method, path=path
            ) from exc
        except httpx.RequestError as exc:
            detail = self._redact(str(exc)) or "no details"
            raise TransientError(f"{type(exc).__name__}: {detail}", method=method, path=path) from exc

    def _error_from_response(self, response: httpx.Response, method: str, path: str) -> TogetherError:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if response.is_redirect:
            location = response.headers.get("Location", "nowhere")
            return PermanentError(
                f"unexpected redirect to {location}; check the base URL",
                method=method,
                path=path,
                status_code=response.status_code,
            )
        try:
            detail = ErrorBody.model_validate_json(response.content).error
        except ValidationError:
            # Not the documented error body (a proxy's page, say): say what little is known.
            return error_for_status(
                response.status_code,
                self._redact(_body_excerpt(response)),
                method=method,
                path=path,
                retry_after=retry_after,
            )
        return error_for_status(
            response.status_code,
            self._redact(detail.message),
            method=method,
            path=path,
            error_type=detail.type,
            param=detail.param,
            code=detail.code,
            retry_after=retry_after,
        )

    def _redact(self, text: str) -> str:
        """`text` without the API key, in case a server or library echoes it into a message, whole or
        cut short."""
        text = text.replace(self._api_key, "<redacted>")
        return self._echo.sub("<redacted>", text) if self._echo is not None else text


def _body_excerpt(response: httpx.Response, limit: int = 200) -> str:
    """The start of a readable body, or the reason phrase when the body is empty or markup."""
    readable = response.headers.get("Content-Type", "").startswith(("text/plain", "application/json"))
    text = " ".join(response.text.split()) if readable else ""
    if not text:
        return response.reason_phrase or "no details"
    return text if len(text) <= limit else text[:limit] + "..."


def _id_in(body: bytes) -> str | None:
    """The `id` of a JSON object body, if it has a string one: what little of an unreadable answer
    still matters."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    found = parsed.get("id") if isinstance(parsed, dict) else None
    return found if isinstance(found, str) and found else None


def _summarise(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "body"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{location}: {first['msg']}{more}"
