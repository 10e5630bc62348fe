"""`together-operator cost` against the real API server: it sums what the TogetherEndpoints' status
says (status.pricing, written by the operator) per namespace, through the kube API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane
from together_operator.cli import main

pytestmark = [pytest.mark.controlplane, pytest.mark.usefixtures("together_crd")]


def _endpoint(cp: ControlPlane, namespace: str, name: str, status: dict[str, Any]) -> None:
    manifest = {
        "apiVersion": "together.ai/v1alpha1",
        "kind": "TogetherEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": "mistralai/Mixtral-8x7B-Instruct-v0.1", "hardware": "2x_nvidia_h100_80gb_sxm"},
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    cp.kubectl(
        "patch",
        "togetherendpoint",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def _priced(state: str, max_hourly: str) -> dict[str, Any]:
    pricing = {"perReplicaHour": "6.72", "minHourly": "6.72", "maxHourly": max_hourly, "hourlyRange": ""}
    return {"state": state, "pricing": pricing}


def test_cost_sums_the_committed_spend_of_a_namespace(
    control_plane: ControlPlane, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _endpoint(control_plane, namespace, "chat", _priced("STARTED", "13.44"))
    _endpoint(control_plane, namespace, "batch", _priced("STARTING", "6.72"))
    _endpoint(control_plane, namespace, "idle", _priced("STOPPED", "26.88"))
    _endpoint(control_plane, namespace, "new", {})
    kubeconfig = str(control_plane.kubeconfig)

    assert main(["cost", "--kubeconfig", kubeconfig, "-n", namespace, "-o", "json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["cost", "--kubeconfig", kubeconfig, "-n", namespace]) == 0
    as_table = capsys.readouterr().out.splitlines()

    assert as_json == [{"namespace": namespace, "endpoints": 4, "running": 2, "committedHourly": "20.16"}]
    assert as_table[0].split() == ["NAMESPACE", "ENDPOINTS", "RUNNING", "COMMITTED", "$/H"]
    assert as_table[1].split() == [namespace, "4", "2", "20.16"]


def test_cost_without_a_namespace_covers_every_namespace(
    control_plane: ControlPlane, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _endpoint(control_plane, namespace, "chat", _priced("STARTED", "1.5"))

    assert main(["cost", "--kubeconfig", str(control_plane.kubeconfig), "-o", "json"]) == 0

    rows = json.loads(capsys.readouterr().out)
    assert {"namespace": namespace, "endpoints": 1, "running": 1, "committedHourly": "1.5"} in rows
