"""kube-apiserver goes away under the running operator and comes back (etcd and its data stay): the
operator keeps running, reconnects by itself, and goes on reconciling, including what changed at
Together while it could not write status. This scenario has a control plane of its own: stopping the
session's would break every other test.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator

import pytest

from tests.faults.conftest import StackFactory
from tests.faults.harness import TEP, FaultStack, is_ready, make_key, report
from tests.support.controlplane import ControlPlane
from tests.support.kube import install_crd
from tests.support.manifests import endpoint_manifest

pytestmark = pytest.mark.controlplane

DOWNTIME = float(os.environ.get("FAULT_APISERVER_DOWNTIME", "8"))
"""Seconds kube-apiserver stays down (FAULT_APISERVER_DOWNTIME; the full run uses 90, past the point
where kopf gives up a watch connection and starts it over)."""


@pytest.fixture
def own_control_plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    with ControlPlane(bin_dir=control_plane.bin_dir) as cp:
        install_crd(cp.kubectl)
        yield cp


@pytest.mark.timeout(240 + DOWNTIME)
def test_the_operator_reconnects_after_the_api_server_restarts_and_keeps_reconciling(
    fault_stack: StackFactory, own_control_plane: ControlPlane
) -> None:
    key = make_key("restart")
    stack = fault_stack(accounts={key: "acme"}, operator_key=key, control_plane=own_control_plane)
    kube = stack.namespace("restart")
    ns = kube.namespace
    for i in range(3):
        kube.apply(endpoint_manifest(f"ep-{i}"))
    before = {o["metadata"]["name"]: o["status"]["endpointId"] for o in stack.wait_all(ns, is_ready)}

    own_control_plane.stop_apiserver()
    down_at = time.monotonic()
    # While the operator cannot write status, the endpoints change at Together.
    stack.simulator.out_of_band(before["ep-0"], "stop")
    stack.simulator.out_of_band(before["ep-1"], "scale", min_replicas=2, max_replicas=4)
    time.sleep(DOWNTIME)
    stack.operator.assert_running()
    corrected_while_down = _drift_corrected(stack, before)
    own_control_plane.start_apiserver()
    up_at = time.monotonic()

    # New work after the restart: the watches are live again (a change, a new resource, a deletion).
    kube.patch(TEP, "ep-2", {"spec": {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}})
    stack.wait_for(
        ns, "ep-2", lambda o: is_ready(o) and o["status"]["autoscaling"]["maxReplicas"] == 3, timeout=120
    )
    first_change_seconds = time.monotonic() - up_at
    # What drifted at Together while the API server was down is put back (by now at the latest).
    deadline = time.monotonic() + 60
    while not _drift_corrected(stack, before):
        assert time.monotonic() < deadline, stack.dedicated_endpoints()
        time.sleep(0.5)
    kube.apply(endpoint_manifest("ep-3"))
    kube.kubectl("delete", TEP, "ep-1", "--wait=false")
    stack.wait_gone(ns, "ep-1", timeout=120)
    final = stack.wait_all(ns, is_ready, timeout=120, what="Ready at the end")

    assert len(stack.operator.incarnations) == 1
    stack.operator.assert_running()
    remote = {e.id: e for e in stack.dedicated_endpoints()}
    assert sorted(remote) == sorted(o["status"]["endpointId"] for o in final)
    assert {o["status"]["state"] for o in final} == {remote[i].state for i in remote} == {"STARTED"}
    assert len(stack.stats().posts()) == 4
    # Reconciles that failed while it was down were retried with backoff (2, 4, 8... s), not in a loop:
    # per resource at most 1 + log2(downtime) of them, plus one per wake by a remote change (3 at most).
    failed_reconciles = stack.operator.logs().count("failed; retrying in")
    down_seconds = up_at - down_at
    assert failed_reconciles <= 3 * (1 + math.log2(down_seconds) + 3), failed_reconciles
    report(
        "apiserver_restart",
        downtime_seconds=round(down_seconds, 1),
        drift_corrected_while_down=corrected_while_down,
        first_change_ready_seconds_after_restart=round(first_change_seconds, 1),
        failed_reconciles_logged=failed_reconciles,
        posts=len(stack.stats().posts()),
        resources=4,
        operator_restarts=len(stack.operator.incarnations) - 1,
    )
    stack.assert_no_key_leaks()


def _drift_corrected(stack: FaultStack, before: dict[str, str]) -> bool:
    """ep-0 (stopped out of band) runs again and ep-1 (rescaled) is back at 1..1."""
    remote = {e.id: e for e in stack.dedicated_endpoints()}
    scaled = remote[before["ep-1"]].autoscaling
    return remote[before["ep-0"]].state in ("STARTING", "STARTED") and (
        scaled.min_replicas,
        scaled.max_replicas,
    ) == (1, 1)
