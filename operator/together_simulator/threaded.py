"""Run a simulator in a background thread with its own event loop, for synchronous tests and tools."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from pydantic import TypeAdapter

from together_simulator.admin import AdminEndpoint, Call
from together_simulator.config import FaultRule, SimulatorConfig
from together_simulator.server import Simulator
from together_simulator.v2_admin import AdminDeployment

_calls = TypeAdapter(list[Call])
_endpoints = TypeAdapter(list[AdminEndpoint])
_rules = TypeAdapter(list[FaultRule])
_deployments = TypeAdapter(list[AdminDeployment])


class RunningSimulator:
    """A simulator running elsewhere, driven through its admin HTTP interface (safe from any thread)."""

    def __init__(self, base_url: str, admin_url: str, config: SimulatorConfig) -> None:
        self.base_url = base_url
        self.admin_url = admin_url
        self.config = config
        self.api_key = config.first_api_key
        self._admin = httpx.Client(base_url=admin_url, timeout=10.0)

    @property
    def management_url(self) -> str:
        """The API host without a version, the 3.x SDK's base URL (it calls /v2/... and /v3/whoami)."""
        return self.base_url.removesuffix("/v1")

    def close(self) -> None:
        self._admin.close()

    def calls(self, method: str | None = None, path: str | None = None) -> list[Call]:
        """Logged API calls, oldest first; `path` is a regex the whole request path (with /v1) must match."""
        query = {name: value for name, value in (("method", method), ("path", path)) if value is not None}
        return _calls.validate_python(self._request("GET", "/calls", params=query).json())

    def clear_calls(self) -> None:
        self._request("DELETE", "/calls")

    def faults(self) -> list[FaultRule]:
        return _rules.validate_python(self._request("GET", "/faults").json())

    def set_faults(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> None:
        """Replace the fault rules, each a FaultRule or its JSON form: {"fault": "rate_limit", "times": 2}."""
        validated = _rules.validate_python(list(rules))
        self._request("PUT", "/faults", json=_rules.dump_python(validated, mode="json"))

    def clear_faults(self) -> None:
        self._request("DELETE", "/faults")

    def endpoints(self) -> list[AdminEndpoint]:
        return _endpoints.validate_python(self._request("GET", "/endpoints").json())

    def out_of_band(self, endpoint_id: str, action: str, **params: Any) -> AdminEndpoint | None:
        """Change an endpoint behind the API client's back: stop, start, scale (min_replicas, max_replicas),
        rename (display_name), delete or error. Returns the endpoint, or None after a delete."""
        change = {"action": action, **params}
        response = self._request("POST", f"/endpoints/{endpoint_id}/out-of-band", json=change)
        return None if response.status_code == 204 else AdminEndpoint.model_validate(response.json())

    def traffic(self, endpoint_id: str) -> AdminEndpoint:
        """Mark the endpoint as used just now, restarting its idle clock."""
        return AdminEndpoint.model_validate(self._request("POST", f"/endpoints/{endpoint_id}/traffic").json())

    def v2_deployments(self) -> list[AdminDeployment]:
        """Every project's v2 deployments, with state, traffic weight and etag."""
        return _deployments.validate_python(self._request("GET", "/v2/deployments").json())

    def v2_out_of_band(self, deployment_id: str, action: str, **params: Any) -> AdminDeployment | None:
        """Change a v2 deployment behind the client's back: scale (min_replicas, max_replicas), unroute,
        delete, degrade or fail (message). Returns the deployment, or None after a delete."""
        change = {"action": action, **params}
        response = self._request("POST", f"/v2/deployments/{deployment_id}/out-of-band", json=change)
        return None if response.status_code == 204 else AdminDeployment.model_validate(response.json())

    def advance_clock(self, seconds: float) -> None:
        """Move simulated time forward: lifecycle steps and idle clocks advance without waiting."""
        self._request("POST", "/clock/advance", json={"seconds": seconds})

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._admin.request(method, path, **kwargs)
        response.raise_for_status()
        return response


@contextmanager
def run_simulator_in_thread(
    config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningSimulator]:
    """Start a simulator on host:port (0: a free port) in a daemon thread; stop it on exit."""
    simulator = Simulator(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="together-simulator", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(simulator.start(host, port), loop).result(timeout=30)
        running = RunningSimulator(simulator.base_url, simulator.admin_url, simulator.config)
        try:
            yield running
        finally:
            running.close()
            asyncio.run_coroutine_threadsafe(simulator.stop(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
