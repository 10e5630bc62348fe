"""deploy/: the kustomize base behind `kubectl apply -k deploy/`, on the real API server, and kept equal
to what the Helm chart installs with its defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.tooling import (
    CRD_FILE,
    DEPLOY,
    Tools,
    apply_server_side,
    assert_restricted_pod_security_admits,
    documents,
    env_of,
    one,
    rules_by_scope,
)
from tests.support.controlplane import REPO_ROOT, ControlPlane

pytestmark = pytest.mark.controlplane


def _without_labels(pod_template: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = json.loads(json.dumps(pod_template))
    template["metadata"] = {}
    for container in template["spec"]["containers"]:
        container.pop("image")
    return template


def test_kubectl_kustomize_deploy_is_the_operator_and_nothing_else(tools: Tools) -> None:
    objects = tools.kustomize()

    assert sorted(o["kind"] for o in objects) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "Deployment",
        "Namespace",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ], "no samples (each would create a billed endpoint) and no Secret (a key is not for Git)"
    crds = sorted(
        (o for o in objects if o["kind"] == "CustomResourceDefinition"), key=lambda o: o["metadata"]["name"]
    )
    assert crds == [yaml.safe_load(p.read_text()) for p in sorted(CRD_FILE.parent.glob("*.together.ai.yaml"))]
    for obj in objects:
        if obj["kind"] in ("ServiceAccount", "Deployment", "Service", "Role", "RoleBinding"):
            assert obj["metadata"]["namespace"] == "together-operator"
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "together-operator:0.1.0"
    assert env_of(objects)["TOGETHER_API_KEY"] == {
        "secretKeyRef": {"name": "together-api-key", "key": "api-key"}
    }


def test_deploy_operator_is_the_chart_rendered(tools: Tools, tmp_path: Path) -> None:
    """deploy/operator/ is generated from the chart, so the two install paths cannot drift apart."""
    render = [sys.executable, str(REPO_ROOT / "hack" / "render_manifests.py"), "--out", str(tmp_path)]
    subprocess.run([*render, "--helm", str(tools.bin_dir / "helm")], check=True)

    fresh = {p.name: p.read_text() for p in sorted(tmp_path.glob("*.yaml"))}
    committed = {p.name: p.read_text() for p in sorted((DEPLOY / "operator").glob("*.yaml"))}
    assert sorted(fresh) == ["deployment.yaml", "rbac.yaml", "service.yaml", "serviceaccount.yaml"]
    assert committed == fresh, "the chart changed: run `make manifests`"
    for text in fresh.values():
        assert text.startswith("# Generated from charts/together-operator/templates/")
        assert "helm.sh/chart" not in text
        assert "managed-by" not in text, "kubectl, not Helm, manages what `kubectl apply -k` installs"


def test_deploy_grants_and_runs_what_the_charts_defaults_do(tools: Tools) -> None:
    """The two install paths must not drift apart: same permissions, same pod (labels and image aside)."""
    plain = tools.kustomize()
    chart = tools.render({"together": {"apiKey": {"existingSecret": "together-api-key"}}})

    assert rules_by_scope(plain) == rules_by_scope(chart)
    assert one(plain, "Deployment")["spec"]["strategy"] == one(chart, "Deployment")["spec"]["strategy"]
    plain_pod = _without_labels(one(plain, "Deployment")["spec"]["template"])
    chart_pod = _without_labels(one(chart, "Deployment")["spec"]["template"])
    assert plain_pod == chart_pod
    # The metrics Service: same ports, selecting the same pod, with the label a ServiceMonitor selects.
    plain_service, chart_service = one(plain, "Service"), one(chart, "Service")
    assert plain_service["spec"]["ports"] == chart_service["spec"]["ports"]
    assert plain_service["spec"]["type"] == chart_service["spec"]["type"] == "ClusterIP"
    pod_labels = one(plain, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert plain_service["spec"]["selector"].items() <= pod_labels.items()
    for service in (plain_service, chart_service):
        assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "metrics"


def test_the_credentials_template_is_the_secret_the_deployment_reads() -> None:
    (secret,) = documents((DEPLOY / "credentials" / "together-api-key.yaml").read_text())
    (deployment,) = documents((DEPLOY / "operator" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (api_key,) = [e for e in container["env"] if e["name"] == "TOGETHER_API_KEY"]

    ref = api_key["valueFrom"]["secretKeyRef"]
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == (ref["name"], "together-operator")
    assert ref["key"] in secret["stringData"]


def test_kubectl_apply_k_deploy_is_accepted_by_the_api_server(
    tools: Tools, control_plane: ControlPlane
) -> None:
    cp = control_plane
    manifests = tools.run("kubectl", "kustomize", str(DEPLOY)).stdout
    objects = documents(manifests)
    namespace_object = one(objects, "Namespace")
    in_namespace = "\n---\n".join(json.dumps(o) for o in objects if o["kind"] != "Namespace")

    # A server-side dry run stores nothing, so the objects inside the new namespace can only be tried
    # once it exists: the namespace first (dry run, then for real), as `kubectl apply` orders it too.
    dry_run_warnings = apply_server_side(cp, json.dumps(namespace_object), dry_run=True)
    apply_server_side(cp, json.dumps(namespace_object), dry_run=False)
    dry_run_warnings += apply_server_side(cp, in_namespace, dry_run=True)
    assert (
        "deployment" not in cp.kubectl("get", "deployments", "-n", "together-operator", "-o", "name").stdout
    )
    warnings = apply_server_side(cp, manifests, dry_run=False)
    # What the README tells users to run, client-side as they would, changes nothing after that.
    again = cp.kubectl("apply", "-k", str(DEPLOY))
    secret = cp.kubectl(
        "apply", "--dry-run=server", "-f", str(DEPLOY / "credentials" / "together-api-key.yaml")
    )

    assert "PodSecurity" not in dry_run_warnings + warnings + again.stderr
    for line in again.stdout.splitlines():
        assert line.endswith(("unchanged", "configured")), line
    assert "secret/together-api-key created (server dry run)" in secret.stdout
    namespace = json.loads(cp.kubectl("get", "namespace", "together-operator", "-o", "json").stdout)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    stored = json.loads(
        cp.kubectl("get", "deployment", "together-operator", "-n", "together-operator", "-o", "json").stdout
    )
    assert stored["spec"]["replicas"] == 1
    assert_restricted_pod_security_admits(cp, one(documents(manifests), "Deployment"))
