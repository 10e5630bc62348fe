"""Typed failures of Together API calls, one class per way a caller has to react.

- `PermanentError` (400, 404, 422, other 4xx): the same request will fail again; change it first.
  `NotFoundError` is its 404 case, which callers often treat as a result rather than a failure.
- `AuthError` (401, 403): the API key is missing, wrong or not allowed; a human has to act.
- `RateLimitedError` (429): retry later, no earlier than `retry_after` when the server said.
- `TransientError` (5xx, 408, timeouts, connection failures, unreadable responses): retry later. After
  a POST it also means "outcome unknown": the server may have acted on the request.
  `UnexpectedResponseError` is its case of a 2xx whose body could not be read as documented.

`str(error)` is a single line meant for Kubernetes conditions and events. No error ever holds the
API key or the request headers.
"""

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Required, TypedDict, Unpack

MESSAGE_LIMIT = 1000
"""Longest message kept from an error (characters); longer ones are cut."""


class _ErrorFields(TypedDict, total=False):
    """What every error records about the failed call, besides its message."""

    method: Required[str]
    path: Required[str]
    status_code: int | None
    error_type: str | None
    param: str | None
    code: str | None


class TogetherError(Exception):
    """Base of every failure raised by the Together client."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status_code: int | None = None,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        text = " ".join(message.split())
        # A proxy's error page or a runaway message must not reach a condition or an event whole.
        self.message = text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "..."
        self.method = method
        self.path = path
        self.status_code = status_code
        self.error_type = error_type
        self.param = param
        self.code = code
        super().__init__(self.message)

    @property
    def operation(self) -> str:
        """The call that failed, e.g. `GET endpoints/endpoint-123` (path relative to the base URL)."""
        return f"{self.method} {self.path}"

    def __str__(self) -> str:
        status = f"HTTP {self.status_code}" if self.status_code is not None else "no response"
        kind = f" {self.error_type}" if self.error_type else ""
        return f"Together API {self.operation} failed ({status}{kind}): {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(operation={self.operation!r}, status_code={self.status_code!r}, "
            f"error_type={self.error_type!r}, code={self.code!r}, param={self.param!r}, "
            f"message={self.message!r})"
        )


class PermanentError(TogetherError):
    """The server rejected the request as such (400, 422, other 4xx); retrying it unchanged is pointless."""


class NotFoundError(PermanentError):
    """404: the endpoint (or model) does not exist, or no longer does."""


class AuthError(TogetherError):
    """401 or 403: the API key is missing, unknown or lacks permission."""


class RateLimitedError(TogetherError):
    """429: too many requests. `retry_after` is the server's requested wait in seconds, if it gave one."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, **fields: Unpack[_ErrorFields]
    ) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after


class TransientError(TogetherError):
    """A failure that may go away by itself: 5xx, 408, timeout, lost connection, unreadable response.

    `retry_after` is set when a 5xx response (typically 503) carried a Retry-After header.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, **fields: Unpack[_ErrorFields]
    ) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after


class UnexpectedResponseError(TransientError):
    """A 2xx answer whose body is not what the API documents. After a create the endpoint exists all the
    same: `endpoint_id` is the id the body carried, when that much could be read."""

    def __init__(
        self, message: str, *, endpoint_id: str | None = None, **fields: Unpack[_ErrorFields]
    ) -> None:
        super().__init__(message, **fields)
        self.endpoint_id = endpoint_id


def error_for_status(
    status_code: int,
    message: str,
    *,
    method: str,
    path: str,
    error_type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    retry_after: float | None = None,
) -> TogetherError:
    """The error that an unsuccessful HTTP response with this status code stands for."""
    fields: _ErrorFields = {
        "method": method,
        "path": path,
        "status_code": status_code,
        "error_type": error_type,
        "param": param,
        "code": code,
    }
    if status_code in (401, 403):
        return AuthError(message, **fields)
    if status_code == 404:
        return NotFoundError(message, **fields)
    if status_code == 429:
        return RateLimitedError(message, retry_after=retry_after, **fields)
    # 408 is the server giving up waiting for our request: a timeout, so as retryable as ours.
    if status_code == 408 or status_code >= 500:
        return TransientError(message, retry_after=retry_after, **fields)
    return PermanentError(message, **fields)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a Retry-After header: delay-seconds or an HTTP-date (RFC 9110).

    A date in the past means "now" (0.0). A missing, negative or unparseable value gives None, so a
    malformed header never turns into a bogus wait.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # HTTP-dates are GMT; email.utils returns a naive datetime for "-0000".
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
