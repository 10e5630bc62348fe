"""The operator end to end: a real kube-apiserver, `together-operator run`, and the Together simulator.

Each test applies TogetherEndpoints in its own namespace and asserts on what users and the bill see:
the resource's status and conditions, its events, and the calls the simulator logged.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import openai
import pytest
import together
from prometheus_client.parser import text_string_to_metric_families

from tests.support.kube import Kube, condition, has_condition
from tests.support.manifests import HARDWARE, MODEL, endpoint_manifest, secret_manifest
from tests.support.operator_fixtures import SECOND_KEY, OperatorEnv
from together_simulator import AdminEndpoint

pytestmark = pytest.mark.controlplane

TEP = "togetherendpoint"


def remote(env: OperatorEnv, endpoint_id: str) -> AdminEndpoint:
    return next(e for e in env.simulator.endpoints() if e.id == endpoint_id)


def calls(env: OperatorEnv, method: str, endpoint_id: str | None = None) -> int:
    path = "/v1/endpoints" + (f"/{endpoint_id}" if endpoint_id else "")
    return len(env.simulator.calls(method=method, path=path))


def create_ready(env: OperatorEnv, kube: Kube, name: str, **spec: Any) -> dict[str, Any]:
    kube.apply(endpoint_manifest(name, **spec))
    return kube.wait_for(TEP, name, has_condition("Ready"))


def test_a_new_resource_gets_one_endpoint_and_becomes_ready(operator_env: OperatorEnv, kube: Kube) -> None:
    posts_before = calls(operator_env, "POST")
    kube.apply(endpoint_manifest("chat"))

    waited = kube.kubectl("wait", "--for=condition=Ready", "--timeout=60s", f"{TEP}/chat")

    assert "condition met" in waited.stdout
    with urllib.request.urlopen(operator_env.health_url, timeout=10) as health:
        assert health.status == 200
    obj = kube.get(TEP, "chat")
    status = obj["status"]
    endpoint = remote(operator_env, status["endpointId"])
    assert status["endpointName"] == endpoint.name
    assert endpoint.name.startswith(f"devuser/{MODEL}-")
    assert status["state"] == "STARTED"
    assert endpoint.display_name == f"{kube.namespace}/chat"
    assert endpoint.hardware == HARDWARE
    assert endpoint.disable_speculative_decoding is True
    assert calls(operator_env, "POST") == posts_before + 1
    assert has_condition("Serving")(obj)
    assert has_condition("Reconciling", "False")(obj)
    assert has_condition("Stalled", "False")(obj)
    reasons = {e["reason"] for e in kube.events("chat") if e["type"] == "Normal"}
    assert "Creating" in reasons


def test_scaling_sends_one_patch_with_both_bounds(operator_env: OperatorEnv, kube: Kube) -> None:
    obj = create_ready(operator_env, kube, "scaled")
    endpoint_id = obj["status"]["endpointId"]
    patches_before = calls(operator_env, "PATCH", endpoint_id)

    kube.patch(TEP, "scaled", {"spec": {"autoscaling": {"maxReplicas": 3}}})
    obj = kube.wait_for(
        TEP, "scaled", lambda o: has_condition("Ready")(o) and o["status"]["autoscaling"]["maxReplicas"] == 3
    )

    assert calls(operator_env, "PATCH", endpoint_id) == patches_before + 1
    assert remote(operator_env, endpoint_id).autoscaling.model_dump() == {
        "min_replicas": 1,
        "max_replicas": 3,
    }
    assert obj["status"]["autoscaling"] == {"minReplicas": 1, "maxReplicas": 3}


def test_stopping_and_starting_follow_spec_state(operator_env: OperatorEnv, kube: Kube) -> None:
    obj = create_ready(operator_env, kube, "toggled")
    endpoint_id = obj["status"]["endpointId"]

    kube.patch(TEP, "toggled", {"spec": {"state": "Stopped"}})
    stopped = kube.wait_for(TEP, "toggled", lambda o: has_condition("Ready", reason="Stopped")(o))

    assert stopped["status"]["state"] == "STOPPED"
    assert has_condition("Serving", "False")(stopped)
    assert remote(operator_env, endpoint_id).state == "STOPPED"

    kube.patch(TEP, "toggled", {"spec": {"state": "Started"}})
    started = kube.wait_for(TEP, "toggled", lambda o: has_condition("Ready", reason="Started")(o))

    assert started["status"]["state"] == "STARTED"
    assert has_condition("Serving")(started)


def test_renaming_changes_the_remote_display_name(operator_env: OperatorEnv, kube: Kube) -> None:
    obj = create_ready(operator_env, kube, "renamed")
    endpoint_id = obj["status"]["endpointId"]

    kube.patch(TEP, "renamed", {"spec": {"displayName": "Support bot"}})
    obj = kube.wait_for(
        TEP, "renamed", lambda o: has_condition("Ready")(o) and o["status"]["displayName"] == "Support bot"
    )

    assert remote(operator_env, endpoint_id).display_name == "Support bot"


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("stop", {}),
        ("scale", {"min_replicas": 2, "max_replicas": 4}),
        ("rename", {"display_name": "changed by hand"}),
    ],
)
def test_out_of_band_changes_are_put_back(
    operator_env: OperatorEnv, kube: Kube, action: str, params: dict[str, Any]
) -> None:
    obj = create_ready(operator_env, kube, "guarded", displayName="guarded")
    endpoint_id = obj["status"]["endpointId"]
    patches_before = calls(operator_env, "PATCH", endpoint_id)

    operator_env.simulator.out_of_band(endpoint_id, action, **params)

    def corrected(o: dict[str, Any]) -> bool:
        endpoint = remote(operator_env, endpoint_id)
        return (
            has_condition("Ready", reason="Started")(o)
            and endpoint.state == "STARTED"
            and endpoint.display_name == "guarded"
            and (endpoint.autoscaling.min_replicas, endpoint.autoscaling.max_replicas) == (1, 1)
        )

    kube.wait_for(TEP, "guarded", corrected, timeout=90)
    assert calls(operator_env, "PATCH", endpoint_id) > patches_before


def test_an_inactivity_stop_is_accepted_until_a_restart_is_requested(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    obj = create_ready(operator_env, kube, "idle", inactiveTimeout=30)
    endpoint_id = obj["status"]["endpointId"]
    assert remote(operator_env, endpoint_id).inactive_timeout == 30

    operator_env.simulator.advance_clock(31 * operator_env.simulator.config.minute_seconds)
    auto_stopped = kube.wait_for(TEP, "idle", has_condition("Ready", reason="AutoStopped"))

    assert auto_stopped["status"]["state"] == "STOPPED"
    assert has_condition("Serving", "False")(auto_stopped)
    patches_while_stopped = calls(operator_env, "PATCH", endpoint_id)
    # Several poll intervals later it is still stopped: the operator did not fight the timeout.
    kube.wait_for(TEP, "idle", lambda o: o["status"].get("lastSyncTime") is not None)
    assert remote(operator_env, endpoint_id).state == "STOPPED"

    kube.kubectl("annotate", TEP, "idle", "together.ai/restart-requested-at=2026-11-23T10:00:00Z")
    restarted = kube.wait_for(TEP, "idle", has_condition("Ready", reason="Started"))

    assert restarted["status"]["state"] == "STARTED"
    assert calls(operator_env, "PATCH", endpoint_id) == patches_while_stopped + 1


def test_hardware_not_offered_for_the_model_stalls_with_the_options(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    posts_before = calls(operator_env, "POST")
    kube.apply(endpoint_manifest("wrong-hw", hardware="1x_nvidia_a100_80gb_sxm"))

    obj = kube.wait_for(TEP, "wrong-hw", has_condition("Stalled", reason="HardwareNotSupported"))

    stalled = condition(obj, "Stalled")
    assert stalled is not None
    assert "1x_nvidia_a100_80gb_sxm" in stalled["message"]
    assert HARDWARE in stalled["message"]  # the options offered for the model
    assert has_condition("Ready", "False")(obj)
    assert calls(operator_env, "POST") == posts_before
    warnings = [e for e in kube.events("wrong-hw") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["HardwareNotSupported"]


def test_gpu_shorthand_resolves_to_one_hardware_id(operator_env: OperatorEnv, kube: Kube) -> None:
    manifest = endpoint_manifest("by-gpu")
    del manifest["spec"]["hardware"]
    manifest["spec"]["gpu"] = {"type": "h100", "count": 4}
    kube.apply(manifest)

    obj = kube.wait_for(TEP, "by-gpu", has_condition("Ready"))

    assert obj["status"]["hardware"] == "4x_nvidia_h100_80gb_sxm"


def test_a_missing_secret_stalls_and_recovers_once_created(operator_env: OperatorEnv, kube: Kube) -> None:
    kube.apply(endpoint_manifest("keyed", apiKeySecretRef={"name": "together-key"}))
    obj = kube.wait_for(TEP, "keyed", has_condition("Stalled", reason="CredentialsNotFound"))
    stalled = condition(obj, "Stalled")
    assert stalled is not None
    assert "together-key" in stalled["message"]

    kube.apply(secret_manifest("together-key", SECOND_KEY))
    obj = kube.wait_for(TEP, "keyed", has_condition("Ready"), timeout=90)

    # Created with the Secret's key: the endpoint belongs to the second account.
    assert obj["status"]["endpointName"].startswith("otheruser/")
    assert remote(operator_env, obj["status"]["endpointId"]).owner == "otheruser"


def test_a_rejected_key_stalls_and_recovers_when_the_secret_is_rotated(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    kube.apply(secret_manifest("rotating-key", "not-a-key-together-knows"))
    kube.apply(endpoint_manifest("rotated", apiKeySecretRef={"name": "rotating-key"}))

    obj = kube.wait_for(TEP, "rotated", has_condition("Stalled", reason="Unauthorized"))
    stalled = condition(obj, "Stalled")
    assert stalled is not None
    assert "rotating-key" in stalled["message"]
    assert "not-a-key-together-knows" not in kube.kubectl("get", TEP, "rotated", "-o", "yaml").stdout
    warnings = [e["reason"] for e in kube.events("rotated") if e["type"] == "Warning"]
    assert warnings == ["Unauthorized"]  # once, not once per retry

    kube.apply(secret_manifest("rotating-key", SECOND_KEY))
    obj = kube.wait_for(TEP, "rotated", has_condition("Ready"), timeout=90)

    assert obj["status"]["endpointName"].startswith("otheruser/")
    operator_env.operator.assert_running()


def test_the_api_key_never_appears_in_status_events_or_logs(operator_env: OperatorEnv, kube: Kube) -> None:
    create_ready(operator_env, kube, "secretive")
    text = kube.kubectl("get", "togetherendpoints,events", "-o", "yaml").stdout

    for key in (operator_env.simulator.api_key, SECOND_KEY):
        assert key not in text
        assert key not in operator_env.operator.logs()


def test_deleting_the_resource_deletes_the_endpoint_before_releasing_it(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    obj = create_ready(operator_env, kube, "doomed")
    endpoint_id = obj["status"]["endpointId"]
    operator_env.simulator.set_faults([{"fault": "latency", "seconds": 2.0, "method": "DELETE"}])
    try:
        kube.kubectl("delete", TEP, "doomed", "--wait=false")
        # The finalizer holds the resource while the slow DELETE is in flight.
        held = kube.get(TEP, "doomed")
        assert held["metadata"].get("deletionTimestamp")
        assert "together.ai/finalizer" in held["metadata"]["finalizers"]
        kube.wait_gone(TEP, "doomed")
    finally:
        operator_env.simulator.clear_faults()

    assert calls(operator_env, "DELETE", endpoint_id) == 1
    assert all(e.id != endpoint_id for e in operator_env.simulator.endpoints())


def test_a_connection_config_map_publishes_how_to_call_the_endpoint(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    obj = create_ready(operator_env, kube, "published", connection={"configMapName": "published-conn"})

    config_map = kube.wait_for("configmap", "published-conn", lambda c: bool(c.get("data")))

    assert config_map["data"] == {
        "TOGETHER_MODEL": obj["status"]["endpointName"],
        "TOGETHER_BASE_URL": operator_env.simulator.base_url,
        "TOGETHER_ENDPOINT_ID": obj["status"]["endpointId"],
    }
    (owner,) = config_map["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "TogetherEndpoint",
        "published",
        obj["metadata"]["uid"],
    )
    assert operator_env.simulator.api_key not in json.dumps(config_map)

    # An application with only the ConfigMap and its own key calls the endpoint, with both SDKs.
    env = config_map["data"]
    key = operator_env.simulator.api_key
    by_together = together.Together(base_url=env["TOGETHER_BASE_URL"], api_key=key).chat.completions.create(
        model=env["TOGETHER_MODEL"], messages=[{"role": "user", "content": "ping"}]
    )
    by_openai = openai.OpenAI(base_url=env["TOGETHER_BASE_URL"], api_key=key).chat.completions.create(
        model=env["TOGETHER_MODEL"], messages=[{"role": "user", "content": "ping"}]
    )
    together_message = by_together.choices[0].message
    assert together_message is not None
    assert together_message.content == by_openai.choices[0].message.content
    assert "ping" in (by_openai.choices[0].message.content or "")

    kube.kubectl("delete", TEP, "published")

    assert not kube.exists("configmap", "published-conn")


def test_a_config_map_that_is_not_ours_is_left_alone_and_stalls(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    kube.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "taken"}, "data": {"mine": "yes"}}
    )

    kube.apply(endpoint_manifest("blocked", connection={"configMapName": "taken"}))

    # The endpoint itself is created and runs; only the publication is stuck.
    obj = kube.wait_for(
        TEP,
        "blocked",
        lambda o: (
            has_condition("Stalled", reason="ConnectionConfigMapConflict")(o)
            and o["status"]["state"] == "STARTED"
        ),
    )
    assert kube.get("configmap", "taken")["data"] == {"mine": "yes"}
    stalled = condition(obj, "Stalled")
    assert stalled is not None
    assert "taken" in stalled["message"]

    kube.patch(TEP, "blocked", {"spec": {"connection": {"configMapName": "blocked-conn"}}})
    kube.wait_for(TEP, "blocked", has_condition("Ready"))
    assert (
        kube.get("configmap", "blocked-conn")["data"]["TOGETHER_ENDPOINT_ID"] == obj["status"]["endpointId"]
    )


def test_orphan_policy_leaves_the_endpoint_running(operator_env: OperatorEnv, kube: Kube) -> None:
    obj = create_ready(operator_env, kube, "kept", deletionPolicy="Orphan")
    endpoint_id = obj["status"]["endpointId"]

    kube.kubectl("delete", TEP, "kept")

    assert calls(operator_env, "DELETE", endpoint_id) == 0
    assert remote(operator_env, endpoint_id).state == "STARTED"
    operator_env.operator.assert_running()


def scrape(env: OperatorEnv) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(env.metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_the_calls_the_simulator_saw(operator_env: OperatorEnv, kube: Kube) -> None:
    """Runs last in this module: the counters cover every scenario above."""
    create_ready(operator_env, kube, "measured")
    metrics = scrape(operator_env)

    def counted(operation: str) -> float:
        return sum(
            value
            for (name, labels), value in metrics.items()
            if name == "together_operator_api_calls_total" and ("operation", operation) in labels
        )

    # Changes are rare and exact; the poller's lists may be in flight while scraping.
    assert counted("create_endpoint") == len(
        operator_env.simulator.calls(method="POST", path="/v1/endpoints")
    )
    assert counted("update_endpoint") == len(
        operator_env.simulator.calls(method="PATCH", path="/v1/endpoints/.*")
    )
    assert counted("delete_endpoint") == len(
        operator_env.simulator.calls(method="DELETE", path="/v1/endpoints/.*")
    )
    listed = len(operator_env.simulator.calls(method="GET", path="/v1/endpoints"))
    assert listed - 3 <= counted("list_endpoints") <= listed
    assert metrics[("together_operator_endpoints", (("state", "STARTED"),))] >= 1
    ready = (
        "together_operator_endpoint_conditions",
        (("condition", "Ready"), ("reason", "Started"), ("status", "True")),
    )
    assert metrics[ready] >= 1
    assert metrics[("together_operator_status_patches_total", ())] > 0
    assert any(name == "together_operator_poll_duration_seconds_count" for name, _ in metrics)
    assert operator_env.simulator.api_key not in json.dumps([list(k) for k in metrics])
