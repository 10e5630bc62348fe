"""The admin side of the simulator: the call log, fault rules, out-of-band changes and the clock.

`Admin` holds the operations; tests in the simulator's own event loop call them directly, everyone
else goes through the HTTP routes under /_admin/ (no auth, never recorded in the call log):

    GET    /_admin/calls?method=&path=          the call log (path: a regex the whole path must match)
    DELETE /_admin/calls
    GET    /_admin/faults                       the rules in force (`times` = calls left)
    PUT    /_admin/faults                       body: a JSON list of FaultRule; replaces the rules
    DELETE /_admin/faults
    GET    /_admin/endpoints                    every account's endpoints, internal fields included
    POST   /_admin/endpoints/{id}/out-of-band   body: {"action": ..., params}, see OutOfBandChange
    POST   /_admin/endpoints/{id}/traffic       the endpoint was just used: its idle clock restarts
    POST   /_admin/clock/advance                body: {"seconds": N}; simulated time jumps forward
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from typing import Annotated, Literal

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from together_simulator.config import FaultKind, FaultRule
from together_simulator.errors import ApiError, check_autoscaling, error_response, read_json
from together_simulator.faults import FaultInjector
from together_simulator.state import EndpointRecord, EndpointStore, SimulatedClock, iso_timestamp
from together_simulator.wire import Autoscaling, EndpointState, UsageType

ADMIN_PREFIX = "/_admin"


class Call(BaseModel):
    """One API call as the client saw it. `status` 0: the connection was closed without a response
    (a `drop_connection` or `lose_create_response` fault); None: the call is still being handled."""

    method: str
    path: str
    query: dict[str, str]
    status: int | None
    time: float = Field(description="Unix time (real, not simulated) when the call arrived.")
    account: str | None = Field(description="The account of the API key; None when the key is unknown.")
    faults: list[FaultKind] = Field(default_factory=list, description="The faults applied to this call.")


class AdminEndpoint(BaseModel):
    """An endpoint with what the API does not show: timeout, zone, idle time, how it stopped."""

    id: str
    name: str
    display_name: str
    model: str
    hardware: str
    owner: str
    state: EndpointState
    autoscaling: Autoscaling
    inactive_timeout: int | None
    availability_zone: str | None
    disable_speculative_decoding: bool
    usage_type: UsageType
    created_at: str
    idle_seconds: float | None = Field(description="Simulated seconds without traffic while STARTED.")
    auto_stopped: bool = Field(description="The last stop came from inactive_timeout.")


class StopChange(BaseModel):
    action: Literal["stop"]


class StartChange(BaseModel):
    action: Literal["start"]


class ScaleChange(BaseModel):
    action: Literal["scale"]
    min_replicas: int
    max_replicas: int


class RenameChange(BaseModel):
    action: Literal["rename"]
    display_name: str


class DeleteChange(BaseModel):
    action: Literal["delete"]


class ErrorChange(BaseModel):
    action: Literal["error"]


OutOfBandChange = Annotated[
    StopChange | StartChange | ScaleChange | RenameChange | DeleteChange | ErrorChange,
    Field(discriminator="action"),
]
_out_of_band_change = TypeAdapter[OutOfBandChange](OutOfBandChange)
_fault_rules = TypeAdapter(list[FaultRule])


class ClockAdvance(BaseModel):
    seconds: float = Field(ge=0)


class CallLog:
    def __init__(self, limit: int) -> None:
        self._calls: deque[Call] = deque(maxlen=limit)

    def append(self, call: Call) -> None:
        self._calls.append(call)

    def clear(self) -> None:
        self._calls.clear()

    def matching(self, method: str | None = None, path: str | None = None) -> list[Call]:
        return [
            call
            for call in self._calls
            if (method is None or call.method == method.upper())
            and (path is None or re.fullmatch(path, call.path) is not None)
        ]


class Admin:
    def __init__(self, store: EndpointStore, faults: FaultInjector, call_log: CallLog, clock: SimulatedClock):
        self._store = store
        self._faults = faults
        self._call_log = call_log
        self._clock = clock

    def calls(self, method: str | None = None, path: str | None = None) -> list[Call]:
        """Logged API calls, oldest first; `path` is a regex the whole request path (with /v1) must match."""
        return self._call_log.matching(method, path)

    def clear_calls(self) -> None:
        self._call_log.clear()

    def faults(self) -> list[FaultRule]:
        return self._faults.rules()

    def set_faults(self, rules: Iterable[FaultRule]) -> None:
        self._faults.replace(rules)

    def clear_faults(self) -> None:
        self._faults.replace([])

    def endpoints(self) -> list[AdminEndpoint]:
        return [self._view(record) for record in self._store.all()]

    def out_of_band(self, endpoint_id: str, change: OutOfBandChange) -> AdminEndpoint | None:
        """Change an endpoint as its owner would with the vendor CLI or web console; None once deleted."""
        record = self._record(endpoint_id)
        match change:
            case StopChange():
                self._store.request_state(record, "STOPPED")
            case StartChange():
                self._store.request_state(record, "STARTED")
            case ScaleChange(min_replicas=min_replicas, max_replicas=max_replicas):
                check_autoscaling(min_replicas, max_replicas)
                record.min_replicas, record.max_replicas = min_replicas, max_replicas
            case RenameChange(display_name=display_name):
                record.display_name = display_name
            case DeleteChange():
                self._store.delete(endpoint_id)
                return None
            case ErrorChange():
                self._store.fail(record)
        return self._view(record)

    def traffic(self, endpoint_id: str) -> AdminEndpoint:
        record = self._record(endpoint_id)
        self._store.record_traffic(record)
        return self._view(record)

    def advance_clock(self, seconds: float) -> float:
        """Move simulated time forward (lifecycle steps, idle clocks, created_at); returns the offset."""
        return self._clock.advance(seconds)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{ADMIN_PREFIX}/calls", self._get_calls),
            web.delete(f"{ADMIN_PREFIX}/calls", self._delete_calls),
            web.get(f"{ADMIN_PREFIX}/faults", self._get_faults),
            web.put(f"{ADMIN_PREFIX}/faults", self._put_faults),
            web.delete(f"{ADMIN_PREFIX}/faults", self._delete_faults),
            web.get(f"{ADMIN_PREFIX}/endpoints", self._get_endpoints),
            web.post(f"{ADMIN_PREFIX}/endpoints/{{endpoint_id}}/out-of-band", self._post_out_of_band),
            web.post(f"{ADMIN_PREFIX}/endpoints/{{endpoint_id}}/traffic", self._post_traffic),
            web.post(f"{ADMIN_PREFIX}/clock/advance", self._post_clock_advance),
        ]

    def _record(self, endpoint_id: str) -> EndpointRecord:
        record = self._store.get(endpoint_id)
        if record is None:
            raise ApiError(404, f"Endpoint {endpoint_id} not found", param="endpoint_id")
        return record

    def _view(self, record: EndpointRecord) -> AdminEndpoint:
        return AdminEndpoint(
            id=record.id,
            name=record.name,
            display_name=record.display_name,
            model=record.model,
            hardware=record.hardware,
            owner=record.owner,
            state=self._store.state(record),
            autoscaling=Autoscaling(min_replicas=record.min_replicas, max_replicas=record.max_replicas),
            inactive_timeout=record.inactive_timeout,
            availability_zone=record.availability_zone,
            disable_speculative_decoding=record.disable_speculative_decoding,
            usage_type=record.usage_type,
            created_at=iso_timestamp(record.created_at),
            idle_seconds=self._store.idle_seconds(record),
            auto_stopped=record.auto_stopped,
        )

    async def _get_calls(self, request: web.Request) -> web.Response:
        try:
            calls = self.calls(request.query.get("method"), request.query.get("path"))
        except re.error as error:
            raise ApiError(400, f"path is not a regular expression: {error}", param="path") from error
        return web.json_response([call.model_dump(mode="json") for call in calls])

    async def _delete_calls(self, request: web.Request) -> web.Response:
        self.clear_calls()
        return web.Response(status=204)

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(_fault_rules.dump_python(self.faults(), mode="json"))

    async def _put_faults(self, request: web.Request) -> web.Response:
        self.set_faults(_fault_rules.validate_python(await read_json(request)))
        return web.json_response(_fault_rules.dump_python(self.faults(), mode="json"))

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return web.Response(status=204)

    async def _get_endpoints(self, request: web.Request) -> web.Response:
        return web.json_response([endpoint.model_dump(mode="json") for endpoint in self.endpoints()])

    async def _post_out_of_band(self, request: web.Request) -> web.Response:
        change = _out_of_band_change.validate_python(await read_json(request))
        endpoint = self.out_of_band(request.match_info["endpoint_id"], change)
        if endpoint is None:
            return web.Response(status=204)
        return web.json_response(endpoint.model_dump(mode="json"))

    async def _post_traffic(self, request: web.Request) -> web.Response:
        return web.json_response(self.traffic(request.match_info["endpoint_id"]).model_dump(mode="json"))

    async def _post_clock_advance(self, request: web.Request) -> web.Response:
        advance = ClockAdvance.model_validate(await read_json(request))
        return web.json_response({"offset_seconds": self.advance_clock(advance.seconds)})


@web.middleware
async def admin_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admin requests answer errors with the same error body as the API."""
    if not request.path.startswith(f"{ADMIN_PREFIX}/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as error:
        return error.response()
    except ValidationError as error:
        return error_response(400, str(error))
