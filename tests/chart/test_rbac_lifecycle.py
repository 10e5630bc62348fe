"""The chart's RBAC, proven by use: the operator runs with the token of the ServiceAccount the chart
installed (TokenRequest API), with the environment the chart's Deployment gives it, against the
simulator, through a full lifecycle (create, scale, stop, a stalled spec, a ConfigMap edited by hand,
delete). The API server runs with an audit log, which shows

- sufficient: not one request of the operator was refused (and its log says no "Forbidden");
- minimal: every permission the chart grants was used in the run, and `kubectl auth can-i` with the
  same token is refused for Secrets outside the watched namespaces and for unrelated kinds and verbs.

The same run checks the GitOps view of the statuses it goes through: kstatus (the library Flux uses)
and the Argo CD health check on the live objects. With TOGETHER_RECORD_STATUSES=DIR it also writes
those objects to DIR; tests/chart/data/ holds such a recording, which test_gitops.py replays.

It has its own API server (a few seconds to start): the audit log must hold this operator's requests
only, and its operator may watch all namespaces without meeting other tests' resources.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chart.tooling import Tools, argocd_health, one, rules_by_scope
from tests.support.controlplane import ControlPlane, free_port
from tests.support.kube import Kube, has_condition
from tests.support.manifests import HARDWARE, MODEL, endpoint_manifest
from tests.support.operator import OperatorProcess
from tests.support.simulator_fixtures import SimulatorFactory
from together_operator.together import CreateEndpointRequest, TogetherClient
from together_operator.together.models import Autoscaling
from together_simulator import RunningSimulator

pytestmark = pytest.mark.controlplane

TEAM_KEY = "sim-key-team"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


@dataclass
class AuditedControlPlane:
    control_plane: ControlPlane
    audit_log: Path

    def requests_of(self, user: str) -> list[dict[str, Any]]:
        events = [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]
        return [e for e in events if e["user"]["username"] == user]


@pytest.fixture(scope="module")
def audited(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditedControlPlane]:
    folder = tmp_path_factory.mktemp("audit")
    (folder / "policy.yaml").write_text(AUDIT_POLICY)
    audit_log = folder / "audit.log"
    args = [f"--audit-policy-file={folder / 'policy.yaml'}", f"--audit-log-path={audit_log}"]
    with ControlPlane(bin_dir=tools.bin_dir, apiserver_args=args) as cp:
        yield AuditedControlPlane(cp, audit_log)


def _deployment_environment(cp: ControlPlane, deployment: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The environment and arguments the kubelet would give the operator container: plain values as
    they are, secretKeyRefs resolved from the API server."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        secret = json.loads(
            cp.kubectl(
                "get", "secret", ref["name"], "-n", deployment["metadata"]["namespace"], "-o", "json"
            ).stdout
        )
        env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
    return env, list(container.get("args", []))


def _record(name: str, obj: dict[str, Any]) -> None:
    folder = os.environ.get("TOGETHER_RECORD_STATUSES")
    if not folder:
        return
    recorded = json.loads(json.dumps(obj))
    recorded["metadata"].pop("managedFields", None)
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"{name}.json").write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


def _gitops_view(tools: Tools, obj: dict[str, Any]) -> tuple[str, str]:
    (verdict,) = tools.kstatus([obj])
    return verdict["status"], argocd_health(obj)["status"]


def _used_permissions(requests: list[dict[str, Any]]) -> dict[str, set[tuple[str, str, str]]]:
    """(apiGroup, resource, verb) the requests used, keyed by namespace, and all of them as "cluster"."""
    used: dict[str, set[tuple[str, str, str]]] = {"cluster": set()}
    for request in requests:
        ref = request.get("objectRef")
        if not ref:
            continue  # discovery (/api, /apis): allowed to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        permission = (ref.get("apiGroup", ""), resource, request["verb"])
        used["cluster"].add(permission)
        if ref.get("namespace"):
            used.setdefault(ref["namespace"], set()).add(permission)
    return used


@pytest.mark.parametrize("watch", ["all-namespaces", "one-namespace"])
def test_the_operator_runs_a_full_lifecycle_with_exactly_the_charts_permissions(
    tools: Tools,
    audited: AuditedControlPlane,
    simulator_factory: SimulatorFactory,
    tmp_path: Path,
    watch: str,
) -> None:
    cp = audited.control_plane
    suffix = secrets.token_hex(3)
    release_namespace, team, outsider = f"ops-{suffix}", f"team-{suffix}", f"other-{suffix}"
    for namespace in (release_namespace, team, outsider):
        cp.kubectl("create", "namespace", namespace)
    simulator: RunningSimulator = simulator_factory(
        accounts={"sim-key": "devuser", TEAM_KEY: "team"}, transition_seconds=1.0
    )
    health_port = free_port()
    values = {
        "watchNamespaces": [team] if watch == "one-namespace" else [],
        "together": {"baseUrl": simulator.base_url, "apiKey": {"value": simulator.api_key}},
        "operator": {
            "pollInterval": 1,
            "transitionPollInterval": 0.3,
            "resyncInterval": 3,
            "stalledRetryInterval": 2,
            "logFormat": "plain",
            "healthPort": health_port,
        },
        "metrics": {"enabled": False},
    }
    objects = tools.render(values, release="together", namespace=release_namespace, include_crds=True)
    cp.kubectl("apply", "--server-side", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))
    cp.kubectl("wait", "--for=condition=Established", "crd/togetherendpoints.together.ai")
    cp.kubectl("wait", "--for=condition=Established", "crd/togetherbudgets.together.ai")
    service_account = one(objects, "ServiceAccount")["metadata"]["name"]
    token = cp.kubectl("create", "token", service_account, "-n", release_namespace).stdout.strip()
    kubeconfig = cp.write_token_kubeconfig(tmp_path / "operator.kubeconfig", token, release_namespace)
    user = f"system:serviceaccount:{release_namespace}:{service_account}"

    env, args = _deployment_environment(cp, one(objects, "Deployment"))
    assert env["TOGETHER_API_KEY"] == simulator.api_key  # from the Secret the chart made of the value
    operator = OperatorProcess(
        tmp_path / "operator.log",
        {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TOGETHER_", "KUBECONFIG"))},
            **env,
            "TOGETHER_OPERATOR_HEALTH_HOST": "127.0.0.1",
            "KUBECONFIG": str(kubeconfig),
        },
        args,
        health_port=health_port,
    )
    kube = Kube(cp, team)
    try:
        operator.start()
        # The chart's probes call /healthz on the health port: it must answer once the operator runs.
        operator.wait_healthy()
        _lifecycle(tools, kube, simulator)
    finally:
        operator.stop()

    log = operator.logs()
    refused = [r for r in audited.requests_of(user) if r.get("responseStatus", {}).get("code") == 403]
    assert refused == [], f"the chart's permissions were not enough:\n{json.dumps(refused, indent=1)}"
    for sign in ("Forbidden", "Not enough permissions", " 403"):
        assert sign not in log, f"{sign!r} in the operator log:\n{log[-4000:]}"

    granted = rules_by_scope(objects)
    used = _used_permissions(audited.requests_of(user))
    for scope, permissions in granted.items():
        unused = permissions - used.get(scope, set())
        assert unused == set(), f"granted in {scope} but never used by the operator: {sorted(unused)}"

    _assert_refused(cp, tmp_path, kubeconfig, watch, team=team, outsider=outsider)


def _lifecycle(tools: Tools, kube: Kube, simulator: RunningSimulator) -> None:
    kube.kubectl(
        "create", "secret", "generic", "team-key", f"--from-literal=api-key={TEAM_KEY}"
    )  # fmt: skip
    kube.apply(
        endpoint_manifest(
            "chat", apiKeySecretRef={"name": "team-key"}, connection={"configMapName": "chat-connection"}
        )
    )

    reconciling = kube.wait_for("tep", "chat", has_condition("Reconciling"))
    _record("reconciling", reconciling)
    assert _gitops_view(tools, reconciling) == ("InProgress", "Progressing")

    ready = kube.wait_for("tep", "chat", has_condition("Ready", reason="Started"))
    _record("ready", ready)
    assert _gitops_view(tools, ready) == ("Current", "Healthy")
    endpoint_id = ready["status"]["endpointId"]
    (remote,) = [e for e in simulator.endpoints() if e.id == endpoint_id]
    assert remote.owner == "team", "created with the key from the team's Secret"
    config_map = kube.wait_for("configmap", "chat-connection", lambda c: "TOGETHER_MODEL" in c["data"])
    assert config_map["data"]["TOGETHER_ENDPOINT_ID"] == endpoint_id
    # A team budget is read, and its status says what the team commits (2x H100: 6.72 USD/h).
    budget = {"apiVersion": "together.ai/v1alpha1", "kind": "TogetherBudget", "metadata": {"name": "team"}}
    kube.kubectl("apply", "-f", "-", input=json.dumps({**budget, "spec": {"maxHourlyCost": "100"}}))
    kube.wait_for("tbudget", "team", lambda b: (b.get("status") or {}).get("committedHourlyCost") == "6.72")

    # A hand edit of the published ConfigMap is put back.
    kube.kubectl(
        "patch", "configmap", "chat-connection", "--type=merge", "-p", '{"data":{"TOGETHER_MODEL":"x"}}'
    )
    kube.wait_for("configmap", "chat-connection", lambda c: c["data"]["TOGETHER_MODEL"] != "x")

    kube.kubectl("patch", "tep", "chat", "--type=merge", "-p", '{"spec":{"autoscaling":{"maxReplicas":2}}}')
    kube.wait_for(
        "tep", "chat", lambda o: has_condition("Ready")(o) and o["status"]["autoscaling"]["maxReplicas"] == 2
    )
    (remote,) = [e for e in simulator.endpoints() if e.id == endpoint_id]
    assert (remote.autoscaling.min_replicas, remote.autoscaling.max_replicas) == (1, 2)

    kube.kubectl("patch", "tep", "chat", "--type=merge", "-p", '{"spec":{"state":"Stopped"}}')
    stopped = kube.wait_for("tep", "chat", has_condition("Ready", reason="Stopped"))
    _record("stopped", stopped)
    assert _gitops_view(tools, stopped) == ("Current", "Suspended")

    kube.apply(endpoint_manifest("wrong-hw", hardware="1x_nvidia_a100_80gb_sxm"))
    stalled = kube.wait_for("tep", "wrong-hw", has_condition("Stalled", reason="HardwareNotSupported"))
    _record("stalled", stalled)
    assert _gitops_view(tools, stalled) == ("Failed", "Degraded")

    _adoptions(kube, simulator)

    kube.kubectl("delete", "tep", "chat", "wrong-hw", "--wait=false")
    kube.wait_gone("tep", "chat")
    kube.wait_gone("tep", "wrong-hw")
    assert [e for e in simulator.endpoints() if e.id == endpoint_id] == []
    assert not kube.exists("configmap", "chat-connection")
    reasons = {e["reason"] for e in kube.events()}
    assert {"Creating", "Deleted", "HardwareNotSupported"} <= reasons


def _adoptions(kube: Kube, simulator: RunningSimulator) -> None:
    """A hand-made endpoint named by two resources with the team's key (one claims it, the other finds
    the claim taken) and by one with the operator-wide key in a namespace that does not allow it."""

    async def create_by_hand(api_key: str) -> str:
        async with TogetherClient(simulator.base_url, api_key) as client:
            request = CreateEndpointRequest(
                model=MODEL, hardware=HARDWARE, autoscaling=Autoscaling(min_replicas=1, max_replicas=1)
            )
            return (await client.create_endpoint(request)).id

    endpoint_id = asyncio.run(create_by_hand(TEAM_KEY))
    for name in ("adopt-a", "adopt-b"):
        kube.apply(endpoint_manifest(name, endpointId=endpoint_id, apiKeySecretRef={"name": "team-key"}))
    shared = asyncio.run(create_by_hand(simulator.api_key))
    kube.apply(endpoint_manifest("adopt-shared-key", endpointId=shared))
    kube.wait_for("tep", "adopt-shared-key", has_condition("Stalled", reason="AdoptionRefused"))
    settled = [
        kube.wait_for("tep", name, lambda o: has_condition("Ready")(o) or has_condition("Stalled")(o))
        for name in ("adopt-a", "adopt-b")
    ]
    assert sorted(bool(o["status"].get("endpointId")) for o in settled) == [False, True]

    kube.kubectl("delete", "tep", "adopt-a", "adopt-b", "adopt-shared-key")
    remaining = {e.id for e in simulator.endpoints()}
    assert endpoint_id not in remaining, "deleted with the resource that adopted it"
    assert shared in remaining, "never deleted by a resource whose adoption was refused"


def _assert_refused(
    cp: ControlPlane, tmp_path: Path, kubeconfig: Path, watch: str, *, team: str, outsider: str
) -> None:
    """`kubectl auth can-i` with the operator's own token."""

    def can(*args: str) -> bool:
        proc = cp.kubectl("auth", "can-i", *args, f"--kubeconfig={kubeconfig}", check=False)
        return proc.stdout.strip() == "yes"

    assert can("get", "secrets", "-n", team)
    assert can("patch", "togetherendpoints.together.ai/status", "-n", team)
    refused = [
        ("list", "secrets", "-n", team),
        ("watch", "secrets", "-n", team),
        ("create", "secrets", "-n", team),
        ("update", "secrets", "-n", team),
        ("delete", "togetherendpoints.together.ai", "-n", team),
        ("create", "togetherendpoints.together.ai", "-n", team),
        ("update", "togetherendpoints.together.ai", "-n", team),
        ("list", "configmaps", "-n", team),
        ("get", "pods", "-n", team),
        ("create", "deployments.apps", "-n", team),
        ("create", "serviceaccounts/token", "-n", team),
        ("update", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "serviceaccounts"),
        ("get", "nodes"),
    ]
    if watch == "one-namespace":
        refused += [
            ("get", "secrets", "-n", outsider),
            ("list", "togetherendpoints.together.ai", "-n", outsider),
            ("list", "togetherendpoints.together.ai", "--all-namespaces"),
            ("create", "events", "-n", outsider),
            ("get", "configmaps", "-n", outsider),
        ]
    allowed = [" ".join(check) for check in refused if can(*check)]
    assert allowed == [], "the operator's ServiceAccount may do more than it needs"
