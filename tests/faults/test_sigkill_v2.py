"""The operator is killed with SIGKILL at random points and started again, over and over, while v2
resources go through create -> rollout (a hardware change) -> delete, and v1 resources through
create -> migration to v2 -> delete. Whatever it was doing when it died, no endpoint or deployment is
created twice, a rollout never has a third deployment, nothing is left behind after a delete, and every
resource ends Ready on v2 with one endpoint and one deployment.

The simulator holds every v2 change for a while before answering, which widens the windows that
matter (a create sent but unanswered; traffic moved but the old deployment not yet stopped).

Cycles: FAULT_V2_CYCLES per kind (default 2, for CI; `FAULT_V2_CYCLES=10` for a longer run). The
random seed is printed; FAULT_SEED=<seed> repeats a run's choices (kill timings still depend on the
machine).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.conftest import StackFactory
from tests.faults.harness import (
    TEP,
    KillRun,
    fault_seed,
    is_ready,
    kill_repeatedly,
    make_key,
    report,
)
from tests.simulator.v2_helpers import V2
from tests.support.manifests import endpoint_manifest

pytestmark = pytest.mark.controlplane

CYCLES = int(os.environ.get("FAULT_V2_CYCLES", "2"))
"""Cycles of each kind: v2 create + rollout, and v1 create + migration."""
LATENCY = {"POST": 1.5, "PATCH": 0.5, "DELETE": 0.5}
"""Seconds the simulator holds each v2 change before answering."""
LIFETIME = (0.2, 3.0)
STEP_TIMEOUT = 180.0
ROLLED_HARDWARE = "4xnvidia-h100-80gb"
V2_ENDPOINTS = r"/v2/projects/[^/]+/endpoints"
V2_DEPLOYMENTS = rf"{V2_ENDPOINTS}/[^/]+/deployments"


def _check_no_third_deployment(run: KillRun) -> None:
    per_endpoint = Counter(d.endpoint_id for d in run.stack.simulator.v2_deployments())
    crowded = {endpoint: n for endpoint, n in per_endpoint.items() if n > 2}
    if crowded:
        run.violations.append(crowded)


def _killer(run: KillRun, rng: random.Random) -> None:
    try:
        kill_repeatedly(
            run.stack.operator,
            rng,
            LIFETIME,
            run.done,
            run.kill_times,
            lambda: _check_no_third_deployment(run),
        )
    except Exception as error:  # reported by the test
        run.errors.append(f"killer: {error}")
        run.done.set()


def _on_v2(obj: dict[str, Any], deployment_other_than: str | None = None) -> bool:
    """Ready on v2, no rollout or migration under way (and with `deployment_other_than`, rolled out)."""
    status = obj.get("status") or {}
    return (
        is_ready(obj, "Started")
        and status.get("api") == "v2"
        and status.get("state") == "READY"
        and not status.get("rollout")
        and status.get("deploymentId") not in (None, deployment_other_than)
    )


def _rollout_cycle(run: KillRun, name: str) -> None:
    """A v2 resource is created, then its hardware changes: a new deployment behind the same name."""
    kube, ns = run.kube, run.kube.namespace
    kube.apply(endpoint_manifest(name, api="v2"))
    created = run.stack.wait_for(ns, name, _on_v2, STEP_TIMEOUT, "Ready on v2")
    kube.patch(TEP, name, {"spec": {"hardware": ROLLED_HARDWARE}})
    old = created["status"]["deploymentId"]
    run.stack.wait_for(ns, name, lambda o: _on_v2(o, old), STEP_TIMEOUT, "rolled out")


def _migration_cycle(run: KillRun, name: str) -> None:
    """A v1 resource is created, then moved to v2."""
    kube, ns = run.kube, run.kube.namespace
    kube.apply(endpoint_manifest(name, api="v1"))
    run.stack.wait_for(ns, name, lambda o: is_ready(o, "Started"), STEP_TIMEOUT, "Ready on v1")
    kube.patch(TEP, name, {"spec": {"api": "v2"}})
    run.stack.wait_for(ns, name, _on_v2, STEP_TIMEOUT, "migrated")


def _lane(run: KillRun, prefix: str, cycle: Callable[[KillRun, str], None]) -> None:
    """CYCLES cycles one after the other; each resource but the last is deleted at the end of its cycle."""
    try:
        for index in range(CYCLES):
            name = f"{prefix}{index:03d}"
            cycle(run, name)
            if index < CYCLES - 1:
                run.kube.kubectl("delete", TEP, name, "--wait=false")
                run.stack.wait_gone(run.kube.namespace, name, STEP_TIMEOUT)
            with run.lock:
                run.cycles_done += 1
    except Exception as error:  # reported by the test, with the lane that failed
        run.errors.append(f"lane {prefix}: {error}")


def _succeeded(run: KillRun, method: str, path: str) -> int:
    return sum(
        1
        for c in run.stack.stats().calls
        if c.method == method and re.fullmatch(path, c.path) and c.status == 200
    )


@pytest.mark.timeout(240 + 120 * CYCLES)
def test_sigkill_during_v2_creates_rollouts_and_migrations_creates_nothing_twice_and_leaves_nothing(
    fault_stack: StackFactory,
) -> None:
    seed = fault_seed()
    print(f"\nsigkill v2: seed {seed} (FAULT_SEED={seed} repeats the choices), {CYCLES} cycles of each kind")
    key = make_key("kill-v2")
    stack = fault_stack(
        accounts={key: "acme"},
        operator_key=key,
        faults=[
            {"fault": "latency", "method": method, "path": f"{V2_ENDPOINTS}.*", "seconds": seconds}
            for method, seconds in LATENCY.items()
        ],
        seed=seed,
    )
    run = KillRun(stack, stack.namespace("kill-v2"))
    rng = random.Random(seed)
    lanes = [
        threading.Thread(target=_lane, args=(run, "r", _rollout_cycle), name="lane-rollout"),
        threading.Thread(target=_lane, args=(run, "m", _migration_cycle), name="lane-migration"),
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
    stack.operator.assert_running()
    assert run.cycles_done == 2 * CYCLES
    remaining = stack.wait_all(run.kube.namespace, _on_v2, what="Ready on v2 at the end")
    stack.operator.wait_healthy()
    time.sleep(3)  # a few poll cycles of the last incarnation: it must not create or delete anything
    _check_no_third_deployment(run)

    v2 = V2(stack.simulator, key)
    try:
        listed = v2.ok("GET", "/endpoints")["data"]
    finally:
        v2.close()
    deployments = stack.simulator.v2_deployments()
    # Remote endpoints == resources: each remaining resource has its endpoint and one deployment of it.
    assert sorted(e["id"] for e in listed) == sorted(o["status"]["endpointId"] for o in remaining)
    assert sorted((d.endpoint_id, d.id) for d in deployments) == sorted(
        (o["status"]["endpointId"], o["status"]["deploymentId"]) for o in remaining
    )
    assert {d.hardware for d in deployments if d.endpoint_id == _status_of(remaining, "r")["endpointId"]} == {
        ROLLED_HARDWARE
    }
    assert len(remaining) == 2
    assert run.violations == [], "a rollout never has a third deployment"
    # Every v1 endpoint was deleted: by its migration, or with its resource.
    assert stack.dedicated_endpoints() == []
    # Each create succeeded once per resource: one a kill cut short was read back by name, not repeated.
    assert _succeeded(run, "POST", V2_ENDPOINTS) == 2 * CYCLES
    assert _succeeded(run, "POST", V2_DEPLOYMENTS) == 2 * CYCLES + CYCLES, "rollouts: 2 each; migrations: 1"
    assert _succeeded(run, "POST", "/v1/endpoints") == CYCLES
    assert len(run.kill_times) >= CYCLES, f"only {len(run.kill_times)} kills for {2 * CYCLES} cycles"

    calls = stack.stats().calls
    report(
        "sigkill-v2",
        seed=seed,
        cycles=2 * CYCLES,
        kills=len(run.kill_times),
        endpoint_posts=sum(1 for c in calls if c.method == "POST" and re.fullmatch(V2_ENDPOINTS, c.path)),
        deployment_posts=sum(1 for c in calls if c.method == "POST" and re.fullmatch(V2_DEPLOYMENTS, c.path)),
        calls_total=len(calls),
        seconds=round(duration),
    )
    stack.assert_no_key_leaks()


def _status_of(resources: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    (status,) = [o["status"] for o in resources if o["metadata"]["name"].startswith(prefix)]
    found: dict[str, Any] = status
    return found
