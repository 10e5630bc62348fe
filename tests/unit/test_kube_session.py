"""kopf's apiserver session: a burst of requests shares a few connections, watch streams are never held
back by it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from together_operator.startup import bounded_requests


class Apiserver:
    """Answers every request once released; counts the requests it holds at once."""

    def __init__(self) -> None:
        self.open = 0
        self.most_open = 0
        self.release = asyncio.Event()
        self.watching = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            self.watching += 1
            response = web.StreamResponse()
            await response.prepare(request)
            await self.release.wait()
            return response
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        await self.release.wait()
        self.open -= 1
        return web.json_response({"kind": "Status"})


@pytest.fixture
async def apiserver() -> AsyncIterator[tuple[Apiserver, str]]:
    server = Apiserver()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield server, f"http://{host}:{port}"
    server.release.set()
    await runner.cleanup()


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_burst_of_patches_holds_at_most_the_limit_of_connections(
    apiserver: tuple[Apiserver, str],
) -> None:
    server, url = apiserver
    async with aiohttp.ClientSession(middlewares=(bounded_requests(4),)) as session:

        async def patch(n: int) -> object:
            response = await session.patch(f"{url}/apis/x/resource-{n}")
            return await response.json()

        burst = [asyncio.create_task(patch(n)) for n in range(40)]
        await until(lambda: server.open == 4)
        server.release.set()
        answers = await asyncio.gather(*burst)

    assert server.most_open == 4
    assert answers == [{"kind": "Status"}] * 40


async def test_watch_streams_do_not_take_the_slots_of_other_requests(
    apiserver: tuple[Apiserver, str],
) -> None:
    server, url = apiserver
    async with aiohttp.ClientSession(middlewares=(bounded_requests(2),)) as session:
        watches = [await session.get(f"{url}/apis/x/namespaces/ns-{n}/things?watch=true") for n in range(5)]
        patch = asyncio.create_task(session.patch(f"{url}/apis/x/resource"))
        await until(lambda: server.open == 1)
        server.release.set()
        response = await patch

        assert server.watching == 5
        assert await response.json() == {"kind": "Status"}
        for watch in watches:
            watch.close()
