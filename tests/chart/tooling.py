"""Helpers for the chart, manifest and GitOps tests: helm, kubectl kustomize, kstatus and the Argo CD
health check, each run the way users and their tools run them."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import lupa.lua51  # type: ignore[import-untyped]  # no type information published
import yaml
from prometheus_client import generate_latest

from tests.support.controlplane import REPO_ROOT, ControlPlane, expected_k8s_version
from together_operator.metrics import OperatorMetrics
from together_operator.pricing import NamespaceCost
from together_operator.resource import Condition, ConditionType, TogetherEndpointStatus

CHART = REPO_ROOT / "charts" / "together-operator"
CRD_FILE = REPO_ROOT / "crds" / "togetherendpoints.together.ai.yaml"
DEPLOY = REPO_ROOT / "deploy"
HEALTH_LUA = DEPLOY / "gitops" / "argocd" / "health.lua"
DASHBOARD = CHART / "dashboards" / "together-operator.json"
# Kind and group of the Prometheus Operator's ServiceMonitor, for applying the chart's (a test stub).
SERVICEMONITOR_CRD_STUB = Path(__file__).parent / "data" / "servicemonitor-crd-stub.yaml"
# ... and of its PrometheusRule.
PROMETHEUSRULE_CRD_STUB = Path(__file__).parent / "data" / "prometheusrule-crd-stub.yaml"
METRIC_NAME = re.compile(r"together_operator_[a-z_]+")
# Our helm is built from its Go module without the release ldflags, so it would assume Kubernetes 1.20
# for `helm template`; name the version the tests run against instead.
KUBE_VERSION = expected_k8s_version()


class Tools:
    """The binaries hack/build-testbins.sh builds, run as subprocesses."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir

    def run(
        self, tool: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / tool), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc

    def helm_template(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = "together-operator",
        namespace: str = "together-operator",
        include_crds: bool = False,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        args = ["template", release, str(CHART), "-n", namespace, f"--kube-version={KUBE_VERSION}"]
        if include_crds:
            args.append("--include-crds")
        return self.run("helm", *args, "-f", "-", input=json.dumps(values or {}), check=check)

    def render(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """`helm template` with these values, as a list of objects."""
        return documents(self.helm_template(values, **kwargs).stdout)

    def kustomize(self, path: Path = DEPLOY) -> list[dict[str, Any]]:
        return documents(self.run("kubectl", "kustomize", str(path)).stdout)

    def kstatus(self, objects: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
        """kstatus' verdict per object: [{"kind", "namespace", "name", "status", "message"}]."""
        stream = "\n---\n".join(json.dumps(o) for o in objects)
        out = self.run("kstatus", input=stream).stdout
        return [json.loads(line) for line in out.splitlines()]


def documents(stream: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(stream) if d]


def by_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = by_kind(objects, kind)
    return found


def rules_by_scope(objects: Iterable[dict[str, Any]]) -> dict[str, set[tuple[str, str, str]]]:
    """(apiGroup, resource, verb) granted, keyed by "cluster" (ClusterRoles) or a Role's namespace."""
    granted: dict[str, set[tuple[str, str, str]]] = {}
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "Role"):
            continue
        scope = "cluster" if obj["kind"] == "ClusterRole" else obj["metadata"]["namespace"]
        for rule in obj.get("rules", []):
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        granted.setdefault(scope, set()).add((group, resource, verb))
    return granted


def argocd_health(obj: Mapping[str, Any], script: str | None = None) -> dict[str, str]:
    """Run the Argo CD health check on an object in Lua 5.1 (Argo CD's gopher-lua speaks 5.1), with
    the object as the global `obj`, as Argo CD does; returns {"status", "message"}."""
    lua = lupa.lua51.LuaRuntime()
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute(script if script is not None else HEALTH_LUA.read_text())
    return {key: str(value) for key, value in dict(result).items()}


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = found
    return result


def env_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects)["env"]}


def apply_server_side(cp: ControlPlane, manifests: str, *, dry_run: bool) -> str:
    """`kubectl apply --server-side`; returns stderr (warnings), failing on any error."""
    args = ["apply", "--server-side", "--field-manager=chart-tests", "--force-conflicts", "-f", "-"]
    if dry_run:
        args.append("--dry-run=server")
    return cp.kubectl(*args, input=manifests).stderr


def assert_restricted_pod_security_admits(cp: ControlPlane, deployment: dict[str, Any]) -> None:
    """The Deployment's pod, created (dry run) in its namespace labelled `enforce: restricted`: the
    PodSecurity admission plugin rejects any pod that breaks the restricted standard."""
    namespace = deployment["metadata"]["namespace"]
    spec = deployment["spec"]["template"]["spec"]
    # The ServiceAccount admission plugin rejects a pod whose ServiceAccount does not exist; with
    # `serviceAccount.create: false` the chart uses one the user brings, so bring it here.
    service_account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": spec.get("serviceAccountName", "default"), "namespace": namespace},
    }
    cp.kubectl(
        "apply", "--server-side", "--field-manager=chart-tests", "-f", "-", input=json.dumps(service_account)
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod-security-probe", "namespace": namespace},
        "spec": spec,
    }
    proc = cp.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod))
    assert "pod/pod-security-probe created (server dry run)" in proc.stdout
    assert "PodSecurity" not in proc.stderr


def operator_scrape() -> str:
    """The operator's /metrics text with one sample of every kind recorded."""
    metrics = OperatorMetrics()
    metrics.api_calls.labels("list_endpoints", "200").inc()
    metrics.api_call_seconds.labels("list_endpoints").observe(0.05)
    metrics.reconciles.labels("Ready").inc()
    metrics.poll_seconds.observe(0.2)
    metrics.status_patches.inc()
    status = TogetherEndpointStatus(
        state="STARTED",
        conditions=(
            Condition(type=ConditionType.READY, status="False", reason="Stalled"),
            Condition(type=ConditionType.STALLED, status="True", reason="ApiKeyRejected"),
        ),
    )
    metrics.watch_resources(lambda: [status], lambda: 1.5)
    metrics.watch_costs(
        lambda: [NamespaceCost("team-a", endpoints=1, running=1, committed_hourly=Decimal("6.72"))]
    )
    metrics.watch_budget_limits(lambda: [("team-a", "team", Decimal(50))])
    return generate_latest(metrics.registry).decode()


def exported_names(scrape: str) -> set[str]:
    """Sample names as they appear on the wire (counters with _total, histograms _bucket/_sum/_count)."""
    return {
        match.group(0)
        for line in scrape.splitlines()
        if line and not line.startswith("#")
        if (match := re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line))
    }


def json_nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every object in a JSON document, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from json_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from json_nodes(value)


def load_dashboard() -> dict[str, Any]:
    """The chart's Grafana dashboard (dashboards/together-operator.json)."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL the dashboard runs: panel targets and the template variables' queries."""
    exprs = [node["expr"] for node in json_nodes(dashboard["panels"]) if isinstance(node.get("expr"), str)]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs += [variable["definition"], variable["query"]["query"]]
    return exprs


def assert_schema_rejects(tools: Tools, values: dict[str, Any], complaint: str) -> None:
    """helm refuses to render `values`: the chart's values.schema.json names `complaint`."""
    proc = tools.helm_template(values, check=False)

    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert complaint in proc.stderr
