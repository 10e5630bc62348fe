"""Tests already inside an event loop run the simulator in that loop and use its admin operations directly."""

from __future__ import annotations

import httpx

from tests.simulator.api_helpers import create_body
from together_simulator import Simulator, SimulatorConfig


async def test_start_serves_on_a_free_loopback_port_until_stop() -> None:
    simulator = Simulator(SimulatorConfig(transition_seconds=0))
    base_url = await simulator.start()
    headers = {"Authorization": f"Bearer {simulator.config.first_api_key}"}
    try:
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as api:
            created = (await api.post("/endpoints", json=create_body())).json()
            fetched = (await api.get(f"/endpoints/{created['id']}")).json()
    finally:
        await simulator.stop()

    assert base_url == f"http://127.0.0.1:{simulator.port}/v1"
    assert fetched["state"] == "STARTED"
    assert [(call.method, call.status) for call in simulator.admin.calls()] == [("POST", 200), ("GET", 200)]
    assert [endpoint.id for endpoint in simulator.admin.endpoints()] == [created["id"]]
