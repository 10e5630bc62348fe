"""The shared v2 endpoint list (`v2_shell.V2EndpointLists`) wakes a resource for the one endpoint name
it watches: an adopted endpoint's own name replaces the default name the resource watched before."""

from __future__ import annotations

import asyncio
from typing import cast

from together_operator.poller import PollIntervals
from together_operator.together.v2_client import DedicatedInferenceAPI
from together_operator.together.v2_models import Endpoint
from together_operator.v2_shell import V2EndpointLists

PROJECT = "proj_1"


def named(name: str, etag: str = "e1") -> Endpoint:
    return Endpoint(
        id=f"ep_{name}",
        name=f"devproj/{name}",
        project_id=PROJECT,
        etag=etag,
        visibility="VISIBILITY_PRIVATE",
    )


class Project:
    """The project's endpoints as `list_endpoints` answers them; `served` is set by each list."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []
        self.served = asyncio.Event()

    async def list_endpoints(self, *, filter: str | None = None) -> list[Endpoint]:
        self.served.set()
        return list(self.endpoints)


async def next_list(lists: V2EndpointLists, project: Project) -> None:
    """Ask for a list now and wait until it has been served. The poll wakes the watchers in the same
    step as the list returns (the fake never suspends), so they have been woken by then."""
    project.served.clear()
    lists.poll_soon(PROJECT)
    await project.served.wait()
    await asyncio.sleep(0)


async def test_watching_an_adopted_name_replaces_the_default_name() -> None:
    project = Project()
    api = cast(DedicatedInferenceAPI, project)
    lists = V2EndpointLists(PollIntervals(steady=3600, transition=3600, jitter=0))
    woken: list[str] = []
    lists.watch(PROJECT, api, "team-a-chat", "uid-1", lambda: woken.append("uid-1"))
    lists.watch(PROJECT, api, "chat", "uid-1", lambda: woken.append("uid-1"))
    try:
        await next_list(lists, project)
        assert woken == ["uid-1"], "the first list wakes the resource once, for the one name it watches"

        project.endpoints = [named("team-a-chat")]
        await next_list(lists, project)
        assert woken == ["uid-1"], "a change under the name it no longer watches does not wake it"

        project.endpoints = [named("team-a-chat"), named("chat", etag="e2")]
        await next_list(lists, project)
        assert woken == ["uid-1", "uid-1"]
    finally:
        await lists.close()
