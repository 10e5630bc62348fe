"""Errors answered with the API's error body: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from pydantic import ValidationError

from together_simulator.wire import INT32_MAX, ErrorData, ErrorDetail


def error_response(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = ErrorData(error=ErrorDetail(message=message, type=error_type, param=param, code=code))
    return web.json_response(body.model_dump(mode="json"), status=status, headers=headers)


class ApiError(Exception):
    """Raised by a handler to answer with an error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code

    def response(self) -> web.Response:
        return error_response(
            self.status, self.message, error_type=self.error_type, param=self.param, code=self.code
        )


async def read_json(request: web.Request) -> object:
    try:
        return await request.json()
    except ValueError as error:
        raise ApiError(400, f"The request body is not valid JSON: {error}") from error


async def read_json_object(request: web.Request) -> dict[str, object]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    return body


def validation_error(error: ValidationError) -> ApiError:
    """The 400 for a request body that does not fit its model, naming the first field at fault."""
    first = error.errors()[0]
    param = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return ApiError(400, f"{param} is required", param=param)
    return ApiError(400, f"Invalid value for {param}: {first['msg']}", param=param)


def check_autoscaling(min_replicas: int, max_replicas: int) -> None:
    for param, value in (("min_replicas", min_replicas), ("max_replicas", max_replicas)):
        if not 0 <= value <= INT32_MAX:
            raise ApiError(400, f"{param} must be between 0 and {INT32_MAX}", param=f"autoscaling.{param}")
    if min_replicas > max_replicas:
        raise ApiError(
            400,
            f"min_replicas ({min_replicas}) cannot be greater than max_replicas ({max_replicas})",
            param="autoscaling.min_replicas",
        )
