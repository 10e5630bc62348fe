"""The local control plane is a real Kubernetes API server with the controllers every cluster runs.

These tests use their own CRD (`widgets.test.together.ai`), not the product's, and show the behaviour the
operator relies on: CEL validation with the rule's message, watches, the status subresource, finalizers,
RBAC for ServiceAccount tokens, state that survives an apiserver restart, and what kube-controller-manager
does: a new namespace gets its `default` ServiceAccount and root CA, a deleted namespace is emptied and
goes away, and owned objects are garbage-collected with their owner.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.support.controlplane import ControlPlane, expected_k8s_version
from tests.support.kube import Kube, wait_for

pytestmark = pytest.mark.controlplane

GROUP, VERSION, PLURAL, KIND = "test.together.ai", "v1", "widgets", "Widget"
RULE_MESSAGE = "replicas must not exceed maxReplicas"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": KIND, "listKind": f"{KIND}List"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["replicas"],
                                "properties": {
                                    "replicas": {"type": "integer", "minimum": 0},
                                    "maxReplicas": {"type": "integer", "minimum": 0},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "!has(self.maxReplicas) || self.replicas <= self.maxReplicas",
                                        "message": RULE_MESSAGE,
                                    }
                                ],
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string"},
                                    "observedGeneration": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}

_Watch: Any = kubernetes.watch.Watch  # untyped in the client


class Widgets:
    """The widgets of one namespace, through the `kubernetes` client's CustomObjectsApi."""

    def __init__(self, api_client: kubernetes.client.ApiClient, namespace: str) -> None:
        self.api = kubernetes.client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def _args(self) -> tuple[str, str, str, str]:
        return GROUP, VERSION, self.namespace, PLURAL

    def create(self, name: str, spec: dict[str, Any], finalizers: list[str] | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name}
        if finalizers:
            metadata["finalizers"] = finalizers
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}
        return self._dict(self.api.create_namespaced_custom_object(*self._args(), body))

    def get(self, name: str) -> dict[str, Any]:
        return self._dict(self.api.get_namespaced_custom_object(*self._args(), name))

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._dict(self.api.patch_namespaced_custom_object(*self._args(), name, body))

    def patch_status(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._dict(self.api.patch_namespaced_custom_object_status(*self._args(), name, body))

    def delete(self, name: str) -> None:
        self.api.delete_namespaced_custom_object(*self._args(), name)

    def collection_version(self) -> str:
        listing = self._dict(self.api.list_namespaced_custom_object(*self._args()))
        return str(listing["metadata"]["resourceVersion"])

    def events_since(self, resource_version: str, count: int) -> list[tuple[str, dict[str, Any]]]:
        """The first `count` watch events after `resource_version`, as (type, object)."""
        watch = _Watch()
        events: list[tuple[str, dict[str, Any]]] = []
        for event in watch.stream(
            self.api.list_namespaced_custom_object,
            *self._args(),
            resource_version=resource_version,
            timeout_seconds=20,
        ):
            events.append((event["type"], event["object"]))
            if len(events) == count:
                watch.stop()
        return events

    @staticmethod
    def _dict(obj: object) -> dict[str, Any]:
        assert isinstance(obj, dict)
        return obj


def rejection_message(excinfo: pytest.ExceptionInfo[ApiException]) -> str:
    body = json.loads(excinfo.value.body or "{}")
    assert body["kind"] == "Status"
    return str(body["message"])


@pytest.fixture(scope="module")
def widget_crd(control_plane: ControlPlane) -> str:
    name = WIDGET_CRD["metadata"]["name"]
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(WIDGET_CRD))
    control_plane.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    return str(name)


@pytest.fixture
def widgets(kube_api: kubernetes.client.ApiClient, namespace: str, widget_crd: str) -> Widgets:
    return Widgets(kube_api, namespace)


# --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    bool(os.environ.get("KUBEBUILDER_ASSETS")), reason="KUBEBUILDER_ASSETS binaries have their own version"
)
def test_server_and_kubectl_report_the_version_they_were_built_as(
    control_plane: ControlPlane, kube_api: kubernetes.client.ApiClient
) -> None:
    expected = expected_k8s_version()
    major, minor, _ = expected.split(".")

    server = kubernetes.client.VersionApi(kube_api).get_code()
    client = json.loads(control_plane.kubectl("version", "--client", "-o", "json").stdout)["clientVersion"]

    assert (server.git_version, server.major, server.minor) == (f"v{expected}", major, minor)
    assert (client["gitVersion"], client["major"], client["minor"]) == (f"v{expected}", major, minor)
    assert server.git_tree_state == client["gitTreeState"] == "clean"


def test_a_new_namespace_is_active_and_gets_its_default_service_account_and_root_ca(
    control_plane: ControlPlane, namespace: str
) -> None:
    kube = Kube(control_plane, namespace)

    service_account = kube.wait_for("serviceaccount", "default", lambda _: True)
    root_ca = kube.wait_for("configmap", "kube-root-ca.crt", lambda _: True)
    configmaps = json.loads(kube.kubectl("get", "configmaps", "-o", "json").stdout)

    assert kube.get("namespace", namespace)["status"]["phase"] == "Active"
    assert service_account["metadata"]["namespace"] == namespace
    assert root_ca["data"]["ca.crt"] == control_plane.ca_cert.read_text()
    assert [c["metadata"]["name"] for c in configmaps["items"]] == ["kube-root-ca.crt"]


def test_a_deleted_namespace_is_emptied_and_goes_away(control_plane: ControlPlane, namespace: str) -> None:
    kube = Kube(control_plane, namespace)
    kube.kubectl("create", "configmap", "settings", "--from-literal=colour=blue")

    kube.kubectl("delete", "namespace", namespace, "--wait=false")
    kube.wait_gone("namespace", namespace)

    assert kube.find("configmap", "settings") is None
    assert namespace not in control_plane.kubectl("get", "namespaces", "-o", "name").stdout.split()


def test_an_owned_object_is_garbage_collected_with_its_owner(
    control_plane: ControlPlane, namespace: str
) -> None:
    kube = Kube(control_plane, namespace)
    kube.kubectl("create", "configmap", "owner")
    owner = kube.get("configmap", "owner")
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
            ],
        },
    }
    kube.apply(owned)
    kube.kubectl("create", "configmap", "bystander")

    kube.kubectl("delete", "configmap", "owner")
    kube.wait_gone("configmap", "owned")

    assert kube.find("configmap", "owner") is None
    assert kube.find("configmap", "bystander") is not None


def test_cel_rule_rejects_an_invalid_object_with_its_message(widgets: Widgets) -> None:
    with pytest.raises(ApiException) as excinfo:
        widgets.create("too-many", {"replicas": 5, "maxReplicas": 2})

    assert excinfo.value.status == 422
    assert RULE_MESSAGE in rejection_message(excinfo)
    assert not widgets.exists("too-many")


def test_cel_rule_accepts_a_valid_object_and_guards_its_updates(widgets: Widgets) -> None:
    created = widgets.create("fine", {"replicas": 2, "maxReplicas": 3})

    with pytest.raises(ApiException) as excinfo:
        widgets.patch("fine", {"spec": {"replicas": 4}})

    assert created["spec"] == {"replicas": 2, "maxReplicas": 3}
    assert excinfo.value.status == 422
    assert RULE_MESSAGE in rejection_message(excinfo)
    assert widgets.get("fine")["spec"] == {"replicas": 2, "maxReplicas": 3}


def test_kubectl_shows_the_rule_message_too(
    control_plane: ControlPlane, namespace: str, widget_crd: str
) -> None:
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": "too-many", "namespace": namespace},
        "spec": {"replicas": 3, "maxReplicas": 1},
    }

    result = control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)

    assert result.returncode != 0
    assert RULE_MESSAGE in result.stderr


def test_watch_sees_an_object_added_then_modified(widgets: Widgets) -> None:
    since = widgets.collection_version()
    widgets.create("watched", {"replicas": 1})
    widgets.patch("watched", {"spec": {"replicas": 2}})

    events = widgets.events_since(since, count=2)

    assert [(kind, obj["metadata"]["name"], obj["spec"]["replicas"]) for kind, obj in events] == [
        ("ADDED", "watched", 1),
        ("MODIFIED", "watched", 2),
    ]


def test_status_changes_only_through_the_status_subresource(widgets: Widgets) -> None:
    created = widgets.create("subresource", {"replicas": 1})

    after_status = widgets.patch_status(
        "subresource", {"status": {"phase": "Ready", "observedGeneration": 1}}
    )
    after_main = widgets.patch("subresource", {"spec": {"replicas": 2}, "status": {"phase": "Overwritten"}})

    assert "status" not in created
    assert after_status["status"] == {"phase": "Ready", "observedGeneration": 1}
    assert after_status["metadata"]["generation"] == created["metadata"]["generation"] == 1
    assert after_main["spec"]["replicas"] == 2
    assert after_main["metadata"]["generation"] == 2
    assert after_main["status"] == {"phase": "Ready", "observedGeneration": 1}


def test_finalizer_holds_deletion_until_released(widgets: Widgets) -> None:
    finalizer = "test.together.ai/hold"
    since = widgets.collection_version()
    widgets.create("held", {"replicas": 1}, finalizers=[finalizer])

    widgets.delete("held")
    held = widgets.get("held")
    widgets.patch("held", {"metadata": {"finalizers": []}})

    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == [finalizer]
    assert not widgets.exists("held")
    events = widgets.events_since(since, count=3)
    assert [(kind, "deletionTimestamp" in obj["metadata"]) for kind, obj in events] == [
        ("ADDED", False),
        ("MODIFIED", True),
        ("DELETED", True),
    ]


def test_service_account_token_authenticates_and_rbac_applies(
    control_plane: ControlPlane, namespace: str, widget_crd: str, tmp_path: Path
) -> None:
    control_plane.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    token = control_plane.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    kubeconfig = control_plane.write_token_kubeconfig(tmp_path / "reader.kubeconfig", token, namespace)

    def as_reader(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(control_plane.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    whoami = json.loads(as_reader("auth", "whoami", "-o", "json").stdout)
    before = as_reader("get", PLURAL)
    control_plane.kubectl(
        "create", "role", "read-widgets", "-n", namespace, f"--resource={PLURAL}.{GROUP}", "--verb=list"
    )
    control_plane.kubectl(
        "create",
        "rolebinding",
        "reader",
        "-n",
        namespace,
        "--role=read-widgets",
        f"--serviceaccount={namespace}:reader",
    )

    def listed() -> subprocess.CompletedProcess[str] | None:
        result = as_reader("get", PLURAL)
        return result if result.returncode == 0 else None

    after = wait_for(listed, timeout=15, what="a list as the reader", interval=0.1)

    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"
    assert before.returncode != 0
    assert "forbidden" in before.stderr.lower()
    assert "No resources found" in after.stderr


def test_objects_survive_an_apiserver_restart(
    control_plane: ControlPlane, widgets: Widgets, kube_api: kubernetes.client.ApiClient
) -> None:
    widgets.create("durable", {"replicas": 3})
    widgets.patch_status("durable", {"status": {"phase": "Ready"}})

    control_plane.stop_apiserver()
    while_down = control_plane.kubectl("get", "namespaces", check=False, timeout=30)
    control_plane.start_apiserver()

    assert while_down.returncode != 0
    assert "refused" in while_down.stderr
    restored = widgets.get("durable")
    assert (restored["spec"], restored["status"]) == ({"replicas": 3}, {"phase": "Ready"})
