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
from tests.faults.harness import TEP, endpoint_manifest, install_crd, is_ready, make_key, report
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane

DOWNTIME = float(os.environ.get("FAULT_APISERVER_DOWNTIME", "8"))
"""Seconds kube-apiserver stays down (FAULT_APISERVER_DOWNTIME; the full run uses 90, past the point
where kopf gives up a watch connection and starts it over)."""


@pytest.fixture
def own_control_plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    with ControlPlane(bin_dir=control_plane.bin_dir) as cp:
        install_crd(cp)
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
    own_control_plane.start_apiserver()
    up_at = time.monotonic()

    # What drifted while the API server was down is put back, and status shows it.
    stack.wait_all(ns, is_ready, timeout=120, what="Ready after the restart")
    remote = {e.id: e for e in stack.dedicated_endpoints()}
    assert remote[before["ep-0"]].state == "STARTED"
    assert (
        remote[before["ep-1"]].autoscaling.min_replicas,
        remote[before["ep-1"]].autoscaling.max_replicas,
    ) == (
        1,
        1,
    )
    recovered_after = time.monotonic() - up_at
    # New work after the restart: the watch is live again (changes, a new resource, a deletion).
    kube.patch(TEP, "ep-2", {"spec": {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}})
    kube.apply(endpoint_manifest("ep-3"))
    kube.kubectl("delete", TEP, "ep-1", "--wait=false")
    stack.wait_gone(ns, "ep-1", timeout=120)
    stack.wait_for(
        ns, "ep-2", lambda o: is_ready(o) and o["status"]["autoscaling"]["maxReplicas"] == 3, timeout=120
    )
    final = stack.wait_all(ns, is_ready, timeout=120, what="Ready at the end")

    assert len(stack.operator.incarnations) == 1
    stack.operator.assert_running()
    assert sorted(e.id for e in stack.dedicated_endpoints()) == sorted(
        o["status"]["endpointId"] for o in final
    )
    assert len(stack.stats().posts()) == 4
    # Reconciles that failed while it was down were retried with backoff (2, 4, 8... s), not in a loop:
    # per resource at most 1 + log2(downtime) of them, plus one per wake by a remote change (3 at most).
    failed_reconciles = stack.operator.logs().count("failed; retrying in")
    down_seconds = up_at - down_at
    assert failed_reconciles <= 3 * (1 + math.log2(down_seconds) + 3), failed_reconciles
    report(
        "apiserver_restart",
        downtime_seconds=round(down_seconds, 1),
        recovered_seconds_after_restart=round(recovered_after, 1),
        failed_reconciles_logged=failed_reconciles,
        posts=len(stack.stats().posts()),
        resources=4,
        operator_restarts=len(stack.operator.incarnations) - 1,
    )
    stack.assert_no_key_leaks()
