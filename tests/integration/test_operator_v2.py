"""The operator on Together v2, end to end: a real kube-apiserver, `together-operator run`, and the
simulator's v2 API (CONTRACT section 6). Assertions are on what users and the bill see: status and
conditions, the simulator's call log and deployments, and an application calling the endpoint.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.simulator.test_v2_sdk_fidelity import sdk3_python
from tests.simulator.v2_helpers import V2
from tests.support.kube import Kube, condition, has_condition, wait_for
from tests.support.manifests import MODEL, endpoint_manifest, secret_manifest
from tests.support.operator_fixtures import OperatorEnv
from together_operator.core import ADOPTION_LABEL
from together_operator.ownership import claim_name
from together_simulator.v2_admin import AdminDeployment

pytestmark = pytest.mark.controlplane

TEP = "togetherendpoint"
ENDPOINTS = r"/v2/projects/[^/]+/endpoints"


def v2_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return endpoint_manifest(name, **{"api": "v2", **spec})


@contextlib.contextmanager
def calling_repeatedly(call: Callable[[], str]) -> Iterator[list[str]]:
    """Run `call` over and over in a thread while the block runs; yields its answers, an API error as
    `<status> <body>`."""
    answers: list[str] = []
    stop = threading.Event()

    def keep_calling() -> None:
        while not stop.is_set():
            try:
                answers.append(call())
            except openai.APIStatusError as error:
                answers.append(f"{error.status_code} {error.body}")

    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        yield answers
    finally:
        stop.set()
        caller.join()


def deployments_of(env: OperatorEnv, endpoint_id: str) -> list[AdminDeployment]:
    return [d for d in env.simulator.v2_deployments() if d.endpoint_id == endpoint_id]


def ready_with(reason: str, **status: Any) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        seen = obj.get("status") or {}
        return has_condition("Ready", reason=reason)(obj) and all(seen.get(k) == v for k, v in status.items())

    return check


def test_v2_lifecycle_create_scale_stop_start_delete(operator_env: OperatorEnv, kube: Kube) -> None:
    env = operator_env
    endpoint_posts_before = len(env.simulator.calls(method="POST", path=ENDPOINTS))
    kube.apply(v2_manifest("chat"))
    obj = kube.wait_for(TEP, "chat", ready_with("Started", state="READY"))

    status = obj["status"]
    assert status["api"] == "v2"
    assert status["endpointName"] == f"devuser/{kube.namespace}-chat"
    (deployment,) = deployments_of(env, status["endpointId"])
    assert status["deploymentId"] == deployment.id
    assert deployment.hardware == "2xnvidia-h100-80gb"
    assert deployment.traffic_weight is not None, "the deployment takes the endpoint's traffic"
    assert (deployment.autoscaling.min_replicas, deployment.autoscaling.max_replicas) == (1, 1)
    assert has_condition("Serving")(obj)
    assert has_condition("Stalled", "False")(obj)
    assert len(env.simulator.calls(method="POST", path=ENDPOINTS)) == endpoint_posts_before + 1
    assert (
        len(env.simulator.calls(method="POST", path=f"{ENDPOINTS}/{status['endpointId']}/deployments")) == 1
    )

    scaling = {"metric": {"name": "gpu_utilization", "target": 70}, "scaleUpWindow": "30s"}
    kube.patch(TEP, "chat", {"spec": {"autoscaling": {"maxReplicas": 2}, "v2": {"scaling": scaling}}})
    obj = kube.wait_for(
        TEP, "chat", lambda o: ready_with("Started")(o) and o["status"]["autoscaling"]["maxReplicas"] == 2
    )
    (deployment,) = deployments_of(env, status["endpointId"])
    assert (deployment.autoscaling.min_replicas, deployment.autoscaling.max_replicas) == (1, 2)
    assert deployment.autoscaling.scale_up_window == "30s"
    assert [(m.name, m.type, m.target) for m in deployment.autoscaling.scaling_metrics or []] == [
        ("gpu_utilization", "METRIC_TARGET_TYPE_UTILIZATION", 70)
    ]

    kube.patch(TEP, "chat", {"spec": {"state": "Stopped"}})
    obj = kube.wait_for(TEP, "chat", ready_with("Stopped", state="STOPPED"))
    assert obj["status"]["autoscaling"] == {"minReplicas": 0, "maxReplicas": 0}
    assert has_condition("Serving", "False")(obj)

    kube.patch(TEP, "chat", {"spec": {"state": "Started"}})
    obj = kube.wait_for(TEP, "chat", ready_with("Started", state="READY"))
    assert obj["status"]["autoscaling"] == {"minReplicas": 1, "maxReplicas": 2}
    assert (
        len(env.simulator.calls(method="POST", path=f"{ENDPOINTS}/{status['endpointId']}/deployments")) == 1
    )

    kube.kubectl("delete", TEP, "chat", "--wait=false")
    kube.wait_gone(TEP, "chat")
    assert deployments_of(env, status["endpointId"]) == []
    endpoint_id = status["endpointId"]
    deletes = [c.path for c in env.simulator.calls(method="DELETE", path=f"{ENDPOINTS}/{endpoint_id}.*")]
    assert [path.split(f"/endpoints/{endpoint_id}")[1] for path in deletes] == [
        f"/deployments/{deployment.id}",
        "",
    ], "the deployment goes before the endpoint, each once"


def test_drift_of_autoscaling_and_traffic_split_is_put_back(operator_env: OperatorEnv, kube: Kube) -> None:
    env = operator_env
    kube.apply(v2_manifest("drift"))
    obj = kube.wait_for(TEP, "drift", ready_with("Started", state="READY"))
    deployment_id = obj["status"]["deploymentId"]

    env.simulator.v2_out_of_band(deployment_id, "scale", min_replicas=3, max_replicas=3)
    env.simulator.v2_out_of_band(deployment_id, "unroute")

    def put_back(_: dict[str, Any]) -> bool:
        (deployment,) = [d for d in env.simulator.v2_deployments() if d.id == deployment_id]
        bounds = (deployment.autoscaling.min_replicas, deployment.autoscaling.max_replicas)
        return bounds == (1, 1) and deployment.traffic_weight is not None

    kube.wait_for(TEP, "drift", lambda o: put_back(o) and ready_with("Started")(o))


def test_a_failed_deployment_stalls_with_the_platforms_message(operator_env: OperatorEnv, kube: Kube) -> None:
    env = operator_env
    kube.apply(v2_manifest("failing"))
    obj = kube.wait_for(TEP, "failing", ready_with("Started", state="READY"))

    env.simulator.v2_out_of_band(obj["status"]["deploymentId"], "fail", message="engine exited with code 1")

    obj = kube.wait_for(TEP, "failing", has_condition("Stalled", reason="RemoteError"))
    stalled = next(c for c in obj["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["message"] == "engine exited with code 1"
    assert obj["status"]["message"] == "engine exited with code 1"
    warnings = {e["reason"] for e in kube.events("failing") if e["type"] == "Warning"}
    assert "RemoteError" in warnings


def test_a_name_taken_by_another_endpoint_is_not_adopted(operator_env: OperatorEnv, kube: Kube) -> None:
    kube.apply(v2_manifest("first", v2={"endpointName": f"{kube.namespace}-shared"}))
    first = kube.wait_for(TEP, "first", ready_with("Started"))

    kube.apply(v2_manifest("second", v2={"endpointName": f"{kube.namespace}-shared"}))
    second = kube.wait_for(TEP, "second", has_condition("Stalled", reason="NameTaken"))

    assert "endpointId" not in second["status"] or second["status"]["endpointId"] is None
    assert len(deployments_of(operator_env, first["status"]["endpointId"])) == 1


def test_an_application_calls_the_v2_endpoint_through_the_connection_config_map(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    kube.apply(v2_manifest("app", connection={"configMapName": "app-connection"}))
    obj = kube.wait_for(TEP, "app", ready_with("Started", state="READY"))

    data = kube.get("configmap", "app-connection")["data"]
    assert data == {
        "TOGETHER_MODEL": obj["status"]["endpointName"],
        "TOGETHER_BASE_URL": operator_env.simulator.base_url,
        "TOGETHER_ENDPOINT_ID": obj["status"]["endpointId"],
    }
    with openai.OpenAI(base_url=data["TOGETHER_BASE_URL"], api_key=operator_env.simulator.api_key) as client:
        reply = client.chat.completions.create(
            model=data["TOGETHER_MODEL"], messages=[{"role": "user", "content": "Say hi"}]
        )
    assert reply.choices[0].message.content
    assert reply.model == data["TOGETHER_MODEL"]


def test_a_hardware_change_rolls_out_behind_the_same_name_without_unrouted_traffic(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    env = operator_env
    kube.apply(v2_manifest("rolled"))
    before = kube.wait_for(TEP, "rolled", ready_with("Started", state="READY"))["status"]
    endpoint_id, old_id = before["endpointId"], before["deploymentId"]
    # An application calling during the rollout; no retries, so a routing error would show.
    client = openai.OpenAI(base_url=env.simulator.base_url, api_key=env.simulator.api_key, max_retries=0)

    def call_the_endpoint() -> str:
        client.chat.completions.create(
            model=before["endpointName"], messages=[{"role": "user", "content": "hi"}]
        )
        return "ok"

    with client, calling_repeatedly(call_the_endpoint) as answers:
        kube.patch(TEP, "rolled", {"spec": {"hardware": "4xnvidia-h100-80gb"}})
        after = kube.wait_for(
            TEP,
            "rolled",
            lambda o: (
                ready_with("Started", state="READY")(o)
                and o["status"]["deploymentId"] != old_id
                and not o["status"].get("rollout")
            ),
            timeout=120,
        )["status"]

    assert after["endpointName"] == before["endpointName"], "applications keep calling the same name"
    (deployment,) = deployments_of(env, endpoint_id)
    assert deployment.id == after["deploymentId"]
    assert deployment.hardware == "4xnvidia-h100-80gb"
    assert deployment.traffic_weight is not None
    assert len(env.simulator.calls(method="POST", path=f"{ENDPOINTS}/{endpoint_id}/deployments")) == 2
    assert answers, "the application called during the rollout"
    assert [a for a in answers if a != "ok"] == []
    # kopf posts events from a queue of its own: they may reach the apiserver after the status does.
    wait_for(
        lambda: [e for e in kube.events("rolled") if e["reason"] == "RollingOut"] or None,
        what="the RollingOut event",
    )


def test_speculative_decoding_chooses_the_config_with_a_draft_model_and_a_change_rolls_out(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    """Mixtral has, on each hardware, a certified config with a draft model and one without."""
    env = operator_env
    kube.apply(v2_manifest("draft", speculativeDecoding=True))
    before = kube.wait_for(TEP, "draft", ready_with("Started", state="READY"))["status"]
    (speculative,) = deployments_of(env, before["endpointId"])
    assert speculative.speculator, "speculativeDecoding: true deploys the config that pins a draft model"

    kube.patch(TEP, "draft", {"spec": {"speculativeDecoding": False}})
    after = kube.wait_for(
        TEP,
        "draft",
        lambda o: (
            ready_with("Started", state="READY")(o)
            and o["status"]["deploymentId"] != speculative.id
            and not o["status"].get("rollout")
        ),
        timeout=120,
    )["status"]

    (plain,) = deployments_of(env, before["endpointId"])
    assert (plain.id, plain.speculator, plain.hardware) == (after["deploymentId"], None, speculative.hardware)
    assert plain.config != speculative.config
    assert after["endpointName"] == before["endpointName"]


def test_a_v1_resource_migrates_to_v2_with_the_v1_endpoint_serving_until_the_v2_one_can(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    env = operator_env
    manifest = v2_manifest("moved", api="v1", connection={"configMapName": "moved-connection"})
    kube.apply(manifest)
    v1 = kube.wait_for(TEP, "moved", lambda o: ready_with("Started", state="STARTED")(o))["status"]
    assert v1["api"] == "v1"
    v1_id = v1["endpointId"]

    def call_through_the_config_map() -> str:
        """An application that reads the connection ConfigMap before each call, without retries."""
        data = kube.get("configmap", "moved-connection")["data"]
        with openai.OpenAI(
            base_url=data["TOGETHER_BASE_URL"], api_key=env.simulator.api_key, max_retries=0
        ) as client:
            client.chat.completions.create(
                model=data["TOGETHER_MODEL"], messages=[{"role": "user", "content": "hi"}]
            )
        return str(data["TOGETHER_MODEL"])

    with calling_repeatedly(call_through_the_config_map) as answers:
        kube.patch(TEP, "moved", {"spec": {"api": "v2"}})
        after = kube.wait_for(
            TEP,
            "moved",
            lambda o: (
                o["status"].get("api") == "v2"
                and ready_with("Started", state="READY")(o)
                and not o["status"].get("rollout")
            ),
            timeout=120,
        )["status"]

    assert after["endpointName"] == f"devuser/{kube.namespace}-moved"
    assert v1_id not in {e.id for e in env.simulator.endpoints()}, "the v1 endpoint is deleted at the end"
    data = kube.get("configmap", "moved-connection")["data"]
    assert data["TOGETHER_MODEL"] == after["endpointName"]
    assert data["TOGETHER_ENDPOINT_ID"] == after["endpointId"]
    assert [a for a in answers if a not in (v1["endpointName"], after["endpointName"])] == []
    assert answers[0] == v1["endpointName"], "the v1 endpoint served first"


def test_an_inactive_timeout_change_on_a_live_v2_resource_updates_its_deployment_in_place(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    env = operator_env
    kube.apply(v2_manifest("idle", inactiveTimeout=60))
    status = kube.wait_for(TEP, "idle", ready_with("Started", state="READY"))["status"]
    endpoint_id, deployment_id = status["endpointId"], status["deploymentId"]
    assert [d.inactive_timeout for d in deployments_of(env, endpoint_id)] == [60], "sent with the create"

    kube.patch(TEP, "idle", {"spec": {"inactiveTimeout": 30}})
    kube.wait_for(TEP, "idle", ready_with("Started", state="READY"))
    kube.patch(TEP, "idle", {"spec": {"inactiveTimeout": None}})
    after = kube.wait_for(TEP, "idle", ready_with("Started", state="READY"))["status"]

    assert after["deploymentId"] == deployment_id, "no rollout: the same deployment"
    assert [d.inactive_timeout for d in deployments_of(env, endpoint_id)] == [0], "omitted is off"
    updates = env.simulator.calls(
        method="PATCH", path=f"{ENDPOINTS}/{endpoint_id}/deployments/{deployment_id}"
    )
    timeout_updates = [c for c in updates if c.query.get("updateMask") == "inactiveTimeout"]
    assert [c.status for c in timeout_updates] == [200, 200]


def test_a_together_3x_application_calls_the_v2_endpoint_through_the_connection_config_map(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    python = sdk3_python()
    kube.apply(v2_manifest("app3", connection={"configMapName": "app3-connection"}))
    kube.wait_for(TEP, "app3", ready_with("Started", state="READY"))
    data = kube.get("configmap", "app3-connection")["data"]

    run = subprocess.run(
        [python, str(Path(__file__).parent / "sdk3" / "call_endpoint.py")],
        env={**os.environ, **data, "TOGETHER_API_KEY": operator_env.simulator.api_key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"Echo from {data['TOGETHER_MODEL']}: Hello!"


def test_under_30_percent_faults_a_v2_resource_converges_with_nothing_created_twice_or_left_behind(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    """Every v2 call fails 30% of the time (5xx), and creates lose their answer 30% of the time: the
    names read back resolve every lost answer. The simulator's faults draw from its seeded source."""
    env = operator_env
    name = f"{kube.namespace}-faulty"
    env.simulator.set_faults(
        [
            {"fault": "lose_create_response", "method": "POST", "path": "/v2/", "probability": 0.3},
            {"fault": "server_error", "status": 503, "path": "/v2/", "probability": 0.3},
        ]
    )
    try:
        kube.apply(v2_manifest("faulty"))
        ready = kube.wait_for(TEP, "faulty", ready_with("Started", state="READY"), timeout=180)["status"]
        kube.patch(TEP, "faulty", {"spec": {"hardware": "4xnvidia-h100-80gb"}})
        kube.wait_for(
            TEP,
            "faulty",
            lambda o: (
                ready_with("Started", state="READY")(o)
                and o["status"]["deploymentId"] != ready["deploymentId"]
                and not o["status"].get("rollout")
            ),
            timeout=180,
        )
        ours = [d for d in env.simulator.v2_deployments() if d.endpoint_name.rpartition("/")[2] == name]
        assert len({d.endpoint_id for d in ours}) == 1, "one endpoint of our name"
        assert [d.hardware for d in ours] == ["4xnvidia-h100-80gb"], "one deployment: the rolled-out one"
        kube.kubectl("delete", TEP, "faulty", "--wait=false")
        kube.wait_gone(TEP, "faulty", timeout=180)
    finally:
        env.simulator.clear_faults()
    assert [d for d in env.simulator.v2_deployments() if d.endpoint_name.rpartition("/")[2] == name] == []


def test_a_failed_rollout_leaves_the_traffic_on_the_old_deployment_and_removes_the_new_one(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    env = operator_env
    kube.apply(v2_manifest("doomed"))
    status = kube.wait_for(TEP, "doomed", ready_with("Started", state="READY"))["status"]
    endpoint_id, old_id = status["endpointId"], status["deploymentId"]

    # The simulator cannot place this model on this hardware: the new deployment never gets READY.
    kube.patch(TEP, "doomed", {"spec": {"model": "Qwen/Qwen3.5-9B-FP8", "hardware": "1xnvidia-h100-80gb"}})

    def new_one_waits(obj: dict[str, Any]) -> bool:
        waiting = [
            d for d in deployments_of(env, endpoint_id) if d.id != old_id and d.state.endswith("DEGRADED")
        ]
        return bool(waiting) and (obj["status"].get("rollout") or {}).get("phase") == "WaitingReady"

    waiting = kube.wait_for(TEP, "doomed", new_one_waits)
    assert has_condition("Serving")(waiting), "the old deployment serves meanwhile"
    (new,) = [d for d in deployments_of(env, endpoint_id) if d.id != old_id]
    env.simulator.v2_out_of_band(new.id, "fail", message="engine exited with code 1")

    def removed(obj: dict[str, Any]) -> bool:
        return has_condition("Stalled", reason="RolloutFailed")(obj) and [
            d.id for d in deployments_of(env, endpoint_id)
        ] == [old_id]

    failed = kube.wait_for(TEP, "doomed", removed)
    (old,) = deployments_of(env, endpoint_id)
    assert old.traffic_weight is not None, "the traffic stayed on the old deployment"
    assert failed["status"]["deploymentId"] == old_id
    assert failed["status"]["rollout"]["phase"] == "Failed"
    assert "engine exited with code 1" in condition_message(failed, "Stalled")
    assert has_condition("Serving")(failed)


def condition_message(obj: dict[str, Any], kind: str) -> str:
    return next(str(c.get("message", "")) for c in obj["status"]["conditions"] if c["type"] == kind)


# --- adoption of an existing v2 endpoint by id (CONTRACT section 2) --------------------------------


def made_by_hand(env: OperatorEnv, name: str, model: str = MODEL) -> tuple[str, str]:
    """A v2 endpoint made outside Kubernetes, as a person with the 3.x CLI would: the endpoint, one
    deployment of `model` on 2xnvidia-h100-80gb taking its traffic; (endpoint id, deployment id)."""
    v2 = V2(env.simulator)
    try:
        endpoint = v2.create_endpoint(name)
        deployment = v2.create_deployment(endpoint["id"], name="by-hand", model=model)
        v2.route(endpoint["id"], deployment["id"])
    finally:
        v2.close()
    return endpoint["id"], deployment["id"]


def calls_to(env: OperatorEnv, endpoint_id: str, *methods: str) -> list[str]:
    """`METHOD path` (the path after the endpoint's) of the calls to the endpoint or its deployments
    with one of `methods`, oldest first."""
    return [
        f"{call.method} {call.path.split(f'/endpoints/{endpoint_id}')[1]}"
        for call in env.simulator.calls(path=f"{ENDPOINTS}/{endpoint_id}(/.*)?")
        if call.method in methods
    ]


def claimed(env: OperatorEnv, endpoint_id: str) -> bool:
    """Whether the claim (a Lease in the operator's namespace, `default` here) on the endpoint exists."""
    found = env.control_plane.kubectl("get", "lease", claim_name(endpoint_id), "-n", "default", check=False)
    return found.returncode == 0


def test_an_existing_v2_endpoint_is_adopted_kept_as_it_runs_and_deleted_in_the_platforms_order(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    env = operator_env
    endpoint_id, deployment_id = made_by_hand(env, f"hand-{kube.namespace}")
    posts_before = len(env.simulator.calls(method="POST", path=f"{ENDPOINTS}(/.*)?"))
    # The operator-wide key adopts only where the namespace allows it.
    kube.kubectl("label", "namespace", kube.namespace, f"{ADOPTION_LABEL}=allowed")

    kube.apply(v2_manifest("adopter", endpointId=endpoint_id))
    status = kube.wait_for(TEP, "adopter", ready_with("Started", state="READY"))["status"]

    assert (status["api"], status["endpointId"], status["deploymentId"]) == ("v2", endpoint_id, deployment_id)
    assert status["endpointName"] == f"devuser/hand-{kube.namespace}", "it keeps its own name"
    assert len(env.simulator.calls(method="POST", path=f"{ENDPOINTS}(/.*)?")) == posts_before, (
        "its deployment already runs the spec: nothing is created"
    )
    assert claimed(env, endpoint_id)

    kube.patch(TEP, "adopter", {"spec": {"autoscaling": {"maxReplicas": 2}}})
    kube.wait_for(
        TEP, "adopter", lambda o: ready_with("Started")(o) and o["status"]["autoscaling"]["maxReplicas"] == 2
    )
    (deployment,) = deployments_of(env, endpoint_id)
    assert (deployment.id, deployment.autoscaling.max_replicas) == (deployment_id, 2), "managed as our own"

    kube.kubectl("delete", TEP, "adopter", "--wait=false")
    kube.wait_gone(TEP, "adopter")
    assert deployments_of(env, endpoint_id) == []
    assert calls_to(env, endpoint_id, "PATCH", "DELETE")[-4:] == [
        f"PATCH /deployments/{deployment_id}",  # stopped: 0/0
        "PATCH ",  # out of the traffic split
        f"DELETE /deployments/{deployment_id}",
        "DELETE ",
    ], "the platform's order, each step once"
    assert not claimed(env, endpoint_id), "the claim is released with the resource"


@pytest.mark.parametrize(
    ("by_hand_model", "spec", "rule"),
    [
        pytest.param(
            MODEL, {}, "operator-wide API key", id="operator-wide-key-in-a-namespace-that-does-not-allow-it"
        ),
        pytest.param(
            "meta-llama/Llama-3-8b-chat-hf",
            {"apiKeySecretRef": {"name": "team-key"}},
            "adopted only by a resource of its model",
            id="another-model",
        ),
    ],
)
def test_a_refused_v2_adoption_never_sends_a_mutating_call(
    operator_env: OperatorEnv, kube: Kube, by_hand_model: str, spec: dict[str, Any], rule: str
) -> None:
    env = operator_env
    endpoint_id, deployment_id = made_by_hand(env, f"not-yours-{kube.namespace}", model=by_hand_model)
    made = calls_to(env, endpoint_id, "POST", "PATCH", "DELETE")
    kube.apply(secret_manifest("team-key", env.simulator.api_key))
    kube.apply(v2_manifest("taker", endpointId=endpoint_id, autoscaling={"maxReplicas": 3}, **spec))

    obj = kube.wait_for(TEP, "taker", has_condition("Stalled", reason="AdoptionRefused"))
    stalled = condition(obj, "Stalled")
    assert stalled is not None
    assert rule in stalled["message"]
    assert "endpointId" not in obj["status"]
    assert "AdoptionRefused" in {e["reason"] for e in kube.events("taker") if e["type"] == "Warning"}
    assert not claimed(env, endpoint_id), "a refused resource claims nothing, so it blocks nobody"
    kube.kubectl("delete", TEP, "taker")

    assert calls_to(env, endpoint_id, "POST", "PATCH", "DELETE") == made, "only the hand-made calls"
    (deployment,) = deployments_of(env, endpoint_id)
    assert (deployment.id, deployment.autoscaling.max_replicas) == (deployment_id, 1)
    assert deployment.traffic_weight is not None, "its traffic is untouched"


def test_a_v2_endpoint_id_that_is_not_found_stalls_and_creates_nothing(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    env = operator_env
    posts_before = len(env.simulator.calls(method="POST", path=f"{ENDPOINTS}(/.*)?"))
    kube.kubectl("label", "namespace", kube.namespace, f"{ADOPTION_LABEL}=allowed")
    kube.apply(v2_manifest("lost", endpointId="ep_doesnotexist"))

    obj = kube.wait_for(TEP, "lost", has_condition("Stalled", reason="EndpointNotFound"))
    stalled = condition(obj, "Stalled")
    assert stalled is not None
    assert "spec.endpointId ep_doesnotexist is not an endpoint of project" in stalled["message"]
    assert len(env.simulator.calls(method="POST", path=f"{ENDPOINTS}(/.*)?")) == posts_before
    kube.kubectl("delete", TEP, "lost")


def test_two_resources_naming_one_v2_endpoint_exactly_one_adopts_it(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    env = operator_env
    endpoint_id, deployment_id = made_by_hand(env, f"contested-{kube.namespace}")
    kube.apply(secret_manifest("team-key", env.simulator.api_key))
    replicas = {"first": 2, "second": 3}
    for name, max_replicas in replicas.items():
        kube.apply(
            v2_manifest(
                name,
                endpointId=endpoint_id,
                apiKeySecretRef={"name": "team-key"},
                autoscaling={"maxReplicas": max_replicas},
            )
        )

    def settled(obj: dict[str, Any]) -> bool:
        return ready_with("Started")(obj) or has_condition("Stalled", reason="EndpointOwnedElsewhere")(obj)

    seen = {name: kube.wait_for(TEP, name, settled) for name in replicas}

    (winner,) = [name for name, obj in seen.items() if obj["status"].get("endpointId") == endpoint_id]
    (loser,) = set(replicas) - {winner}
    assert has_condition("Stalled", reason="EndpointOwnedElsewhere")(seen[loser])
    (deployment,) = deployments_of(env, endpoint_id)
    assert (deployment.id, deployment.autoscaling.max_replicas) == (deployment_id, replicas[winner]), (
        "only the winner's spec is applied"
    )

    kube.kubectl("delete", TEP, loser)
    assert calls_to(env, endpoint_id, "DELETE") == []
    assert claimed(env, endpoint_id), "the winner's claim stays"
    kube.kubectl("delete", TEP, winner, "--wait=false")
    kube.wait_gone(TEP, winner)
    assert [e for e in env.simulator.v2_deployments() if e.endpoint_id == endpoint_id] == []
    assert not claimed(env, endpoint_id)


def test_observe_only_adopts_a_v2_endpoint_with_the_operator_wide_key_and_only_mirrors_it(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    env = operator_env
    endpoint_id, deployment_id = made_by_hand(env, f"watched-{kube.namespace}")
    made = calls_to(env, endpoint_id, "POST", "PATCH", "DELETE")
    # No label on the namespace: ObserveOnly never changes the endpoint, so the shared key may watch it.
    kube.apply(
        v2_manifest(
            "watcher", endpointId=endpoint_id, managementPolicy="ObserveOnly", autoscaling={"maxReplicas": 4}
        )
    )

    status = kube.wait_for(TEP, "watcher", ready_with("Observing", state="READY"))["status"]
    assert (status["endpointId"], status["deploymentId"]) == (endpoint_id, deployment_id)
    assert status["autoscaling"] == {"minReplicas": 1, "maxReplicas": 1}, "the remote bounds, not the spec's"
    kube.kubectl("delete", TEP, "watcher")

    assert calls_to(env, endpoint_id, "POST", "PATCH", "DELETE") == made, "never changed, nor deleted"
    assert [d.id for d in deployments_of(env, endpoint_id)] == [deployment_id]
