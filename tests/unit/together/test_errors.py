"""Failures are classified by what a caller has to do about them, and read well in a condition."""

from datetime import UTC, datetime

import pytest

from together_operator.together import (
    AuthError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TogetherError,
    TransientError,
)
from together_operator.together.errors import error_for_status, parse_retry_after


@pytest.mark.parametrize(
    ("status_code", "error_class"),
    [
        (400, PermanentError),
        (404, NotFoundError),
        (409, PermanentError),
        (422, PermanentError),
        (401, AuthError),
        (403, AuthError),
        (429, RateLimitedError),
        (408, TransientError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (504, TransientError),
    ],
)
def test_status_code_selects_the_error_class(status_code: int, error_class: type[TogetherError]) -> None:
    error = error_for_status(status_code, "boom", method="GET", path="endpoints")

    assert type(error) is error_class
    assert error.status_code == status_code


def test_not_found_is_a_permanent_error() -> None:
    error = error_for_status(404, "no such endpoint", method="GET", path="endpoints/endpoint-1")

    assert isinstance(error, PermanentError)


def test_error_keeps_the_server_fields_and_the_operation() -> None:
    error = error_for_status(
        400,
        "min_replicas must not exceed max_replicas",
        method="POST",
        path="endpoints",
        error_type="invalid_request_error",
        param="autoscaling",
        code="invalid_value",
    )

    assert error.message == "min_replicas must not exceed max_replicas"
    assert error.error_type == "invalid_request_error"
    assert error.param == "autoscaling"
    assert error.code == "invalid_value"
    assert error.operation == "POST endpoints"


@pytest.mark.parametrize("status_code", [429, 503])
def test_retry_after_is_kept_on_retryable_errors(status_code: int) -> None:
    error = error_for_status(status_code, "slow down", method="GET", path="endpoints", retry_after=7.0)

    assert isinstance(error, RateLimitedError | TransientError)
    assert error.retry_after == 7.0


def test_str_is_one_line_naming_operation_status_type_and_message() -> None:
    error = error_for_status(
        404,
        "Endpoint not found:\n  endpoint-1",
        method="GET",
        path="endpoints/endpoint-1",
        error_type="not_found",
    )

    assert str(error) == (
        "Together API GET endpoints/endpoint-1 failed (HTTP 404 not_found): Endpoint not found: endpoint-1"
    )


def test_str_of_a_failure_without_response_says_so() -> None:
    error = TransientError("ConnectError: connection refused", method="DELETE", path="endpoints/endpoint-1")

    assert str(error) == (
        "Together API DELETE endpoints/endpoint-1 failed (no response): ConnectError: connection refused"
    )
    assert error.status_code is None


def test_repr_names_the_class_and_fields() -> None:
    error = error_for_status(401, "Invalid API key", method="GET", path="endpoints", error_type="auth")

    assert repr(error) == (
        "AuthError(operation='GET endpoints', status_code=401, error_type='auth', code=None, param=None, "
        "message='Invalid API key')"
    )


NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        ("0", 0.0),
        (" 1.5 ", 1.5),
        ("Fri, 01 May 2026 12:00:30 GMT", 30.0),
        ("Fri, 01 May 2026 11:59:00 GMT", 0.0),  # already past: retry now
        (None, None),
        ("", None),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds
