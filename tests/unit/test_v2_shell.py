"""The v2 shell (`v2_shell.V2Reconciler`) against an in-memory v2 project: what a look costs. A steady
resource calls nothing beyond the project's shared endpoint list, kicks no extra list and writes
nothing; creates share one list; a deployment's message is read once per change of its state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest

from together_operator.credentials import ApiKey
from together_operator.poller import PollIntervals
from together_operator.resource import ConditionType, TogetherEndpointSpec, TogetherEndpointStatus
from together_operator.v2_core import V2Reason
from together_operator.v2_shell import (
    V2Clients,
    V2EndpointLists,
    V2Reconciler,
    V2Resource,
    V2Settings,
)

from .builders import MODEL, NAME, NAMESPACE
from .fakes import FakeClients, FakeTogether, FakeV2Clients, FakeV2Host, FakeV2Together, FixedClock, Log

SPEC = TogetherEndpointSpec.model_validate(
    {"model": MODEL, "hardware": "2x_nvidia_h100_80gb_sxm", "api": "v2"}
)
KEY = ApiKey("test-key-0123456789")
ENDPOINT_ID = f"ep_{NAMESPACE}-{NAME}"
DEPLOYMENT_ID = "dep_1"


class V2Bed:
    """A `V2Reconciler` on the fakes, its project's list polled only when kicked."""

    def __init__(self) -> None:
        self.log: Log = []
        self.clock = FixedClock()
        self.together = FakeV2Together(self.log)
        self.lists = V2EndpointLists(PollIntervals(steady=3600, transition=3600, jitter=0))
        self.reconciler = self.start()

    def start(self) -> V2Reconciler:
        """A reconciler that remembers nothing (as after a restart); the project's list is kept."""
        return V2Reconciler(
            V2Settings(inference_url="https://api-inference.together.ai/v1"),
            cast(V2Clients, FakeV2Clients(self.together)),
            self.lists,
            FakeClients(FakeTogether(log=self.log, clock=self.clock)),
            clock=self.clock,
        )

    async def look(
        self, host: FakeV2Host, name: str = NAME, spec: TogetherEndpointSpec = SPEC, generation: int = 1
    ) -> None:
        """One reconcile of the resource `name`, from the status its host holds; then the list it kicked."""
        resource = V2Resource(
            namespace=NAMESPACE,
            name=name,
            uid=f"uid-{name}",
            generation=generation,
            spec=spec,
            previous=host.written or TogetherEndpointStatus(),
            wake=lambda: None,
        )
        await self.reconciler.reconcile(host, KEY, resource)
        await settle()

    def kick(self) -> None:
        self.lists.poll_soon("proj_1")


async def settle() -> None:
    """Let the poller run what it was kicked for (the fake never suspends)."""
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
async def bed() -> AsyncIterator[V2Bed]:
    bed = V2Bed()
    yield bed
    await bed.lists.close()


async def ready(bed: V2Bed) -> FakeV2Host:
    host = FakeV2Host(bed.log)
    await bed.look(host)
    assert host.written is not None
    ready = host.written.condition(ConditionType.READY)
    assert ready is not None
    assert ready.status == "True"
    return host


async def test_a_look_at_a_steady_resource_calls_nothing_kicks_no_list_and_writes_nothing(bed: V2Bed) -> None:
    host = await ready(bed)
    written, events = host.written, list(host.events)
    bed.log.clear()
    bed.clock.advance(minutes=10)

    await bed.look(host)

    assert bed.log == []
    assert host.written is written
    assert host.events == events


async def test_after_a_restart_the_catalogue_is_read_once_and_nothing_else_moves(bed: V2Bed) -> None:
    host = await ready(bed)
    written, events = host.written, list(host.events)
    bed.reconciler = bed.start()
    bed.log.clear()
    bed.clock.advance(minutes=10)

    await bed.look(host)

    assert "list" not in bed.log, "reading the catalogue changes nothing: no list is kicked for it"
    assert all(call.startswith("GET ") for call in bed.log), bed.log
    assert host.written is written, "the conditions compare with the status written, not an interim one"
    assert host.events == events

    bed.log.clear()
    await bed.look(host)
    assert bed.log == [], "the target is remembered for the spec's generation"


async def test_concurrent_creates_share_one_endpoint_list(bed: V2Bed) -> None:
    names = [f"model-{i}" for i in range(8)]
    await asyncio.gather(*(bed.look(FakeV2Host(bed.log), name) for name in names))

    creates = [call for call in bed.log if call.startswith("POST endpoint")]
    assert creates == [f"POST endpoint {NAMESPACE}-{name}" for name in names]
    assert bed.log[: bed.log.index(creates[0])].count("list") == 1


async def test_a_create_whose_answer_was_lost_is_found_by_name_in_a_list_asked_after_it(bed: V2Bed) -> None:
    host = FakeV2Host(bed.log)
    bed.together.lost_create_answer = True
    await bed.look(host)
    assert host.written is not None
    assert host.written.endpoint_id is None
    bed.log.clear()

    await bed.look(host)

    assert bed.log[0] == "list", "the list before the lost create could not show it: a new one is asked"
    assert not [call for call in bed.log if call.startswith("POST endpoint")]
    assert host.written.endpoint_id == ENDPOINT_ID
    assert [call for call in bed.log if call.startswith("POST deployment")] == [
        f"POST deployment {ENDPOINT_ID}"
    ]


async def _looks_at(bed: V2Bed, host: FakeV2Host, state: str, message: str, looks: int) -> None:
    """The deployment turns `state` with the platform's `message`; the list shows it; `looks` looks."""
    bed.together.messages[DEPLOYMENT_ID] = message
    bed.together.set_state(ENDPOINT_ID, state)
    bed.kick()
    await settle()
    for _ in range(looks):
        await bed.look(host)


async def test_a_failed_deployments_message_is_read_once_per_change_of_its_state(bed: V2Bed) -> None:
    host = await ready(bed)
    bed.log.clear()

    await _looks_at(bed, host, "FAILED", "image pull failed", looks=3)
    assert bed.log.count(f"GET {DEPLOYMENT_ID}") == 1
    assert host.written is not None
    assert host.written.message == "image pull failed"

    await _looks_at(bed, host, "DEGRADED", "1 of 2 replicas ready", looks=2)
    assert bed.log.count(f"GET {DEPLOYMENT_ID}") == 2
    assert host.written.message == "1 of 2 replicas ready"


async def test_a_rollout_is_reported_once_as_it_begins(bed: V2Bed) -> None:
    host = await ready(bed)
    reported = len(host.events)
    larger = SPEC.model_copy(update={"hardware": "4xnvidia-h100-80gb"})

    await bed.look(host, spec=larger, generation=2)

    assert f"POST deployment {ENDPOINT_ID}" in bed.log
    assert [event.reason for event in host.events[reported:]] == [V2Reason.ROLLING_OUT]
