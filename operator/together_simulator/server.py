"""The simulator's HTTP server: the v1 API (endpoints and inference) under /v1, the v2 API under /v2
with `GET /v3/whoami`, the admin interface under /_admin/, one port. v1 and v2 share the keys, the
fault rules and the call log."""

from __future__ import annotations

import asyncio
import logging
import random
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from together_simulator.admin import ADMIN_PREFIX, Admin, Call, CallLog, admin_errors
from together_simulator.api import ACCOUNT, API_PREFIX, CREATE_ROUTE, UPDATE_ROUTE, TogetherApi
from together_simulator.catalogue import Catalogue
from together_simulator.config import FaultKind, FaultRule, SimulatorConfig
from together_simulator.errors import ApiError, error_response
from together_simulator.faults import FaultInjector
from together_simulator.inference import InferenceApi
from together_simulator.state import EndpointStore, SimulatedClock, iso_timestamp
from together_simulator.v2_admin import FailDeployment, V2Admin
from together_simulator.v2_api import (
    API_KEY,
    CREATE_DEPLOYMENT_ROUTE,
    CREATE_ENDPOINT_ROUTE,
    UPDATE_DEPLOYMENT_ROUTE,
    V2_PREFIX,
    WHOAMI_PATH,
    TogetherV2Api,
)
from together_simulator.v2_catalogue import V2Catalogue
from together_simulator.v2_inference import V2Inference
from together_simulator.v2_state import V2Store

log = logging.getLogger(__name__)

# A call closed without a response is logged with this status.
NO_RESPONSE = 0
# The calls that authenticate, may be faulted and are logged.
API_PREFIXES = (API_PREFIX, V2_PREFIX, WHOAMI_PATH)
CREATE_ROUTES = (CREATE_ROUTE, CREATE_ENDPOINT_ROUTE, CREATE_DEPLOYMENT_ROUTE)


class Simulator:
    """A Together API stand-in. In an event loop: `base_url = await Simulator(config).start()`,
    then `await stop()`. `admin` offers the admin operations directly, without HTTP."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        rng = random.Random(self.config.seed)
        clock = SimulatedClock()
        self._store = EndpointStore(clock, rng, self.config.transition_seconds, self.config.minute_seconds)
        self._faults = FaultInjector(self.config.faults, rng)
        self._call_log = CallLog(self.config.call_log_limit)
        self.admin = Admin(self._store, self._faults, self._call_log, clock)
        catalogue = Catalogue.load(self.config.catalogue_file)
        started_at = iso_timestamp(clock.wall())
        self._api = TogetherApi(self._store, catalogue, started_at)
        self._v2_store = V2Store(
            clock, rng, self.config.transition_seconds, self.config.v2_ready_timeout_seconds
        )
        self._v2_api = TogetherV2Api(self._v2_store, V2Catalogue(catalogue), started_at)
        self.v2_admin = V2Admin(self._v2_store)
        self._inference = InferenceApi(self._store, catalogue, clock, API_PREFIX, V2Inference(self._v2_store))
        self._runner: web.AppRunner | None = None
        self._address: tuple[str, int] | None = None

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._api_middleware, admin_errors])
        app.add_routes(self._api.routes())
        app.add_routes(self._v2_api.routes())
        app.add_routes(self._inference.routes())
        app.add_routes(self.admin.routes())
        app.add_routes(self.v2_admin.routes())
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0: a free port) and return the API base URL, e.g. http://127.0.0.1:PORT/v1."""
        # A short shutdown timeout: calls held by a latency fault must not delay stop() by a minute.
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self._address = (bound_host, bound_port)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        return self._bound()[1]

    @property
    def base_url(self) -> str:
        host, port = self._bound()
        return f"http://{host}:{port}{API_PREFIX}"

    @property
    def management_url(self) -> str:
        """The host of the API without a version: the v2 SDK's base URL (it calls /v2/... and /v3/whoami)."""
        host, port = self._bound()
        return f"http://{host}:{port}"

    @property
    def admin_url(self) -> str:
        host, port = self._bound()
        return f"http://{host}:{port}{ADMIN_PREFIX}"

    def _bound(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the simulator has not been started")
        return self._address

    @web.middleware
    async def _api_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Auth, fault injection and the call log for every API call (/v1, /v2, /v3/whoami)."""
        if not any(
            request.path == prefix or request.path.startswith(f"{prefix}/") for prefix in API_PREFIXES
        ):
            return await handler(request)
        api_key = _bearer_token(request)
        account = self.config.accounts.get(api_key)
        # Logged on arrival, so a call still in progress (held by latency, say) is already counted.
        call = Call(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            status=None,
            time=time.time(),
            account=account,
        )
        self._call_log.append(call)
        response = await self._respond(request, handler, account, api_key, call.faults)
        dropped = {"drop_connection", "lose_create_response"} & set(call.faults)
        call.status = NO_RESPONSE if dropped else response.status
        log.info(
            "%s %s -> %s account=%s faults=%s",
            call.method,
            request.path_qs,
            call.status,
            account,
            call.faults,
        )
        return response

    async def _respond(
        self,
        request: web.Request,
        handler: Handler,
        account: str | None,
        api_key: str,
        applied: list[FaultKind],
    ) -> web.StreamResponse:
        method, path = request.method, request.path
        delay = self._faults.latency(method, path)
        if delay:
            applied.append("latency")
            # The body has arrived before the server dawdles: a client that gives up (or dies) while
            # its call is held does not undo it, as with a real server. aiohttp keeps the body read.
            if request.can_read_body:
                await request.read()
            await asyncio.sleep(delay)
        interruption = self._faults.take(method, path, "rate_limit", "server_error", "drop_connection")
        if interruption is not None:
            applied.append(interruption.fault)
            return _interrupt(request, interruption)
        if account is None:
            return error_response(
                401,
                "Invalid API key provided. You can find your API key at https://api.together.ai/settings/api-keys.",
                code="invalid_api_key",
            )
        request[ACCOUNT] = account
        request[API_KEY] = api_key
        try:
            response = await handler(request)
        except ApiError as error:
            return error.response()
        except web.HTTPException as error:
            # Unknown paths and methods answer with the error body too, keeping the Allow header of a 405.
            allow = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
            return error_response(error.status, error.reason, headers=allow)
        except Exception:
            # A simulator bug: answer as the service would, and keep the call log complete.
            log.exception("%s %s failed", method, path)
            return error_response(500, "Internal server error", error_type="server_error")
        if response.status != 200:
            return response
        route = request.match_info.route.name
        if route in CREATE_ROUTES and self._faults.take(method, path, "lose_create_response"):
            applied.append("lose_create_response")
            return _drop(request)
        if route == UPDATE_ROUTE and self._faults.take(method, path, "error_after_update"):
            applied.append("error_after_update")
            record = self._store.get(request.match_info["endpoint_id"])
            if record is not None:
                self._store.fail(record)
        if route == UPDATE_DEPLOYMENT_ROUTE and self._faults.take(method, path, "error_after_update"):
            applied.append("error_after_update")
            self.v2_admin.out_of_band(
                request.match_info["deployment_id"],
                FailDeployment(action="fail", message="Replica crashed after the update"),
            )
        return response


def _bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _interrupt(request: web.Request, rule: FaultRule) -> web.StreamResponse:
    if rule.fault == "rate_limit":
        return error_response(
            429,
            "Rate limit exceeded, please try again later.",
            error_type="rate_limit_error",
            headers={"Retry-After": f"{rule.retry_after:g}"},
        )
    if rule.fault == "server_error":
        return error_response(rule.status, "Internal server error", error_type="server_error")
    return _drop(request)


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection at once; the client gets no status line at all."""
    if request.transport is not None:
        request.transport.abort()
    # aiohttp still wants a response object; it cannot reach the closed connection.
    return web.Response(status=204)
