"""The Helm chart: what it renders for the default values and for each switch, that its schema and
documentation hold, and that every rendered manifest is accepted by the real API server (server-side
dry-run, then for real), that `helm install`, `helm upgrade` and `helm uninstall` work against it, and
that uninstalling leaves the CRD and every TogetherEndpoint in place.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import re
import secrets
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.tooling import (
    CHART,
    CRD_FILE,
    Tools,
    apply_server_side,
    assert_restricted_pod_security_admits,
    assert_schema_rejects,
    by_kind,
    container,
    documents,
    env_of,
    one,
    rules_by_scope,
)
from tests.support.controlplane import REPO_ROOT, ControlPlane
from together_operator.settings import add_run_arguments, config_from_args

pytestmark = pytest.mark.controlplane

# (apiGroup, resource, verb) the operator uses in the namespaces it watches (README, "Permissions").
NAMESPACED_RULES = {
    ("together.ai", "togetherendpoints", "list"),
    ("together.ai", "togetherendpoints", "watch"),
    ("together.ai", "togetherendpoints", "patch"),
    ("together.ai", "togetherendpoints/status", "patch"),
    ("together.ai", "togetherbudgets", "list"),
    ("together.ai", "togetherbudgets", "watch"),
    ("together.ai", "togetherbudgets/status", "patch"),
    ("", "events", "create"),
    ("", "secrets", "get"),
    ("", "secrets", "patch"),
    ("", "configmaps", "get"),
    ("", "configmaps", "create"),
    ("", "configmaps", "patch"),
    ("", "configmaps", "delete"),
}
CRD_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
}
NAMESPACE_RULES = {("", "namespaces", "list"), ("", "namespaces", "watch")}
# Reading a namespace's adoption label, and the claims of adopted endpoints in the release namespace.
NAMESPACE_LABEL_RULE = ("", "namespaces", "get")
CLAIM_RULES = {
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "delete"),
}

# Each switch of values.yaml, rendered, linted and applied.
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "existing-secret": {"together": {"apiKey": {"existingSecret": "together-key", "secretKey": "token"}}},
    "key-from-value": {"together": {"apiKey": {"value": "sk-from-values"}}},
    "scheduling-and-image": {
        "image": {
            "repository": "registry.example.com/ml/together-operator",
            "tag": "1.2.3",
            "digest": "sha256:" + "ab" * 32,
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"prometheus.io/scrape": "true"},
        "podLabels": {"team": "ml-platform"},
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}],
    },
    "tuned-operator": {
        "together": {
            "baseUrl": "http://together-simulator.sim:8090/v1",
            "defaultApi": "v2",
            "v2InferenceUrl": "http://together-simulator.sim:8090/v1",
        },
        "operator": {
            "pollInterval": 10,
            "transitionPollInterval": 2,
            "resyncInterval": 300,
            "resyncBudget": 0.5,
            "stalledRetryInterval": 30,
            "transientRetryInterval": 4,
            "rateLimit": 0,
            "maxConcurrentCalls": 4,
            "logFormat": "plain",
            "verbose": True,
            "healthPort": 8181,
        },
        "metrics": {"enabled": False},
    },
    "bring-your-own-serviceaccount": {"serviceAccount": {"create": False, "name": "ops-sa"}},
    "no-rbac": {"rbac": {"create": False}},
    # Namespaces named here are made fresh on the API server (as watchNamespaces are).
    "monitoring": {
        "metrics": {"port": 9191},
        "serviceMonitor": {
            "enabled": True,
            "interval": "15s",
            "scrapeTimeout": "5s",
            "labels": {"release": "kube-prometheus-stack"},
            "namespace": "monitoring",
        },
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "namespace": "monitoring",
        },
        "grafanaDashboard": {
            "enabled": True,
            "labels": {"grafana_dashboard": "1", "team": "ml-platform"},
            "annotations": {"grafana_folder": "Operators"},
            "namespace": "grafana",
        },
    },
}


# --------------------------------------------------------------------------------------------------
# what the chart is made of


def test_the_chart_ships_the_crds_byte_for_byte() -> None:
    shipped = sorted((CHART / "crds").iterdir())
    sources = sorted(CRD_FILE.parent.glob("*.together.ai.yaml"))
    assert [p.name for p in shipped] == [p.name for p in sources]
    assert CRD_FILE in sources
    for copy, source in zip(shipped, sources, strict=True):
        assert copy.read_bytes() == source.read_bytes(), (
            f"edit crds/, then: cp crds/{source.name} {CHART}/crds/"
        )


def test_the_readme_is_generated_from_the_documented_values(tmp_path: Path) -> None:
    fresh = tmp_path / "README.md"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "hack" / "chart_readme.py"), "--out", str(fresh)], check=True
    )
    committed = (CHART / "README.md").read_text()
    assert committed == fresh.read_text(), "values.yaml or Chart.yaml changed: run `make manifests`"
    assert '| `together.apiKey.existingSecret` | string | `""` | Name of an existing Secret' in committed
    assert '| `resources` | object | `{"requests": {"cpu": "50m"' in committed


def test_chart_metadata_names_its_source_maintainers_and_crd() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    crd = yaml.safe_load(CRD_FILE.read_text())
    minimal = yaml.safe_load((REPO_ROOT / "deploy" / "samples" / "togetherendpoint-minimal.yaml").read_text())
    annotations = chart["annotations"]

    assert chart["sources"]
    assert chart["home"] in chart["sources"]
    assert [m["name"] for m in chart["maintainers"]] == ["together-operator maintainers"]
    (listed,) = yaml.safe_load(annotations["artifacthub.io/crds"])
    assert (listed["kind"], listed["version"], listed["name"]) == (
        crd["spec"]["names"]["kind"],
        crd["spec"]["versions"][0]["name"],
        crd["metadata"]["name"],
    )
    assert yaml.safe_load(annotations["artifacthub.io/crdsExamples"]) == [minimal]
    assert (
        annotations["artifacthub.io/license"]
        == tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["license"]
    )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_helm_lint_is_clean(tools: Tools, scenario: str, tmp_path: Path) -> None:
    values = tmp_path / "values.json"
    values.write_text(json.dumps(SCENARIOS[scenario]))
    proc = tools.run("helm", "lint", "--strict", str(CHART), "-f", str(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_default_deployment_is_one_restricted_replica_probed_on_healthz(tools: Tools) -> None:
    objects = tools.render()
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    main = container(objects)

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert main["image"] == "together-operator:0.1.0"  # the chart's appVersion
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert main[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert main["resources"]["requests"]
    assert main["resources"]["limits"]["memory"]
    # The read-only root filesystem leaves /tmp as the only place to write.
    assert main["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["emptyDir"]
    env = env_of(objects)
    assert env["TOGETHER_OPERATOR_NAMESPACES"] == ""
    assert env["TOGETHER_BASE_URL"] == "https://api.together.ai/v1"
    assert env["TOGETHER_OPERATOR_DEFAULT_API"] == "v1"
    assert env["TOGETHER_OPERATOR_V2_INFERENCE_URL"] == "https://api-inference.together.ai/v1"
    assert env["TOGETHER_OPERATOR_HEALTH_PORT"] == "8080"
    assert env["TOGETHER_OPERATOR_LOG_FORMAT"] == "json"
    assert "TOGETHER_API_KEY" not in env, "no key configured: resources name their own Secrets"
    assert by_kind(objects, "Secret") == []


def test_watching_all_namespaces_grants_only_the_operators_verbs_cluster_wide(tools: Tools) -> None:
    objects = tools.render()

    assert rules_by_scope(objects) == {
        "cluster": CRD_RULES | NAMESPACED_RULES | {NAMESPACE_LABEL_RULE},
        "together-operator": CLAIM_RULES,
    }
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "together-operator", "namespace": "together-operator"}
    ]
    assert [r["metadata"]["name"] for r in by_kind(objects, "Role")] == ["together-operator-claims"]


def test_a_namespace_list_grants_roles_in_those_namespaces_only(tools: Tools) -> None:
    objects = tools.render(SCENARIOS["namespaced"])

    assert rules_by_scope(objects) == {
        "cluster": CRD_RULES | NAMESPACE_RULES | {NAMESPACE_LABEL_RULE},
        "together-operator": CLAIM_RULES,
        "team-a": NAMESPACED_RULES,
        "team-b": NAMESPACED_RULES,
    }
    bindings = by_kind(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b", "together-operator"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == "together-operator"
    assert env_of(objects)["TOGETHER_OPERATOR_NAMESPACES"] == "team-a,team-b"


def test_the_api_key_comes_from_an_existing_secret(tools: Tools) -> None:
    objects = tools.render(SCENARIOS["existing-secret"])

    assert env_of(objects)["TOGETHER_API_KEY"] == {"secretKeyRef": {"name": "together-key", "key": "token"}}
    assert by_kind(objects, "Secret") == [], "the chart must not create or own the user's Secret"


def test_the_api_key_from_a_value_becomes_a_secret_of_the_release(tools: Tools) -> None:
    objects = tools.render(SCENARIOS["key-from-value"])

    secret = one(objects, "Secret")
    assert secret["metadata"]["name"] == "together-operator-api-key"
    assert base64.b64decode(secret["data"]["api-key"]).decode() == "sk-from-values"
    assert env_of(objects)["TOGETHER_API_KEY"] == {
        "secretKeyRef": {"name": "together-operator-api-key", "key": "api-key"}
    }
    assert "sk-from-values" not in json.dumps(one(objects, "Deployment"))


def test_scheduling_image_and_extra_settings_reach_the_pod(tools: Tools) -> None:
    values = SCENARIOS["scheduling-and-image"]
    objects = tools.render(values)
    template = one(objects, "Deployment")["spec"]["template"]
    pod = template["spec"]
    main = container(objects)

    assert main["image"] == f"registry.example.com/ml/together-operator:1.2.3@{values['image']['digest']}"
    assert main["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert template["metadata"]["labels"]["team"] == "ml-platform"
    assert env_of(objects)["HTTPS_PROXY"] == "http://proxy.internal:3128"


def test_operator_settings_become_its_environment(tools: Tools) -> None:
    objects = tools.render(SCENARIOS["tuned-operator"])
    env = env_of(objects)
    main = container(objects)

    assert {k: v for k, v in env.items() if k.startswith("TOGETHER_")} == {
        "TOGETHER_OPERATOR_NAMESPACES": "",
        "TOGETHER_BASE_URL": "http://together-simulator.sim:8090/v1",
        "TOGETHER_OPERATOR_DEFAULT_API": "v2",
        "TOGETHER_OPERATOR_V2_INFERENCE_URL": "http://together-simulator.sim:8090/v1",
        "TOGETHER_OPERATOR_POLL_INTERVAL": "10",
        "TOGETHER_OPERATOR_TRANSITION_POLL_INTERVAL": "2",
        "TOGETHER_OPERATOR_RESYNC_INTERVAL": "300",
        "TOGETHER_OPERATOR_RESYNC_BUDGET": "0.5",
        "TOGETHER_OPERATOR_STALLED_RETRY_INTERVAL": "30",
        "TOGETHER_OPERATOR_TRANSIENT_RETRY_INTERVAL": "4",
        "TOGETHER_OPERATOR_RATE_LIMIT": "0",
        "TOGETHER_OPERATOR_MAX_CONCURRENT_CALLS": "4",
        "TOGETHER_OPERATOR_LOG_FORMAT": "plain",
        "TOGETHER_OPERATOR_HEALTH_PORT": "8181",
        "TOGETHER_OPERATOR_METRICS_PORT": "0",
        "TOGETHER_OPERATOR_CLAIMS_NAMESPACE": "together-operator",
    }
    assert main["args"] == ["--verbose"]
    assert main["ports"] == [{"name": "health", "containerPort": 8181, "protocol": "TCP"}]


def test_the_operator_reads_every_setting_the_chart_gives_it(
    tools: Tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Deployment passes settings as environment variables, which the operator would silently
    ignore if a name drifted: parse them as `together-operator run` does."""
    for name, value in env_of(tools.render(SCENARIOS["tuned-operator"])).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TOGETHER_API_KEY", "sk-test")
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)

    config = config_from_args(parser.parse_args(["--verbose"]))

    assert dataclasses.asdict(config) == {
        "namespaces": (),
        "base_url": "http://together-simulator.sim:8090/v1",
        "api_key": "sk-test",
        "poll_interval": 10.0,
        "transition_poll_interval": 2.0,
        "resync_interval": 300.0,
        "resync_budget": 0.5,
        "stalled_retry_interval": 30.0,
        "transient_retry_interval": 4.0,
        "rate_limit": 0.0,
        "max_concurrent_calls": 4,
        "health_host": "0.0.0.0",
        "health_port": 8181,
        "metrics_host": "0.0.0.0",
        "metrics_port": 0,
        "log_format": "plain",
        "verbose": True,
        "default_api": "v2",
        "v2_inference_url": "http://together-simulator.sim:8090/v1",
        "claims_namespace": "together-operator",
    }
    namespaced = env_of(tools.render(SCENARIOS["namespaced"]))
    monkeypatch.setenv("TOGETHER_OPERATOR_NAMESPACES", namespaced["TOGETHER_OPERATOR_NAMESPACES"])
    assert config_from_args(parser.parse_args([])).namespaces == ("team-a", "team-b")


def test_an_existing_serviceaccount_and_no_rbac(tools: Tools) -> None:
    own_sa = tools.render(SCENARIOS["bring-your-own-serviceaccount"])
    no_rbac = tools.render(SCENARIOS["no-rbac"])

    assert by_kind(own_sa, "ServiceAccount") == []
    assert one(own_sa, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops-sa"
    assert one(own_sa, "ClusterRoleBinding")["subjects"][0]["name"] == "ops-sa"
    assert [o["kind"] for o in no_rbac] == ["ServiceAccount", "Service", "Deployment"]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"watchNamespaces": ["op-*"]}, "watchNamespaces"),
        ({"operator": {"logFormat": "xml"}}, "logFormat"),
        ({"operator": {"pollInterval": 0}}, "pollInterval"),
        ({"image": {"digest": "latest"}}, "digest"),
        ({"together": {"baseUrl": "api.together.ai"}}, "baseUrl"),
        ({"together": {"defaultApi": "v3"}}, "defaultApi"),
        ({"together": {"v2InferenceUrl": "api-inference.together.ai/v1"}}, "v2InferenceUrl"),
        ({"replicaCount": 2}, "replicaCount"),
    ],
    ids=[
        "namespace-glob",
        "log-format",
        "zero-interval",
        "digest",
        "base-url",
        "default-api",
        "v2-inference-url",
        "unknown-value",
    ],
)
def test_the_schema_rejects_wrong_values_naming_them(
    tools: Tools, values: dict[str, Any], complaint: str
) -> None:
    assert_schema_rejects(tools, values, complaint)


def test_every_value_is_documented_and_typed() -> None:
    """Each leaf of values.yaml has a comment (on it or on the block holding it), and the schema knows
    every key (helm lint already validates values.yaml against it)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    documented_blocks: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        while documented_blocks and documented_blocks[-1][0] >= indent:
            documented_blocks.pop()
        previous = lines[number - 1].strip() if number else ""
        documented = previous.startswith("#") or any(d for _, d in documented_blocks)
        if rest and not rest.startswith("#"):
            if not documented:
                undocumented.append(key)
        else:
            documented_blocks.append((indent, documented))
    assert undocumented == []

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def unknown(values: dict[str, Any], schema: dict[str, Any], path: str) -> Iterator[str]:
        properties = schema.get("properties")
        if properties is None:
            return  # a free-form object (resources, affinity, ...), typed by Kubernetes itself
        for key, value in values.items():
            if key not in properties:
                yield f"{path}{key}"
            elif isinstance(value, dict):
                yield from unknown(value, properties[key], f"{path}{key}.")

    assert list(unknown(values, schema, "")) == []


# --------------------------------------------------------------------------------------------------
# on the real API server


def _fresh_namespace(cp: ControlPlane, prefix: str, **labels: str) -> str:
    name = f"{prefix}-{secrets.token_hex(4)}"
    cp.kubectl("create", "namespace", name)
    if labels:
        cp.kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
    return name


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
@pytest.mark.usefixtures("together_crd", "servicemonitor_crd_installed", "prometheusrule_crd_installed")
def test_rendered_manifests_are_accepted_by_the_api_server(
    tools: Tools, control_plane: ControlPlane, scenario: str
) -> None:
    cp = control_plane
    release_namespace = _fresh_namespace(cp, "chart", **{"pod-security.kubernetes.io/enforce": "restricted"})
    values = json.loads(json.dumps(SCENARIOS[scenario]))
    if "watchNamespaces" in values:
        values["watchNamespaces"] = [_fresh_namespace(cp, n) for n in values["watchNamespaces"]]
    for part in ("serviceMonitor", "prometheusRule", "grafanaDashboard"):
        if values.get(part, {}).get("namespace"):
            values[part]["namespace"] = _fresh_namespace(cp, values[part]["namespace"])
    release = f"r{secrets.token_hex(3)}"  # ClusterRoles are cluster-wide: one name per test
    with_crd = tools.helm_template(values, release=release, namespace=release_namespace, include_crds=True)
    manifests = tools.helm_template(values, release=release, namespace=release_namespace).stdout
    objects = documents(manifests)

    dry_run_warnings = apply_server_side(cp, with_crd.stdout, dry_run=True)
    assert not cp.kubectl("get", "deployments", "-n", release_namespace, "-o", "name").stdout.strip(), (
        "a dry run must store nothing"
    )
    # The CRD is applied for real by the session's fixtures (from crds/, which the chart's copy equals)
    # and by test_rbac_lifecycle on its own API server; here it would only race other tests' fixtures.
    warnings = apply_server_side(cp, manifests, dry_run=False)

    assert "PodSecurity" not in dry_run_warnings + warnings
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        args = ["get", obj["kind"], obj["metadata"]["name"], "-o", "json"]
        stored = json.loads(cp.kubectl(*args, *(["-n", namespace] if namespace else [])).stdout)
        assert stored["metadata"]["uid"]
    assert_restricted_pod_security_admits(cp, one(objects, "Deployment"))


@pytest.fixture
def helm_release(tools: Tools, control_plane: ControlPlane) -> Iterator[tuple[str, str]]:
    """A release name and namespace for `helm install`; uninstalled afterwards if a test left it."""
    release, namespace = f"rel-{secrets.token_hex(3)}", _fresh_namespace(control_plane, "helm")
    yield release, namespace
    tools.run(
        "helm", "uninstall", release, "-n", namespace, f"--kubeconfig={control_plane.kubeconfig}", check=False
    )


def test_helm_install_upgrade_and_uninstall_keep_crd_and_endpoints(
    tools: Tools, control_plane: ControlPlane, helm_release: tuple[str, str]
) -> None:
    cp, (release, namespace) = control_plane, helm_release
    kubeconfig = f"--kubeconfig={cp.kubeconfig}"
    team = _fresh_namespace(cp, "team")

    installed = tools.run(
        "helm", "install", release, str(CHART), "-n", namespace, kubeconfig,
        "--set", "together.apiKey.value=sk-test",
    )  # fmt: skip

    # NOTES.txt tells the user what to do next.
    assert f"kubectl -n {namespace} rollout status deployment/{release}-together-operator" in installed.stdout
    assert "watching all namespaces" in installed.stdout
    assert "never deletes TogetherEndpoints" in installed.stdout
    assert (
        f"/metrics on Service {namespace}/{release}-together-operator-metrics, port 9090" in installed.stdout
    )
    assert cp.kubectl("get", "clusterrole", f"{release}-together-operator").returncode == 0
    endpoint = {
        "apiVersion": "together.ai/v1alpha1",
        "kind": "TogetherEndpoint",
        "metadata": {"name": "kept", "namespace": team},
        "spec": {"model": "mistralai/Mixtral-8x7B-Instruct-v0.1", "hardware": "2x_nvidia_h100_80gb_sxm"},
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(endpoint))

    upgraded = tools.run(
        "helm", "upgrade", release, str(CHART), "-n", namespace, kubeconfig,
        "--reuse-values", "--set", f"watchNamespaces={{{team}}}",
    )  # fmt: skip

    assert f"watching the namespaces {team}" in upgraded.stdout
    role = json.loads(
        cp.kubectl("get", "role", f"{release}-together-operator", "-n", team, "-o", "json").stdout
    )
    assert rules_by_scope([role]) == {team: NAMESPACED_RULES}

    tools.run("helm", "uninstall", release, "-n", namespace, kubeconfig)

    gone = cp.kubectl("get", "deployment", f"{release}-together-operator", "-n", namespace, check=False)
    assert "NotFound" in gone.stderr
    assert cp.kubectl("get", "crd", "togetherendpoints.together.ai", "-o", "name").stdout.strip()
    assert cp.kubectl("get", "tep", "kept", "-n", team, "-o", "name").stdout.strip() == (
        "togetherendpoint.together.ai/kept"
    )
