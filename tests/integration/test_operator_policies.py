"""Lifecycle policies end to end: adoption, observe-only, pause, remote errors and deletions, and a
create whose response is lost. Each asserts on the simulator's call log: the bill is what matters."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.test_operator_lifecycle import TEP, calls, create_ready, remote
from tests.support.kube import Kube, condition, has_condition
from tests.support.manifests import HARDWARE, MODEL, endpoint_manifest, secret_manifest
from tests.support.operator_fixtures import OperatorEnv
from together_operator.core import ADOPTION_LABEL
from together_operator.together import CreateEndpointRequest, TogetherClient
from together_operator.together.models import Autoscaling

pytestmark = pytest.mark.controlplane

OTHER_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


async def create_by_hand(env: OperatorEnv, display_name: str) -> str:
    """An endpoint made outside Kubernetes, as a person with the vendor CLI would."""
    async with TogetherClient(env.simulator.base_url, env.simulator.api_key) as client:
        endpoint = await client.create_endpoint(
            CreateEndpointRequest(
                model=MODEL,
                hardware=HARDWARE,
                autoscaling=Autoscaling(min_replicas=1, max_replicas=1),
                display_name=display_name,
            )
        )
    return endpoint.id


async def test_an_existing_endpoint_is_adopted_and_brought_to_the_spec(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    endpoint_id = await create_by_hand(operator_env, "made by hand")
    posts_before = calls(operator_env, "POST")
    # The operator-wide key adopts only where the namespace allows it.
    kube.kubectl("label", "namespace", kube.namespace, f"{ADOPTION_LABEL}=allowed")

    obj = create_ready(operator_env, kube, "adopter", endpointId=endpoint_id, displayName="adopted")

    assert obj["status"]["endpointId"] == endpoint_id
    assert remote(operator_env, endpoint_id).display_name == "adopted"
    assert calls(operator_env, "POST") == posts_before


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        pytest.param({}, "apiKeySecretRef", id="operator-wide-key-in-a-namespace-that-does-not-allow-it"),
        pytest.param({"model": OTHER_MODEL}, "spec.model", id="another-model"),
    ],
)
async def test_a_refused_adoption_never_patches_or_deletes_the_endpoint(
    operator_env: OperatorEnv, kube: Kube, spec: dict[str, Any], rule: str
) -> None:
    endpoint_id = await create_by_hand(operator_env, "not yours")
    kube.apply(endpoint_manifest("taker", endpointId=endpoint_id, displayName="taken", **spec))

    obj = kube.wait_for(TEP, "taker", has_condition("Stalled", reason="AdoptionRefused"))
    stalled = condition(obj, "Stalled")
    assert stalled is not None
    assert rule in stalled["message"]
    assert "endpointId" not in obj["status"]
    kube.kubectl("delete", TEP, "taker")

    assert calls(operator_env, "PATCH", endpoint_id) == 0
    assert calls(operator_env, "DELETE", endpoint_id) == 0
    assert remote(operator_env, endpoint_id).display_name == "not yours"


async def test_two_resources_naming_one_endpoint_exactly_one_adopts_it(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    endpoint_id = await create_by_hand(operator_env, "contested")
    kube.apply(secret_manifest("team-key", operator_env.simulator.api_key))
    names = ("first", "second")
    for name in names:
        kube.apply(
            endpoint_manifest(
                name, endpointId=endpoint_id, displayName=name, apiKeySecretRef={"name": "team-key"}
            )
        )

    settled = {
        name: kube.wait_for(TEP, name, lambda o: has_condition("Ready")(o) or owned_elsewhere(o))
        for name in names
    }

    owners = [name for name, obj in settled.items() if obj["status"].get("endpointId") == endpoint_id]
    assert len(owners) == 1, settled
    (winner,) = owners
    (loser,) = set(names) - {winner}
    assert owned_elsewhere(settled[loser])
    assert remote(operator_env, endpoint_id).display_name == winner  # only the winner's spec was applied

    # The claim outlives a restart: the loser, reconciled afresh, is refused again.
    operator_env.operator.stop()
    operator_env.operator.start()
    operator_env.operator.wait_healthy()
    kube.patch(TEP, loser, {"spec": {"autoscaling": {"maxReplicas": 2}}})
    kube.wait_for(
        TEP,
        loser,
        lambda o: o["status"].get("observedGeneration") == 2 and owned_elsewhere(o),
    )
    assert remote(operator_env, endpoint_id).autoscaling.max_replicas == 1

    kube.kubectl("delete", TEP, loser)
    assert calls(operator_env, "DELETE", endpoint_id) == 0
    kube.kubectl("delete", TEP, winner)
    assert [e for e in operator_env.simulator.endpoints() if e.id == endpoint_id] == []


def owned_elsewhere(obj: dict[str, Any]) -> bool:
    return has_condition("Stalled", reason="EndpointOwnedElsewhere")(obj)


async def test_observe_only_mirrors_the_endpoint_and_never_changes_or_deletes_it(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    endpoint_id = await create_by_hand(operator_env, "watched")
    kube.apply(
        endpoint_manifest(
            "watcher", endpointId=endpoint_id, managementPolicy="ObserveOnly", displayName="watched"
        )
    )
    kube.wait_for(TEP, "watcher", has_condition("Ready"))

    operator_env.simulator.out_of_band(endpoint_id, "scale", min_replicas=2, max_replicas=2)
    obj = kube.wait_for(
        TEP, "watcher", lambda o: (o["status"].get("autoscaling") or {}).get("minReplicas") == 2
    )
    ready = condition(obj, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "Observing")

    kube.kubectl("delete", TEP, "watcher")

    assert calls(operator_env, "PATCH", endpoint_id) == 0
    assert calls(operator_env, "DELETE", endpoint_id) == 0
    assert remote(operator_env, endpoint_id).state == "STARTED"


def test_a_paused_resource_makes_no_calls_until_resumed(operator_env: OperatorEnv, kube: Kube) -> None:
    obj = create_ready(operator_env, kube, "napping")
    endpoint_id = obj["status"]["endpointId"]
    kube.kubectl("annotate", TEP, "napping", "together.ai/paused=true")
    kube.patch(TEP, "napping", {"spec": {"autoscaling": {"maxReplicas": 2}}})
    operator_env.simulator.out_of_band(endpoint_id, "stop")
    own_calls = len(operator_env.simulator.calls(path=f"/v1/endpoints/{endpoint_id}"))

    wait_for_polls(operator_env, 5)  # the shared poller saw the stop several times over

    assert len(operator_env.simulator.calls(path=f"/v1/endpoints/{endpoint_id}")) == own_calls
    assert remote(operator_env, endpoint_id).state == "STOPPED"
    assert kube.get(TEP, "napping")["status"]["state"] == "STARTED"  # nothing written while paused

    kube.kubectl("annotate", TEP, "napping", "together.ai/paused-")
    kube.wait_for(
        TEP,
        "napping",
        lambda o: (
            has_condition("Ready", reason="Started")(o) and o["status"]["autoscaling"]["maxReplicas"] == 2
        ),
    )


def wait_for_polls(env: OperatorEnv, count: int, timeout: float = 60.0) -> None:
    """Until the operator's shared poller has listed the account `count` more times."""
    lists = len(env.simulator.calls(method="GET", path="/v1/endpoints"))
    deadline = time.monotonic() + timeout
    while len(env.simulator.calls(method="GET", path="/v1/endpoints")) < lists + count:
        assert time.monotonic() < deadline, f"the poller did not list {count} times in {timeout}s"
        time.sleep(0.2)


def test_an_endpoint_deleted_out_of_band_stalls_and_is_not_recreated(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    obj = create_ready(operator_env, kube, "vanished")
    endpoint_id = obj["status"]["endpointId"]
    posts_before = calls(operator_env, "POST")

    operator_env.simulator.out_of_band(endpoint_id, "delete")
    obj = kube.wait_for(TEP, "vanished", has_condition("Stalled", reason="RemoteDeleted"))

    assert calls(operator_env, "POST") == posts_before
    stalled = condition(obj, "Stalled")
    assert stalled is not None
    assert endpoint_id in stalled["message"]
    kube.kubectl("delete", TEP, "vanished")  # the finalizer goes: nothing left to delete


def test_an_endpoint_in_error_after_an_update_stalls_and_is_not_patched_again(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    obj = create_ready(operator_env, kube, "broken")
    endpoint_id = obj["status"]["endpointId"]
    operator_env.simulator.set_faults([{"fault": "error_after_update", "times": 1}])
    try:
        kube.patch(TEP, "broken", {"spec": {"autoscaling": {"maxReplicas": 2}}})
        kube.wait_for(TEP, "broken", has_condition("Stalled", reason="RemoteError"))
    finally:
        operator_env.simulator.clear_faults()
    patches = calls(operator_env, "PATCH", endpoint_id)

    wait_for_polls(operator_env, 5)  # more polls pass with the endpoint still in ERROR
    assert kube.get(TEP, "broken")["status"]["state"] == "ERROR"
    assert calls(operator_env, "PATCH", endpoint_id) == patches

    kube.patch(TEP, "broken", {"spec": {"autoscaling": {"maxReplicas": 3}}})  # a new spec: tried again
    kube.wait_for(TEP, "broken", lambda o: calls(operator_env, "PATCH", endpoint_id) > patches)


def test_a_lost_create_response_does_not_create_a_second_endpoint(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    operator_env.simulator.set_faults([{"fault": "lose_create_response", "times": 1}])
    try:
        posts_before = calls(operator_env, "POST")
        kube.apply(endpoint_manifest("unlucky"))
        obj = kube.wait_for(TEP, "unlucky", has_condition("Ready"), timeout=90)
    finally:
        operator_env.simulator.clear_faults()

    posts = operator_env.simulator.calls(method="POST", path="/v1/endpoints")[posts_before:]
    assert [call.status for call in posts] == [0]  # one POST, its response lost, never repeated
    mine = [e for e in operator_env.simulator.endpoints() if e.display_name == f"{kube.namespace}/unlucky"]
    assert [e.id for e in mine] == [obj["status"]["endpointId"]]
