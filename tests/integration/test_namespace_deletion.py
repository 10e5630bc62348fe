"""Deleting a namespace with TogetherEndpoints in it, on a control plane whose controller manager
deletes namespaces as any cluster does (issue 11 item 6): the namespace deletes its Secrets at once, so
a Secret named by apiKeySecretRef carries the in-use finalizer `together.ai/secret-in-use` while a
resource needs its key. The namespace must finish, and the endpoints must be deleted at Together."""

from __future__ import annotations

import pytest

from tests.integration.test_operator_lifecycle import TEP, create_ready
from tests.integration.test_operator_v2 import ENDPOINTS, ready_with, v2_manifest
from tests.simulator.v2_helpers import V2
from tests.support.kube import Kube
from tests.support.manifests import secret_manifest
from tests.support.operator_fixtures import SECOND_KEY, OperatorEnv
from together_operator.secret_guard import SECRET_IN_USE_FINALIZER

pytestmark = pytest.mark.controlplane


def secret_finalizers(kube: Kube, name: str) -> list[str]:
    return list(kube.get("secret", name)["metadata"].get("finalizers") or [])


def test_a_deleted_namespace_finishes_and_the_endpoints_of_its_resources_are_deleted(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    kube.apply(secret_manifest("team-key", SECOND_KEY))
    with_secret = create_ready(operator_env, kube, "with-secret", apiKeySecretRef={"name": "team-key"})
    with_operator_key = create_ready(operator_env, kube, "with-operator-key")
    endpoint_ids = {with_secret["status"]["endpointId"], with_operator_key["status"]["endpointId"]}
    assert endpoint_ids <= {e.id for e in operator_env.simulator.endpoints()}
    assert SECRET_IN_USE_FINALIZER in secret_finalizers(kube, "team-key")

    kube.cp.kubectl("delete", "namespace", kube.namespace, "--wait=false")

    kube.wait_gone("namespace", kube.namespace, timeout=120)
    assert endpoint_ids & {e.id for e in operator_env.simulator.endpoints()} == set()


def test_the_secret_loses_the_finalizer_with_the_last_resource_that_needs_it(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    kube.apply(secret_manifest("team-key", SECOND_KEY))
    for name in ("first", "second"):
        create_ready(operator_env, kube, name, apiKeySecretRef={"name": "team-key"})

    kube.kubectl("delete", TEP, "first")
    assert SECRET_IN_USE_FINALIZER in secret_finalizers(kube, "team-key")  # "second" still needs it

    kube.kubectl("delete", TEP, "second")
    assert SECRET_IN_USE_FINALIZER not in secret_finalizers(kube, "team-key")


def test_a_deleted_namespace_with_v2_resources_deletes_their_endpoints_and_deployments(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    env = operator_env
    kube.apply(secret_manifest("team-key", SECOND_KEY))
    kube.apply(v2_manifest("v2-with-secret", apiKeySecretRef={"name": "team-key"}))
    status = kube.wait_for(TEP, "v2-with-secret", ready_with("Started", state="READY"))["status"]
    assert [d.id for d in env.simulator.v2_deployments() if d.endpoint_id == status["endpointId"]] == [
        status["deploymentId"]
    ]
    assert SECRET_IN_USE_FINALIZER in secret_finalizers(kube, "team-key")

    kube.cp.kubectl("delete", "namespace", kube.namespace, "--wait=false")

    kube.wait_gone("namespace", kube.namespace, timeout=120)
    assert [d for d in env.simulator.v2_deployments() if d.endpoint_id == status["endpointId"]] == []
    endpoint_deletes = env.simulator.calls(
        method="DELETE", path=rf"/v2/projects/[^/]+/endpoints/{status['endpointId']}"
    )
    assert [c.status for c in endpoint_deletes][-1:] == [200], "the endpoint was deleted with the key"


def test_a_namespace_deleted_while_a_v2_create_is_in_flight_deletes_the_endpoint_the_create_made(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    """kopf runs the deletion beside the reconcile whose POST is still on its way: the deletion must not
    take "not listed yet" for "nothing made", and the Secret must stay for the endpoint that lands."""
    env = operator_env
    kube.apply(secret_manifest("team-key", SECOND_KEY))
    env.simulator.set_faults(
        [{"fault": "latency", "method": "POST", "path": rf"{ENDPOINTS}$", "seconds": 6, "times": 1}]
    )
    try:
        kube.apply(v2_manifest("in-flight", apiKeySecretRef={"name": "team-key"}))
        kube.wait_for(TEP, "in-flight", lambda o: bool((o.get("status") or {}).get("createRequestedAt")))
        kube.cp.kubectl("delete", "namespace", kube.namespace, "--wait=false")
        kube.wait_gone("namespace", kube.namespace, timeout=180)
    finally:
        env.simulator.clear_faults()

    posts = env.simulator.calls(method="POST", path=rf"{ENDPOINTS}$")
    assert [c.status for c in posts][-1:] == [200], "the create landed"
    v2 = V2(env.simulator, SECOND_KEY)
    try:
        listed = [e["name"] for e in v2.ok("GET", "/endpoints")["data"]]
    finally:
        v2.close()
    assert [name for name in listed if kube.namespace in name] == []
