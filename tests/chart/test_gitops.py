"""GitOps: how Argo CD (deploy/gitops/argocd/health.lua) and Flux (kstatus) read TogetherEndpoints.

The objects in data/togetherendpoints/ were recorded from a real run of
test_rbac_lifecycle.py (`TOGETHER_RECORD_STATUSES=tests/chart/data/togetherendpoints pytest
tests/chart/test_rbac_lifecycle.py`): the operator on a real API server against the simulator, caught
while reconciling a new endpoint, once Ready, once stopped, and stalled on hardware the model is not
offered on. That test also checks the live objects the same way; these replay them without a cluster
and add the cases a run does not reach on its own (pause, deletion, a newer generation).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.tooling import DEPLOY, HEALTH_LUA, Tools, argocd_health, documents
from tests.support.controlplane import REPO_ROOT

RECORDED = Path(__file__).parent / "data" / "togetherendpoints"
GITOPS = DEPLOY / "gitops"


def recorded(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
    return obj


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [c for c in obj["status"]["conditions"] if c["type"] == kind]
    result: dict[str, Any] = found
    return result


@pytest.mark.parametrize(
    ("name", "argocd"),
    [
        ("reconciling", "Progressing"),
        ("ready", "Healthy"),
        ("stopped", "Suspended"),
        ("stalled", "Degraded"),
    ],
)
def test_argocd_health_of_recorded_statuses(name: str, argocd: str) -> None:
    obj = recorded(name)

    health = argocd_health(obj)

    assert health["status"] == argocd
    # Argo CD shows the message: it is the operator's, saying what is going on or what to do.
    shown = {"reconciling": "Reconciling", "ready": "Ready", "stopped": "Ready", "stalled": "Stalled"}
    assert health["message"] == condition(obj, shown[name])["message"]


def test_argocd_degraded_message_says_what_to_do() -> None:
    health = argocd_health(recorded("stalled"))

    assert "1x_nvidia_a100_80gb_sxm" in health["message"]
    assert "2x_nvidia_h100_80gb_sxm" in health["message"]  # the hardware offered instead


def test_argocd_ignores_conditions_of_an_older_generation() -> None:
    obj = recorded("ready")
    obj["metadata"]["generation"] += 1  # the spec changed; the operator has not looked yet

    assert argocd_health(obj)["status"] == "Progressing"


def test_argocd_progressing_before_the_operator_wrote_anything() -> None:
    obj = recorded("ready")
    del obj["status"]

    assert argocd_health(obj) == {
        "status": "Progressing",
        "message": "Waiting for the operator to report on this generation",
    }


def test_argocd_suspended_when_paused_even_if_stalled() -> None:
    obj = recorded("stalled")
    obj["metadata"]["annotations"]["together.ai/paused"] = "true"

    assert argocd_health(obj)["status"] == "Suspended"


def test_argocd_suspended_when_auto_stopped() -> None:
    obj = recorded("ready")
    condition(obj, "Ready")["reason"] = "AutoStopped"

    assert argocd_health(obj)["status"] == "Suspended"


def test_argocd_progressing_while_deleting() -> None:
    obj = recorded("ready")
    obj["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"

    assert argocd_health(obj)["status"] == "Progressing"


def test_argocd_config_map_snippet_carries_the_health_check_verbatim() -> None:
    (config_map,) = documents((GITOPS / "argocd" / "argocd-cm-health.yaml").read_text())

    assert config_map["metadata"]["name"] == "argocd-cm"
    script = config_map["data"]["resource.customizations.health.together.ai_TogetherEndpoint"]
    assert script == HEALTH_LUA.read_text()


def test_argocd_application_points_at_the_chart() -> None:
    operator_app = documents((GITOPS / "argocd" / "application.yaml").read_text())[0]

    assert (REPO_ROOT / operator_app["spec"]["source"]["path"] / "Chart.yaml").is_file()


@pytest.mark.controlplane
@pytest.mark.parametrize(
    ("name", "kstatus"),
    [("reconciling", "InProgress"), ("ready", "Current"), ("stopped", "Current"), ("stalled", "Failed")],
)
def test_kstatus_of_recorded_statuses(tools: Tools, name: str, kstatus: str) -> None:
    (verdict,) = tools.kstatus([recorded(name)])

    assert verdict["status"] == kstatus
    if kstatus == "Failed":
        assert verdict["message"] == condition(recorded(name), "Stalled")["message"]


@pytest.mark.controlplane
def test_kstatus_waits_for_the_operator_to_see_a_new_generation(tools: Tools) -> None:
    newer = copy.deepcopy(recorded("ready"))
    newer["metadata"]["generation"] += 1

    (verdict,) = tools.kstatus([newer])

    assert verdict["status"] == "InProgress"


@pytest.mark.controlplane
def test_flux_example_installs_deploy_and_checks_endpoint_health(tools: Tools) -> None:
    objects = documents((GITOPS / "flux" / "together-operator.yaml").read_text())
    kustomizations = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Kustomization"}
    operator, endpoints = kustomizations["together-operator"], kustomizations["ml-endpoints"]
    crd = yaml.safe_load((REPO_ROOT / "crds" / "togetherendpoints.together.ai.yaml").read_text())
    deploy_images = {
        c["image"]
        for o in tools.kustomize(REPO_ROOT / operator["spec"]["path"])
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    }

    assert operator["spec"]["prune"] is False, "pruning the CRD would delete every TogetherEndpoint"
    assert {i["name"] for i in operator["spec"]["images"]} == {img.split(":")[0] for img in deploy_images}
    assert endpoints["spec"]["dependsOn"] == [{"name": "together-operator"}]
    for check in endpoints["spec"]["healthChecks"]:
        assert check["apiVersion"] == f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
        assert check["kind"] == crd["spec"]["names"]["kind"]
