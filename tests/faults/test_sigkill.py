"""The operator is killed with SIGKILL at random points and started again, over and over, while resources
go through create -> scale -> stop -> delete. Whatever it was doing when it died, in the end every
resource has exactly one endpoint (no duplicate), no endpoint is left without a resource (no orphan),
and every resource is Ready or gone.

The simulator holds every create, update and delete for a while before answering, which widens the
windows that matter (intent recorded but the create unanswered; update sent but not seen; delete sent
but the finalizer still on).

Cycles: FAULT_CYCLES (default 10, for CI); `FAULT_CYCLES=60 .venv/bin/python -m pytest tests/faults -k sigkill
-s` runs the full count (docs/reliability.md has the whole suite's full run). The random seed is printed;
FAULT_SEED=<seed> repeats a run's choices (kill timings still depend on the machine).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter

import pytest

from tests.faults.conftest import StackFactory
from tests.faults.harness import (
    TEP,
    FaultStack,
    KillRun,
    fault_seed,
    is_ready,
    kill_repeatedly,
    make_key,
    report,
)
from tests.support.kube import Kube
from tests.support.manifests import endpoint_manifest
from together_simulator import Call

pytestmark = pytest.mark.controlplane

CYCLES = int(os.environ.get("FAULT_CYCLES", "10"))
LANES = 2
"""Resources going through their cycles at the same time (each kill hits all of them)."""
LATENCY = {"POST": 2.0, "PATCH": 0.7, "DELETE": 0.7}
"""Seconds the simulator holds each change before answering."""
LIFETIME = (0.2, 3.0)
"""How long each operator incarnation lives once healthy (uniform), before the next SIGKILL."""
STEP_TIMEOUT = 180.0


def _check_no_duplicate(run: KillRun) -> None:
    """Two live endpoints with one resource's display name would be a duplicate create."""
    names = Counter(e.display_name for e in run.stack.dedicated_endpoints())
    duplicated = {name: n for name, n in names.items() if n > 1}
    if duplicated:
        run.violations.append(duplicated)


def _killer(run: KillRun, rng: random.Random) -> None:
    try:
        kill_repeatedly(
            run.stack.operator, rng, LIFETIME, run.done, run.kill_times, lambda: _check_no_duplicate(run)
        )
    except Exception as error:  # reported by the test
        run.errors.append(f"killer: {error}")
        run.done.set()


def _lane(run: KillRun, lane: int, cycles: list[int]) -> None:
    """Each cycle: create, scale, stop, delete; the lane's last resource is kept, to compare with the
    endpoints left at the end."""
    stack, kube = run.stack, run.kube
    ns = kube.namespace
    try:
        for position, index in enumerate(cycles):
            name = f"c{index:03d}"
            kube.apply(endpoint_manifest(name))
            stack.wait_for(ns, name, is_ready, STEP_TIMEOUT, "Ready after create")
            kube.patch(TEP, name, {"spec": {"autoscaling": {"minReplicas": 1, "maxReplicas": 2}}})
            stack.wait_for(
                ns,
                name,
                lambda o: is_ready(o) and o["status"]["autoscaling"]["maxReplicas"] == 2,
                STEP_TIMEOUT,
                "Ready after scaling",
            )
            kube.patch(TEP, name, {"spec": {"state": "Stopped"}})
            stack.wait_for(ns, name, lambda o: is_ready(o, "Stopped"), STEP_TIMEOUT, "Ready/Stopped")
            if position < len(cycles) - 1:
                kube.kubectl("delete", TEP, name, "--wait=false")
                stack.wait_gone(ns, name, STEP_TIMEOUT)
            with run.lock:
                run.cycles_done += 1
    except Exception as error:  # reported by the test, with the lane that failed
        run.errors.append(f"lane {lane}: {error}")


def _in_flight(calls: list[Call], method: str, kill_time: float) -> bool:
    """Whether the simulator was holding a call of `method` when the kill came."""
    return any(c.method == method and c.time <= kill_time < c.time + LATENCY[method] for c in calls)


@pytest.mark.timeout(180 + 40 * CYCLES)
def test_sigkill_at_random_points_leaves_one_endpoint_per_resource_and_no_orphan(
    fault_stack: StackFactory,
) -> None:
    seed = fault_seed()
    print(f"\nsigkill: seed {seed} (FAULT_SEED={seed} repeats the choices), {CYCLES} cycles")
    key = make_key("kill")
    stack = fault_stack(
        accounts={key: "acme"},
        operator_key=key,
        faults=[
            {"fault": "latency", "method": method, "path": "/v1/endpoints", "seconds": seconds}
            for method, seconds in LATENCY.items()
        ],
        seed=seed,
    )
    run = KillRun(stack, stack.namespace("kill"))
    rng = random.Random(seed)
    lanes = [
        threading.Thread(
            target=_lane, args=(run, lane, list(range(lane, CYCLES, LANES))), name=f"lane-{lane}"
        )
        for lane in range(min(LANES, CYCLES))
    ]
    killer = threading.Thread(target=_killer, args=(run, random.Random(rng.random())), name="killer")
    started = time.monotonic()
    for thread in [*lanes, killer]:
        thread.start()
    for thread in lanes:
        thread.join(timeout=CYCLES * 4 * STEP_TIMEOUT)
    run.done.set()
    killer.join(timeout=150)
    duration = time.monotonic() - started

    assert not run.errors, run.errors
    stack.operator.assert_running()  # the killer always starts it again
    assert run.cycles_done == CYCLES
    remaining = stack.wait_all(run.kube.namespace, is_ready, what="Ready at the end")
    stack.operator.wait_healthy()
    time.sleep(3)  # a few poll cycles of the last incarnation: it must not create or delete anything
    _check_no_duplicate(run)

    endpoints = stack.dedicated_endpoints()
    stats = stack.stats()
    posts = stats.posts()
    recorded = [obj["status"]["endpointId"] for obj in remaining]
    # Remote endpoints == resources: every remaining resource has its own, nothing else is left.
    assert sorted(e.id for e in endpoints) == sorted(recorded)
    assert len(set(recorded)) == len(recorded) == len(remaining) == min(LANES, CYCLES)
    assert sorted(e.display_name for e in endpoints) == sorted(
        f"{run.kube.namespace}/{obj['metadata']['name']}" for obj in remaining
    )
    assert run.violations == []
    # One POST per resource, ever: a create cut short by a kill was found again, not repeated.
    assert len(posts) == CYCLES, f"{len(posts)} POSTs for {CYCLES} resources"
    assert {c.status for c in posts} == {200}
    # Every cycle lived through kills: at least one per two cycles, however fast the machine.
    assert len(run.kill_times) >= CYCLES / 2, f"only {len(run.kill_times)} kills for {CYCLES} cycles"
    assert stack.operator.kills == len(run.kill_times)

    calls = stats.calls
    per_endpoint = stats.endpoint_calls()
    report(
        "sigkill",
        seed=seed,
        cycles=CYCLES,
        kills=len(run.kill_times),
        kills_while_post_in_flight=sum(_in_flight(calls, "POST", t) for t in run.kill_times),
        kills_while_patch_in_flight=sum(_in_flight(calls, "PATCH", t) for t in run.kill_times),
        kills_while_delete_in_flight=sum(_in_flight(calls, "DELETE", t) for t in run.kill_times),
        posts=len(posts),
        resources=CYCLES,
        duplicates=0,
        orphans=len(endpoints) - len(remaining),
        calls_total=len(calls),
        calls_per_resource=round(len(calls) / CYCLES, 1),
        endpoint_calls_max=max(per_endpoint.values()),
        patches=stats.count("PATCH", "/v1/endpoints/.*"),
        deletes=stats.count("DELETE", "/v1/endpoints/.*"),
        seconds=round(duration),
    )
    stack.assert_no_key_leaks()


IN_FLIGHT_CREATE = 8.0
"""Seconds the simulator holds the create in the two in-flight scenarios: far longer than a restart."""


def _kill_during_the_create(fault_stack: StackFactory, label: str) -> tuple[FaultStack, Kube]:
    """A resource whose create is held by the simulator; the operator is SIGKILLed 1 s into it."""
    key = make_key(label)
    stack = fault_stack(
        accounts={key: "acme"},
        operator_key=key,
        faults=[
            {"fault": "latency", "method": "POST", "path": "/v1/endpoints$", "seconds": IN_FLIGHT_CREATE}
        ],
    )
    kube = stack.namespace(label)
    kube.apply(endpoint_manifest("slow"))
    deadline = time.monotonic() + 60
    while not stack.stats().posts():
        assert time.monotonic() < deadline, "the operator never sent the create"
        time.sleep(0.1)
    time.sleep(1.0)
    stack.operator.kill()
    return stack, kube


def test_a_kill_while_the_create_is_in_flight_does_not_create_a_second_endpoint(
    fault_stack: StackFactory,
) -> None:
    """The widest window, on purpose: the operator dies 1 s into a create the simulator holds for 8 s
    and is back within seconds, long before the endpoint exists. It must wait for the create's outcome,
    not POST again."""
    stack, kube = _kill_during_the_create(fault_stack, "inflight")
    stack.operator.start()

    obj = stack.wait_for(kube.namespace, "slow", is_ready, timeout=120, what="Ready")

    time.sleep(10)  # long enough for any second create to have landed
    endpoints = stack.dedicated_endpoints()
    # The first POST completed on the server although its caller was dead: that endpoint is the one.
    assert [c.status for c in stack.stats().posts()] == [200]
    assert [e.id for e in endpoints] == [obj["status"]["endpointId"]]
    stack.assert_no_key_leaks()


def test_deleting_a_resource_whose_create_is_in_flight_leaves_no_orphan(fault_stack: StackFactory) -> None:
    """The resource is deleted while the operator is down and its create still held: the restarted
    operator must not let the resource go before the create's endpoint has shown up and been deleted."""
    stack, kube = _kill_during_the_create(fault_stack, "inflight-delete")
    kube.kubectl("delete", TEP, "slow", "--wait=false")
    stack.operator.start()

    stack.wait_gone(kube.namespace, "slow", timeout=150)
    time.sleep(IN_FLIGHT_CREATE)  # whatever was in flight has landed by now

    assert [c.status for c in stack.stats().posts()] == [200]
    assert stack.dedicated_endpoints() == []
    assert stack.stats().count("DELETE", "/v1/endpoints/.*") == 1
    stack.assert_no_key_leaks()
