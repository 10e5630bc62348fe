"""Kubernetes writes at scale on a real apiserver: a quiet resource is not written at all, however often
it is polled and resynced; and in a burst of new resources, where kopf's apiserver requests are bounded
(`startup.KOPF_REQUESTS_IN_FLIGHT`, far below the burst), no finalizer, Event or status write is lost
waiting for a slot."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.support.kube import Kube, condition, has_condition, wait_for
from tests.support.manifests import endpoint_manifest
from tests.support.operator_fixtures import OperatorEnv
from together_operator.startup import FINALIZER, KOPF_REQUESTS_IN_FLIGHT

pytestmark = pytest.mark.controlplane

BURST = 100


def test_a_quiet_resource_gets_no_write_through_polls_and_resync_reads(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    """First in this module, while the credential has one endpoint: its resync turn comes every
    --resync-interval (5 s here)."""
    kube.apply(endpoint_manifest("quiet"))
    ready = kube.wait_for("togetherendpoint", "quiet", has_condition("Ready"))
    endpoint_path = f"/v1/endpoints/{ready['status']['endpointId']}"

    def counts() -> tuple[int, int]:
        simulator = operator_env.simulator
        return (
            len(simulator.calls(method="GET", path="/v1/endpoints")),
            len(simulator.calls(method="GET", path=endpoint_path)),
        )

    def settled() -> dict[str, Any] | None:  # the last write of the create has landed
        obj = kube.get("togetherendpoint", "quiet")
        return obj if obj["status"].get("state") == "STARTED" else None

    before = wait_for(settled)
    events_before = kube.events("quiet")
    lists, reads = counts()

    wait_for(counts, lambda now: now[0] >= lists + 10 and now[1] >= reads + 2, timeout=120)

    after = kube.get("togetherendpoint", "quiet")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["status"]["lastSyncTime"] == before["status"]["lastSyncTime"]
    assert kube.events("quiet") == events_before


def test_every_resource_of_a_burst_gets_its_finalizer_its_event_and_ready(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    assert BURST > 4 * KOPF_REQUESTS_IN_FLIGHT  # the burst must queue for the bound to be tested
    names = [f"burst-{n}" for n in range(BURST)]
    manifests = {"apiVersion": "v1", "kind": "List", "items": [endpoint_manifest(name) for name in names]}
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifests))

    def ready_ones() -> list[dict[str, Any]] | None:
        items = json.loads(kube.kubectl("get", "togetherendpoints", "-o", "json").stdout)["items"]
        ready = [obj for obj in items if (condition(obj, "Ready") or {}).get("status") == "True"]
        return ready if len(ready) == BURST else None

    resources = wait_for(ready_ones, timeout=300, what=f"{BURST} Ready resources")

    assert all(FINALIZER in obj["metadata"].get("finalizers", []) for obj in resources)
    creating = {e["involvedObject"]["name"] for e in kube.events() if e["reason"] == "Creating"}
    assert creating == set(names)
    remote_names = {e.display_name for e in operator_env.simulator.endpoints()}
    assert {f"{kube.namespace}/{name}" for name in names} <= remote_names
