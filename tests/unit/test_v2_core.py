"""The v2 core as a specification (CONTRACT section 6): (spec, previous status, the endpoint of our name
in the project's list, the resolved target, a frozen clock) in, (the next v2 call, status, conditions)
out. A "later reconcile" feeds the previous plan's status back in, as the shell does.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

import pytest

from together_operator.core import (
    CREATE_OUTCOME_WINDOW,
    AdoptionClaim,
    EventType,
    HardwareRejected,
    NotCreated,
    Reason,
    RetryPolicy,
    plan,
)
from together_operator.resource import (
    ConditionType,
    RolloutStatus,
    TogetherAPI,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)
from together_operator.together.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TogetherError,
    TransientError,
)
from together_operator.together.v2_models import (
    Autoscaling,
    DeploymentProfile,
    DeploymentSummary,
    Endpoint,
    SupportedModel,
    TrafficSplitEntry,
)
from together_operator.v2_core import (
    CONNECTION_SWITCH_GRACE,
    ClaimEndpoint,
    CreateV2Deployment,
    CreateV2Endpoint,
    DeleteV2Deployment,
    DeleteV2Endpoint,
    DeploymentTarget,
    ResolveTarget,
    RetireV1Endpoint,
    SetTrafficSplit,
    SetV2Autoscaling,
    SetV2InactiveTimeout,
    V2Action,
    V2DeletionInputs,
    V2Failure,
    V2Inputs,
    V2Plan,
    V2Reason,
    V2Released,
    WaitForCreateOutcome,
    WaitForStopped,
    adoption_id,
    api_in_use,
    configs_to_read,
    desired_autoscaling,
    endpoint_name,
    known_name,
    models_named,
    plan_v2,
    plan_v2_deletion,
    plan_v2_failure,
    released_without_calls,
    resolve_target,
    v2_connection_steps,
    v2_hardware,
)

from .builders import inputs as v1_inputs

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NAMESPACE, NAME = "team-a", "mixtral"
MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
PROJECT = "proj_1"
MODEL_RESOURCE = "projects/platform/models/ml_mixtral/revisions/rv_1"
CONFIG = "projects/platform/configs/cr_h100x2"
TARGET = DeploymentTarget(model=MODEL_RESOURCE, config=CONFIG, hardware="2xnvidia-h100-80gb")
DEPLOYMENT_NAME = TARGET.deployment_name(None)
ENDPOINT_ID, DEPLOYMENT_ID = "ep_1", "dep_1"
INFERENCE = "https://api-inference.together.ai/v1"


class _Call(TypedDict):
    method: str
    path: str


CALL = _Call(method="POST", path="v2/projects/proj_1/endpoints")


def spec(**overrides: Any) -> TogetherEndpointSpec:
    return TogetherEndpointSpec.model_validate(
        {"model": MODEL, "hardware": "2x_nvidia_h100_80gb_sxm", "api": "v2", **overrides}
    )


def deployment(
    state: str = "READY", min_replicas: int = 1, max_replicas: int = 1, name: str = DEPLOYMENT_NAME
) -> DeploymentSummary:
    return DeploymentSummary(
        id=DEPLOYMENT_ID,
        name=f"devproj/{NAMESPACE}-{NAME}/{name}",
        state=f"DEPLOYMENT_STATE_{state}",
        autoscaling=Autoscaling(min_replicas=min_replicas, max_replicas=max_replicas),
        model=MODEL_RESOURCE,
        hardware="2xnvidia-h100-80gb",
        desired_replicas=max_replicas,
        ready_replicas=max_replicas if state in ("READY", "DEGRADED") else 0,
    )


def endpoint(
    *deployments: DeploymentSummary, routed: bool = True, endpoint_id: str = ENDPOINT_ID
) -> Endpoint:
    split = [TrafficSplitEntry(deployment_id=d.id, weight=100) for d in deployments] if routed else []
    return Endpoint(
        id=endpoint_id,
        name=f"devproj/{NAMESPACE}-{NAME}",
        project_id=PROJECT,
        etag="etag-1",
        visibility="VISIBILITY_PRIVATE",
        traffic_split=split,
        deployments=list(deployments),
    )


CREATED = TogetherEndpointStatus(api=TogetherAPI.V2, endpoint_id=ENDPOINT_ID, deployment_id=DEPLOYMENT_ID)


def run(
    remote: Endpoint | None,
    *,
    previous: TogetherEndpointStatus = CREATED,
    target: DeploymentTarget | HardwareRejected | None = TARGET,
    message: str = "",
    inactive_timeouts: dict[str, int] | None = None,
    **spec_overrides: Any,
) -> V2Plan:
    return plan_v2(
        V2Inputs(
            spec=spec(**spec_overrides),
            generation=1,
            namespace=NAMESPACE,
            name=NAME,
            previous=previous,
            now=NOW,
            project_id=PROJECT,
            endpoint=remote,
            target=target,
            deployment_messages={d.id: message for d in remote.deployments} if remote and message else {},
            inactive_timeouts=inactive_timeouts or {},
        )
    )


def conditions(plan: V2Plan) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in plan.status.conditions}


# --- names and hardware -----------------------------------------------------------------------------


def test_the_endpoint_name_defaults_to_namespace_and_name_and_is_cut_with_a_hash_to_63() -> None:
    assert endpoint_name(spec(), "team-a", "mixtral") == "team-a-mixtral"
    assert endpoint_name(spec(v2={"endpointName": "chat"}), "team-a", "mixtral") == "chat"
    long = endpoint_name(spec(), "n" * 40, "m" * 40)
    assert len(long) == 63
    assert long != endpoint_name(spec(), "n" * 40, "m" * 41), "the hash tells cut names apart"


@pytest.mark.parametrize(
    ("hardware", "v2"),
    [
        ("2x_nvidia_h100_80gb_sxm", "2xnvidia-h100-80gb"),
        ("1x_nvidia_a100_80gb_pcie", "1xnvidia-a100-80gb"),
        ("4x_nvidia_h200_141gb", "4xnvidia-h200-141gb"),
        ("2xnvidia-h100-80gb", "2xnvidia-h100-80gb"),
    ],
)
def test_a_v1_hardware_id_means_the_same_gpu_count_and_type_on_v2(hardware: str, v2: str) -> None:
    assert v2_hardware(hardware) == v2


def profile(count: int, gpu: str, config: str) -> DeploymentProfile:
    return DeploymentProfile(config=config, model=MODEL_RESOURCE, gpu_count=count, gpu_type=gpu)


SPECULATIVE_CONFIG = "projects/platform/configs/cr_h100x2_spec"
CATALOGUE = [
    SupportedModel(
        id="sm_1",
        name=MODEL,
        base_model="projects/platform/models/ml_mixtral",
        deployment_profiles=[
            profile(2, "nvidia-h100-80gb", CONFIG),
            profile(1, "nvidia-h100-80gb", "projects/platform/configs/cr_h100x1"),
            profile(2, "nvidia-a100-80gb", "projects/platform/configs/cr_a100x2"),
            profile(2, "nvidia-a100-40gb", "projects/platform/configs/cr_a100x2_40"),
            profile(2, "nvidia-h100-80gb", SPECULATIVE_CONFIG),
            profile(4, "nvidia-h100-80gb", "projects/platform/configs/cr_h100x4_spec"),
        ],
    )
]
# The configs that pin a draft model (speculative decoding); the others pin none.
DRAFTS: dict[str, str | None] = {
    SPECULATIVE_CONFIG: "projects/platform/models/ml_speculator",
    "projects/platform/configs/cr_h100x4_spec": "projects/platform/models/ml_speculator",
    CONFIG: None,
    "projects/platform/configs/cr_h100x1": "",  # the API's empty string: no draft model
}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, TARGET),
        ({"hardware": "2xnvidia-h100-80gb"}, TARGET),
        ({"hardware": None, "gpu": {"type": "h100", "count": 2}}, TARGET),
        (
            {"v2": {"config": "projects/platform/configs/cr_h100x1"}},
            DeploymentTarget(MODEL_RESOURCE, "projects/platform/configs/cr_h100x1", "1xnvidia-h100-80gb"),
        ),
        (
            {"speculativeDecoding": True},
            DeploymentTarget(MODEL_RESOURCE, SPECULATIVE_CONFIG, "2xnvidia-h100-80gb"),
        ),
        (
            {"hardware": None, "gpu": {"type": "h100", "count": 4}, "speculativeDecoding": True},
            DeploymentTarget(
                MODEL_RESOURCE, "projects/platform/configs/cr_h100x4_spec", "4xnvidia-h100-80gb"
            ),
        ),
        (
            {"speculativeDecoding": True, "v2": {"config": CONFIG}},
            DeploymentTarget(MODEL_RESOURCE, CONFIG, "2xnvidia-h100-80gb"),
        ),
        ({"hardware": "8x_nvidia_h100_80gb_sxm"}, Reason.HARDWARE_NOT_SUPPORTED),
        ({"hardware": "1xnvidia-h100-80gb", "speculativeDecoding": True}, Reason.HARDWARE_NOT_SUPPORTED),
        ({"hardware": "4xnvidia-h100-80gb"}, Reason.HARDWARE_NOT_SUPPORTED),
        ({"hardware": None, "gpu": {"type": "a100", "count": 2}}, Reason.HARDWARE_AMBIGUOUS),
        ({"model": "acme/unknown"}, Reason.MODEL_NOT_SUPPORTED),
    ],
    ids=[
        "v1-id",
        "v2-name",
        "gpu",
        "explicit-config",
        "speculative",
        "speculative-gpu",
        "explicit-config-wins",
        "not-offered",
        "not-offered-speculative",
        "offered-only-speculative",
        "ambiguous",
        "unknown-model",
    ],
)
def test_model_hardware_and_speculative_decoding_resolve_to_one_certified_config(
    overrides: dict[str, Any], expected: DeploymentTarget | Reason
) -> None:
    resolved = resolve_target(spec(**overrides), CATALOGUE, DRAFTS)
    if isinstance(expected, DeploymentTarget):
        assert resolved == expected
    else:
        assert isinstance(resolved, HardwareRejected)
        assert resolved.reason == expected
        assert (
            "offered" in resolved.message or "several" in resolved.message or "catalogue" in resolved.message
        )


def test_the_draft_models_read_are_those_of_the_models_certified_configs() -> None:
    assert configs_to_read(spec(), CATALOGUE) == tuple(p.config for p in CATALOGUE[0].deployment_profiles)
    assert configs_to_read(spec(v2={"config": CONFIG}), CATALOGUE) == ()
    assert configs_to_read(spec(model="acme/unknown"), CATALOGUE) == ()


def test_speculative_decoding_not_offered_on_the_hardware_stalls_listing_both_kinds_of_offer() -> None:
    rejected = resolve_target(spec(hardware="4xnvidia-h100-80gb"), CATALOGUE, DRAFTS)
    assert isinstance(rejected, HardwareRejected)
    assert "speculativeDecoding false is not offered" in rejected.message
    assert "4xnvidia-h100-80gb with speculative decoding" in rejected.message
    assert "1xnvidia-h100-80gb," in rejected.message


def test_turning_speculative_decoding_on_is_a_rollout_to_the_config_with_a_draft_model() -> None:
    speculative = resolve_target(spec(speculativeDecoding=True), CATALOGUE, DRAFTS)
    assert isinstance(speculative, DeploymentTarget)
    plan = run(endpoint(deployment()), target=speculative, speculativeDecoding=True)
    assert isinstance(plan.action, CreateV2Deployment)
    assert plan.action.request.config == SPECULATIVE_CONFIG
    assert plan.action.request.name != DEPLOYMENT_NAME
    assert conditions(plan)[ConditionType.RECONCILING] == ("True", "RollingOut")


def test_a_rejected_target_stalls_naming_what_is_offered() -> None:
    rejected = resolve_target(spec(hardware="8x_nvidia_h100_80gb_sxm"), CATALOGUE, DRAFTS)
    plan = run(endpoint(), previous=CREATED.model_copy(update={"deployment_id": None}), target=rejected)
    assert plan.action is None
    assert conditions(plan)[ConditionType.STALLED] == ("True", Reason.HARDWARE_NOT_SUPPORTED)
    assert "2xnvidia-h100-80gb" in plan.status.condition(ConditionType.STALLED).message  # type: ignore[union-attr]


# --- create: endpoint, deployment, split, each idempotent by name ----------------------------------


def test_create_walks_endpoint_then_deployment_then_split_then_waits_for_ready() -> None:
    first = run(None, previous=TogetherEndpointStatus(), target=None)
    assert first.action == CreateV2Endpoint("team-a-mixtral")
    assert first.status.create_requested_at == NOW, "the intent is recorded before the POST"
    assert first.status.api == TogetherAPI.V2
    assert conditions(first)[ConditionType.RECONCILING] == ("True", Reason.CREATING)

    second = run(endpoint(), previous=first.status, target=None)
    assert second.action == ResolveTarget()
    assert second.status.endpoint_id == ENDPOINT_ID
    assert second.status.endpoint_name == "devproj/team-a-mixtral"

    third = run(endpoint(), previous=second.status, autoscaling={"minReplicas": 1, "maxReplicas": 3})
    assert isinstance(third.action, CreateV2Deployment)
    assert third.action.endpoint_id == ENDPOINT_ID
    request = third.action.request
    assert (request.name, request.model, request.config) == (DEPLOYMENT_NAME, MODEL_RESOURCE, CONFIG)
    assert (request.autoscaling.min_replicas, request.autoscaling.max_replicas) == (1, 3)

    provisioning = deployment("PROVISIONING", 1, 3)
    fourth = run(endpoint(provisioning, routed=False), previous=third.status, autoscaling={"maxReplicas": 3})
    assert fourth.action == SetTrafficSplit(
        ENDPOINT_ID, (TrafficSplitEntry(deployment_id=DEPLOYMENT_ID, weight=100),), "etag-1"
    )
    assert fourth.status.deployment_id == DEPLOYMENT_ID

    fifth = run(endpoint(provisioning), previous=fourth.status, autoscaling={"maxReplicas": 3})
    assert fifth.action is None
    assert conditions(fifth) == {
        ConditionType.READY: ("False", "Provisioning"),
        ConditionType.SERVING: ("False", "Provisioning"),
        ConditionType.RECONCILING: ("True", "Provisioning"),
        ConditionType.STALLED: ("False", Reason.NOT_STALLED),
    }

    ready = run(endpoint(deployment("READY", 1, 3)), previous=fifth.status, autoscaling={"maxReplicas": 3})
    assert ready.action is None
    assert conditions(ready)[ConditionType.READY] == ("True", Reason.STARTED)
    assert conditions(ready)[ConditionType.SERVING] == ("True", "Ready")
    assert (ready.status.state, ready.status.ready_replicas, ready.status.desired_replicas) == ("READY", 3, 3)


def test_an_endpoint_of_our_name_after_a_lost_create_answer_is_ours_not_created_again() -> None:
    intent = TogetherEndpointStatus(create_requested_at=NOW)
    plan = run(endpoint(), previous=intent, target=None)
    assert plan.action == ResolveTarget()
    assert plan.status.endpoint_id == ENDPOINT_ID


def test_a_deployment_of_our_name_after_a_crash_is_taken_up_not_created_twice() -> None:
    unrecorded = CREATED.model_copy(update={"deployment_id": None})
    plan = run(endpoint(deployment("PROVISIONING")), previous=unrecorded)
    assert plan.action is None
    assert plan.status.deployment_id == DEPLOYMENT_ID


def test_a_name_held_by_an_endpoint_this_resource_did_not_create_is_name_taken() -> None:
    plan = run(endpoint(), previous=TogetherEndpointStatus())
    assert plan.action is None
    assert conditions(plan)[ConditionType.STALLED] == ("True", "NameTaken")
    assert plan.status.endpoint_id is None, "never adopted"
    assert "spec.v2.endpointName" in plan.status.condition(ConditionType.STALLED).message  # type: ignore[union-attr]


def test_an_endpoint_gone_after_it_was_recorded_is_remote_deleted_and_not_recreated() -> None:
    plan = run(None)
    assert plan.action is None
    assert conditions(plan)[ConditionType.STALLED] == ("True", Reason.REMOTE_DELETED)


# --- states, conditions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "desired", "ready", "serving", "reconciling", "stalled"),
    [
        ("READY", "Started", ("True", "Started"), "True", ("False", "Reconciled"), "False"),
        ("PROVISIONING", "Started", ("False", "Provisioning"), "False", ("True", "Provisioning"), "False"),
        ("SCALING", "Started", ("False", "Scaling"), "False", ("True", "Scaling"), "False"),
        ("DEGRADED", "Started", ("False", "Degraded"), "True", ("True", "Degraded"), "False"),
        ("STOPPING", "Stopped", ("False", "Stopping"), "False", ("True", "Stopping"), "False"),
        ("STOPPED", "Stopped", ("True", "Stopped"), "False", ("False", "Reconciled"), "False"),
        ("READY", "Stopped", ("False", "Stopping"), "True", ("True", "Stopping"), "False"),
        ("STOPPED", "Started", ("False", "Starting"), "False", ("True", "Starting"), "False"),
        ("FAILED", "Started", ("False", "RemoteError"), "False", ("False", "Reconciled"), "True"),
    ],
)
def test_the_deployment_state_maps_to_the_conditions(
    state: str,
    desired: str,
    ready: tuple[str, str],
    serving: str,
    reconciling: tuple[str, str],
    stalled: str,
) -> None:
    bounds = (0, 0) if desired == "Stopped" else (1, 1)
    plan = run(endpoint(deployment(state, *bounds)), state=desired, message="out of capacity")
    assert plan.action is None
    found = conditions(plan)
    assert found[ConditionType.READY] == ready
    assert found[ConditionType.SERVING][0] == serving
    assert found[ConditionType.RECONCILING] == reconciling
    assert found[ConditionType.STALLED][0] == stalled


def test_failed_stalls_with_the_platforms_message() -> None:
    plan = run(endpoint(deployment("FAILED")), message="image pull failed")
    assert plan.status.message == "image pull failed"
    assert plan.status.condition(ConditionType.STALLED).message == "image pull failed"  # type: ignore[union-attr]
    assert [e.reason for e in plan.events] == [Reason.REMOTE_ERROR]


# --- a steady resource: nothing to write -----------------------------------------------------------


def look_again(previous: TogetherEndpointStatus, remote: Endpoint, **changes: Any) -> V2Plan:
    """A later look (an hour on) at `remote`, with `previous` as the status the last look wrote."""
    fields: dict[str, Any] = {
        "spec": spec(),
        "generation": 1,
        "namespace": NAMESPACE,
        "name": NAME,
        "previous": previous,
        "now": NOW.replace(hour=13),
        "project_id": PROJECT,
        "endpoint": remote,
        "target": TARGET,
        **changes,
    }
    return plan_v2(V2Inputs(**fields))


@pytest.mark.parametrize(
    ("remote", "changes"),
    [
        (endpoint(deployment("READY")), {}),
        (endpoint(deployment("STOPPED", 0, 0)), {"spec": spec(state="Stopped")}),
        (endpoint(deployment("FAILED")), {"deployment_messages": {DEPLOYMENT_ID: "image pull failed"}}),
        (endpoint(deployment("DEGRADED")), {"deployment_messages": {DEPLOYMENT_ID: "1 of 2 replicas"}}),
        (endpoint(deployment("READY", 3, 3)), {"spec": spec(managementPolicy="ObserveOnly")}),
    ],
    ids=["ready", "stopped", "failed", "degraded", "observe-only"],
)
def test_a_later_look_at_an_unchanged_endpoint_changes_no_status_field_and_posts_no_event(
    remote: Endpoint, changes: dict[str, Any]
) -> None:
    first = look_again(CREATED, remote, now=NOW, **changes)
    assert first.status.last_sync_time == NOW

    again = look_again(first.status, remote, **changes)

    assert again.action is None
    assert again.status == first.status, "not even lastSyncTime: a time that changed alone is not written"
    assert again.events == ()


def test_last_sync_time_moves_with_a_real_change_of_status() -> None:
    ready = look_again(CREATED, endpoint(deployment("READY")), now=NOW).status

    degraded = look_again(ready, endpoint(deployment("DEGRADED")))

    assert degraded.status.last_sync_time == NOW.replace(hour=13)
    ready_condition = degraded.status.condition(ConditionType.READY)
    assert ready_condition is not None
    assert ready_condition.last_transition_time == NOW.replace(hour=13)


# --- scaling, stop and start, drift -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote_bounds", "overrides", "wanted", "reason"),
    [
        ((1, 1), {"state": "Stopped"}, (0, 0), Reason.STOPPING),
        ((0, 0), {"autoscaling": {"minReplicas": 2, "maxReplicas": 4}}, (2, 4), Reason.STARTING),
        ((1, 1), {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}, (1, 3), Reason.UPDATING),
        ((5, 9), {}, (1, 1), Reason.UPDATING),  # drift put back
    ],
    ids=["stop-is-0/0", "start-restores-the-bounds", "scale", "drift"],
)
def test_autoscaling_is_set_to_the_spec_and_stopped_is_0_0(
    remote_bounds: tuple[int, int], overrides: dict[str, Any], wanted: tuple[int, int], reason: str
) -> None:
    state = "STOPPED" if remote_bounds == (0, 0) else "READY"
    plan = run(endpoint(deployment(state, *remote_bounds)), **overrides)
    assert plan.action == SetV2Autoscaling(
        ENDPOINT_ID, DEPLOYMENT_ID, Autoscaling(min_replicas=wanted[0], max_replicas=wanted[1])
    )
    assert conditions(plan)[ConditionType.RECONCILING] == ("True", reason)


@pytest.mark.parametrize(
    ("remote_minutes", "spec_minutes", "wanted"),
    [(0, 60, 60), (60, 30, 30), (60, None, 0), (45, 0, 0)],
    ids=["turned-on", "changed", "omitted-is-off", "zero-is-off"],
)
def test_an_inactive_timeout_that_differs_on_the_live_deployment_is_updated_alone(
    remote_minutes: int, spec_minutes: int | None, wanted: int
) -> None:
    plan = run(
        endpoint(deployment()),
        inactive_timeouts={DEPLOYMENT_ID: remote_minutes},
        inactiveTimeout=spec_minutes,
    )
    assert plan.action == SetV2InactiveTimeout(ENDPOINT_ID, DEPLOYMENT_ID, wanted)
    assert conditions(plan)[ConditionType.RECONCILING] == ("True", Reason.UPDATING)


@pytest.mark.parametrize(
    "inactive_timeouts",
    [{DEPLOYMENT_ID: 60}, {}, {"dep_other": 0}],
    ids=["equal", "not-read", "read-of-another-deployment"],
)
def test_an_inactive_timeout_equal_or_not_read_is_left_alone(inactive_timeouts: dict[str, int]) -> None:
    plan = run(endpoint(deployment()), inactive_timeouts=inactive_timeouts, inactiveTimeout=60)
    assert plan.action is None
    assert conditions(plan)[ConditionType.READY] == ("True", Reason.STARTED)


def test_a_traffic_split_changed_by_hand_is_put_back() -> None:
    plan = run(endpoint(deployment(), routed=False))
    assert isinstance(plan.action, SetTrafficSplit)
    assert plan.action.split == (TrafficSplitEntry(deployment_id=DEPLOYMENT_ID, weight=100),)


# --- rollouts ---------------------------------------------------------------------------------------

LLAMA = DeploymentTarget(
    model="projects/platform/models/ml_llama", config=CONFIG, hardware="2xnvidia-h100-80gb"
)
NEW_NAME, NEW_ID = LLAMA.deployment_name(None), "dep_2"


def new_deployment(state: str = "PROVISIONING", bounds: tuple[int, int] = (1, 1)) -> DeploymentSummary:
    return deployment(state, *bounds, name=NEW_NAME).model_copy(update={"id": NEW_ID})


def routed_to(deployment_id: str, *deployments: DeploymentSummary) -> Endpoint:
    split = [TrafficSplitEntry(deployment_id=deployment_id, weight=100)]
    return endpoint(*deployments).model_copy(update={"traffic_split": split})


def test_a_model_change_rolls_out_behind_the_same_name_and_traffic_moves_only_once_the_new_one_is_ready() -> (
    None
):
    old = deployment()
    steps: list[tuple[Endpoint, str, str | None]] = [
        (routed_to(DEPLOYMENT_ID, old), "Creating", "create"),
        (routed_to(DEPLOYMENT_ID, old, new_deployment("PROVISIONING")), "WaitingReady", None),
        (routed_to(DEPLOYMENT_ID, old, new_deployment("READY")), "ShiftingTraffic", "split"),
        (routed_to(NEW_ID, old, new_deployment("READY")), "RemovingOld", "stop-old"),
        (routed_to(NEW_ID, deployment("STOPPING", 0, 0), new_deployment("READY")), "RemovingOld", None),
        (
            routed_to(NEW_ID, deployment("STOPPED", 0, 0), new_deployment("READY")),
            "RemovingOld",
            "delete-old",
        ),
    ]
    previous = CREATED
    for remote, phase, call in steps:
        plan = run(remote, previous=previous, target=LLAMA)
        assert plan.status.rollout is not None
        assert (plan.status.rollout.from_, plan.status.rollout.to, plan.status.rollout.phase) == (
            DEPLOYMENT_ID,
            NEW_NAME,
            phase,
        )
        assert conditions(plan)[ConditionType.SERVING][0] == "True", "something serves at every step"
        assert conditions(plan)[ConditionType.RECONCILING] == ("True", "RollingOut")
        expected = {
            None: None,
            "create": CreateV2Deployment,
            "split": SetTrafficSplit,
            "stop-old": SetV2Autoscaling,
            "delete-old": DeleteV2Deployment,
        }[call]
        assert (type(plan.action) if plan.action else None) is expected
        if isinstance(plan.action, SetTrafficSplit):
            assert plan.action.split == (TrafficSplitEntry(deployment_id=NEW_ID, weight=100),)
        if isinstance(plan.action, SetV2Autoscaling | DeleteV2Deployment):
            assert plan.action.deployment_id == DEPLOYMENT_ID, "only the old one is stopped and deleted"
        previous = plan.status
    done = run(routed_to(NEW_ID, new_deployment("READY")), previous=previous, target=LLAMA)
    assert done.action is None
    assert done.status.rollout is None
    assert done.status.deployment_id == NEW_ID
    assert conditions(done)[ConditionType.READY] == ("True", Reason.STARTED)


def test_a_crash_after_the_traffic_moved_resumes_without_a_third_deployment() -> None:
    """status.deploymentId still names the old one; the names tell what exists."""
    plan = run(routed_to(NEW_ID, deployment(), new_deployment("READY")), previous=CREATED, target=LLAMA)
    assert plan.status.deployment_id == NEW_ID
    assert plan.action == SetV2Autoscaling(
        ENDPOINT_ID, DEPLOYMENT_ID, Autoscaling(min_replicas=0, max_replicas=0)
    )
    again = run(
        routed_to(DEPLOYMENT_ID, deployment(), new_deployment("PROVISIONING")), previous=CREATED, target=LLAMA
    )
    assert again.action is None, "the new deployment of the spec's name is awaited, not created again"


def test_a_failed_new_deployment_leaves_the_traffic_on_the_old_one_and_is_removed() -> None:
    failing = routed_to(DEPLOYMENT_ID, deployment(), new_deployment("FAILED"))
    plan = run(failing, target=LLAMA, message="out of memory")
    assert plan.action == SetV2Autoscaling(ENDPOINT_ID, NEW_ID, Autoscaling(min_replicas=0, max_replicas=0))
    assert conditions(plan)[ConditionType.STALLED] == ("True", "RolloutFailed")
    assert "out of memory" in plan.status.condition(ConditionType.STALLED).message  # type: ignore[union-attr]
    assert conditions(plan)[ConditionType.SERVING][0] == "True"
    assert plan.status.deployment_id == DEPLOYMENT_ID
    assert plan.status.rollout is not None
    assert plan.status.rollout.phase == "Failed"

    stopped = routed_to(DEPLOYMENT_ID, deployment(), new_deployment("STOPPED", (0, 0)))
    removal = run(stopped, previous=plan.status, target=LLAMA)
    assert removal.action == DeleteV2Deployment(ENDPOINT_ID, NEW_ID)

    after = run(routed_to(DEPLOYMENT_ID, deployment()), previous=removal.status, target=LLAMA)
    assert after.action is None, "the same failing spec is not deployed again"
    assert conditions(after)[ConditionType.STALLED] == ("True", "RolloutFailed")

    other = DeploymentTarget(model="projects/platform/models/ml_qwen", config=CONFIG, hardware=None)
    retried = run(routed_to(DEPLOYMENT_ID, deployment()), previous=after.status, target=other)
    assert isinstance(retried.action, CreateV2Deployment), "a new spec is a new rollout"


def test_observe_only_mirrors_and_never_calls() -> None:
    for remote in (endpoint(deployment("READY", 3, 3)), endpoint(deployment("STOPPED", 0, 0), routed=False)):
        plan = run(
            remote,
            previous=TogetherEndpointStatus(),
            managementPolicy="ObserveOnly",
            v2={"endpointName": "team-a-mixtral"},
        )
        assert plan.action is None
        assert plan.status.endpoint_id == ENDPOINT_ID
        assert conditions(plan)[ConditionType.READY] == ("True", Reason.OBSERVING)


# --- deletion ---------------------------------------------------------------------------------------


def delete(remote: Endpoint | None, **overrides: Any) -> object:
    return plan_v2_deletion(
        V2DeletionInputs(spec=spec(**overrides), status=CREATED, endpoint=remote, now=NOW)
    )


def test_deletion_follows_the_platforms_order_one_idempotent_step_at_a_time() -> None:
    steps = [
        (
            endpoint(deployment("READY", 1, 2)),
            SetV2Autoscaling(ENDPOINT_ID, DEPLOYMENT_ID, Autoscaling(min_replicas=0, max_replicas=0)),
        ),
        (endpoint(deployment("STOPPING", 0, 0)), SetTrafficSplit(ENDPOINT_ID, (), "etag-1")),
        (endpoint(deployment("STOPPING", 0, 0), routed=False), WaitForStopped(DEPLOYMENT_ID)),
        (endpoint(deployment("STOPPED", 0, 0), routed=False), DeleteV2Deployment(ENDPOINT_ID, DEPLOYMENT_ID)),
        (endpoint(routed=False), DeleteV2Endpoint(ENDPOINT_ID)),
    ]
    for remote, expected in steps:
        assert delete(remote) == expected
    assert isinstance(delete(None), V2Released), "the finalizer goes once the endpoint is gone"


@pytest.mark.parametrize(
    "overrides",
    [{"deletionPolicy": "Orphan"}, {"managementPolicy": "ObserveOnly", "endpointId": "endpoint-1"}],
)
def test_orphan_and_observe_only_release_without_a_call(overrides: dict[str, Any]) -> None:
    assert isinstance(delete(endpoint(deployment()), **overrides), V2Released)


def test_a_create_that_may_still_be_in_flight_is_waited_for_before_the_resource_is_released() -> None:
    """A deletion (a namespace's, say) runs beside the reconcile whose POST may not have landed yet:
    an endpoint not listed is not taken for "nothing made" until the outcome window has passed."""
    sent = TogetherEndpointStatus(api=TogetherAPI.V2, create_requested_at=NOW)

    def step(seconds_later: float) -> object:
        now = NOW + timedelta(seconds=seconds_later)
        return plan_v2_deletion(V2DeletionInputs(spec=spec(), status=sent, endpoint=None, now=now))

    assert step(5) == WaitForCreateOutcome(NOW + CREATE_OUTCOME_WINDOW)
    assert step(CREATE_OUTCOME_WINDOW.total_seconds()) == V2Released("the v2 endpoint is gone")


def test_nothing_created_nothing_to_delete() -> None:
    nothing = TogetherEndpointStatus()
    step = plan_v2_deletion(V2DeletionInputs(spec=spec(), status=nothing, endpoint=None, now=NOW))
    assert step == V2Released("no v2 endpoint was created")


# --- which API, migration, connection, failures -----------------------------------------------------


@pytest.mark.parametrize(
    ("spec_api", "recorded", "endpoint_id", "default", "expected"),
    [
        ("v2", None, None, TogetherAPI.V1, TogetherAPI.V2),
        (None, TogetherAPI.V2, "ep_1", TogetherAPI.V1, TogetherAPI.V2),
        (None, None, None, TogetherAPI.V2, TogetherAPI.V2),
        (None, None, "endpoint-1", TogetherAPI.V2, TogetherAPI.V1),  # recorded before status.api existed
        (None, TogetherAPI.V1, "endpoint-1", TogetherAPI.V2, TogetherAPI.V1),
    ],
)
def test_the_api_is_the_specs_else_the_recorded_one_else_the_operators_default(
    spec_api: str | None,
    recorded: TogetherAPI | None,
    endpoint_id: str | None,
    default: TogetherAPI,
    expected: TogetherAPI,
) -> None:
    status = TogetherEndpointStatus(api=recorded, endpoint_id=endpoint_id)
    assert api_in_use(spec(api=spec_api), status, default) == expected


V1_STATUS = TogetherEndpointStatus(
    api=TogetherAPI.V1,
    endpoint_id="endpoint-1",
    endpoint_name=f"devuser/{MODEL}-bb04c904",
    state="STARTED",
    connection_config_map="chat-connection",
)
WITH_CONNECTION: dict[str, Any] = {"connection": {"configMapName": "chat-connection"}}


def publishes(plan: V2Plan) -> bool:
    return v2_connection_steps(spec(**WITH_CONNECTION), plan, INFERENCE).publish is not None


def test_a_migration_creates_the_v2_endpoint_and_deletes_the_v1_one_only_once_the_v2_one_serves() -> None:
    first = run(None, previous=V1_STATUS, target=None, **WITH_CONNECTION)
    assert first.action == CreateV2Endpoint("team-a-mixtral")
    assert (first.status.api, first.status.endpoint_id, first.status.create_requested_at) == (
        TogetherAPI.V2,
        None,
        NOW,
    )
    assert first.status.rollout == RolloutStatus(from_="endpoint-1", to="team-a-mixtral", phase="Creating")
    assert not publishes(first), "the connection keeps naming the v1 endpoint"

    walk: list[tuple[Endpoint, str, type | None, bool]] = [
        (endpoint(), "Creating", ResolveTarget, False),
        (endpoint(deployment("PROVISIONING"), routed=False), "Creating", SetTrafficSplit, False),
        (endpoint(deployment("PROVISIONING")), "WaitingReady", None, False),
        (endpoint(deployment("READY")), "RemovingOld", None, True),  # the ConfigMap is rewritten first
        (endpoint(deployment("READY")), "RemovingOld", None, True),  # applications get time to switch
    ]
    previous = first.status
    for remote, phase, action, published in walk:
        target = None if action is ResolveTarget else TARGET
        plan = run(remote, previous=previous, target=target, **WITH_CONNECTION)
        assert plan.status.rollout is not None
        assert plan.status.rollout.phase == phase
        assert (type(plan.action) if plan.action else None) is action
        assert publishes(plan) is published
        previous = plan.status
    later = NOW + CONNECTION_SWITCH_GRACE
    assert plan_v2(replace_inputs(previous, now=later)).action == RetireV1Endpoint("endpoint-1")
    waiting = plan_v2(replace_inputs(previous, now=later, v1_endpoint_gone=False))
    assert waiting.action is None
    assert conditions(waiting)[ConditionType.RECONCILING] == ("True", "Migrating")
    done = plan_v2(replace_inputs(waiting.status, now=later, v1_endpoint_gone=True))
    assert done.status.rollout is None
    assert conditions(done)[ConditionType.READY] == ("True", Reason.STARTED)


def replace_inputs(previous: TogetherEndpointStatus, **changes: Any) -> V2Inputs:
    base = V2Inputs(
        spec=spec(**WITH_CONNECTION),
        generation=1,
        namespace=NAMESPACE,
        name=NAME,
        previous=previous,
        now=NOW,
        project_id=PROJECT,
        endpoint=endpoint(deployment("READY")),
        target=TARGET,
    )
    return dataclasses.replace(base, **changes)


def test_a_migration_with_policy_orphan_leaves_the_v1_endpoint() -> None:
    migrating = V1_STATUS.model_copy(
        update={
            "api": TogetherAPI.V2,
            "endpoint_id": ENDPOINT_ID,
            "deployment_id": DEPLOYMENT_ID,
            "rollout": RolloutStatus(
                from_="endpoint-1",
                to="team-a-mixtral",
                phase="RemovingOld",
                since=NOW - CONNECTION_SWITCH_GRACE,
            ),
        }
    )
    plan = run(endpoint(deployment("READY")), previous=migrating, deletionPolicy="Orphan")
    assert plan.action is None
    assert plan.status.rollout is None


def test_deleting_a_resource_mid_migration_deletes_the_v2_side_and_then_the_v1_endpoint() -> None:
    """Before any v2 create the v1 endpoint still has to go: nothing is released without a call."""
    migrating = TogetherEndpointStatus(
        api=TogetherAPI.V2, rollout=RolloutStatus(from_="endpoint-1", to="team-a-mixtral", phase="Creating")
    )
    assert released_without_calls(spec(), migrating) is None
    step = plan_v2_deletion(V2DeletionInputs(spec=spec(), status=migrating, endpoint=None, now=NOW))
    assert step == V2Released("the v2 endpoint is gone")


def test_the_connection_config_map_names_the_v2_endpoint_and_the_inference_base() -> None:
    ready = run(endpoint(deployment()), connection={"configMapName": "chat-connection"})
    steps = v2_connection_steps(spec(connection={"configMapName": "chat-connection"}), ready, INFERENCE)
    assert steps.publish == "chat-connection"
    assert steps.data == {
        "TOGETHER_MODEL": "devproj/team-a-mixtral",
        "TOGETHER_BASE_URL": INFERENCE,
        "TOGETHER_ENDPOINT_ID": ENDPOINT_ID,
    }


def failed(
    error: TogetherError, action: V2Action | None, previous: TogetherEndpointStatus = CREATED
) -> V2Failure:
    inputs = V2Inputs(
        spec=spec(),
        generation=1,
        namespace=NAMESPACE,
        name=NAME,
        previous=previous,
        now=NOW,
        project_id=PROJECT,
        endpoint=None,
    )
    return plan_v2_failure(inputs, error, action, RetryPolicy())


def test_a_create_answered_409_is_name_taken_and_drops_the_intent() -> None:
    intent = TogetherEndpointStatus(create_requested_at=NOW)
    failure = failed(
        PermanentError("exists", status_code=409, **CALL),
        CreateV2Endpoint("team-a-mixtral"),
        intent,
    )
    assert failure.plan.status.create_requested_at is None, "the name found later is not taken for ours"
    assert conditions(failure.plan)[ConditionType.STALLED] == ("True", "NameTaken")


def test_a_create_without_a_verdict_keeps_the_intent_so_the_name_is_read_back() -> None:
    """The failure is planned from the status before the create: the intent must survive it."""
    failure = failed(
        TransientError("timeout", **CALL), CreateV2Endpoint("team-a-mixtral"), TogetherEndpointStatus()
    )
    assert failure.plan.status.create_requested_at == NOW
    assert conditions(failure.plan)[ConditionType.RECONCILING] == ("True", Reason.API_UNAVAILABLE)


@pytest.mark.parametrize(
    ("error", "reason", "stalled"),
    [
        (AuthError("no", status_code=401, **CALL), Reason.UNAUTHORIZED, True),
        (
            RateLimitedError("slow down", status_code=429, **CALL),
            Reason.RATE_LIMITED,
            False,
        ),
        (
            PermanentError("bad config", status_code=400, **CALL),
            Reason.INVALID_SPEC,
            True,
        ),
        (
            NotFoundError("gone", status_code=404, **CALL),
            Reason.API_UNAVAILABLE,
            False,
        ),  # read again
    ],
)
def test_failures_of_other_calls(error: TogetherError, reason: str, stalled: bool) -> None:
    failure = failed(
        error, SetV2Autoscaling(ENDPOINT_ID, DEPLOYMENT_ID, Autoscaling(min_replicas=0, max_replicas=0))
    )
    kind = ConditionType.STALLED if stalled else ConditionType.RECONCILING
    assert conditions(failure.plan)[kind] == ("True", reason)


def test_a_v1_endpoint_records_api_v1_once_it_has_an_id() -> None:
    assert plan(v1_inputs()).status.api == TogetherAPI.V1, "an endpoint found (created or adopted) is on v1"
    assert plan(v1_inputs(remote=NotCreated())).status.api is None, "nothing recorded before the create"


# --- the v2 scaling policy --------------------------------------------------------------------------

SCALING = {"metric": {"name": "ttft", "target": 500, "percentile": "p95"}, "scaleDownWindow": "1h30m"}


def test_the_scaling_policy_is_sent_in_the_apis_form() -> None:
    wanted = desired_autoscaling(spec(v2={"scaling": SCALING}))
    assert wanted.to_body() == {
        "minReplicas": 1,
        "maxReplicas": 1,
        "scaleDownWindow": "5400s",
        "scalingMetrics": [
            {"name": "ttft", "type": "METRIC_TARGET_TYPE_VALUE", "target": 500, "percentile": "p95"}
        ],
    }


def test_a_scaling_policy_changed_remotely_is_put_back_and_what_the_spec_leaves_out_is_the_platforms() -> (
    None
):
    wanted = desired_autoscaling(spec(v2={"scaling": SCALING}))
    remote = deployment()
    platform_defaults = remote.model_copy(
        update={"autoscaling": wanted.model_copy(update={"scale_up_window": "60s"})}
    )
    assert run(endpoint(platform_defaults), v2={"scaling": SCALING}).action is None
    changed = remote.model_copy(
        update={"autoscaling": wanted.model_copy(update={"scale_down_window": "60s"})}
    )
    plan = run(endpoint(changed), v2={"scaling": SCALING})
    assert plan.action == SetV2Autoscaling(ENDPOINT_ID, DEPLOYMENT_ID, wanted)


def test_the_availability_zone_is_the_one_region_the_deployment_may_run_in() -> None:
    plan = run(
        endpoint(), previous=CREATED.model_copy(update={"deployment_id": None}), availabilityZone="us-east-1a"
    )
    assert isinstance(plan.action, CreateV2Deployment)
    assert plan.action.request.to_body()["placement"] == {
        "inline": {"regions": ["us-east-1a"], "constraint": "ENFORCEMENT_REQUIRED"}
    }
    assert plan.action.request.name != DEPLOYMENT_NAME, "another zone is another deployment"


# --- adoption of an existing v2 endpoint by id (CONTRACT section 2) ---------------------------------

ADOPTED_ID = "ep_handmade"
OWN_KEY = {"apiKeySecretRef": {"name": "team-key"}}


def handmade(*deployments: DeploymentSummary) -> Endpoint:
    """An endpoint made outside Kubernetes, under a name of its own."""
    return endpoint(*deployments, endpoint_id=ADOPTED_ID).model_copy(update={"name": "devproj/chat"})


HANDMADE_DEPLOYMENT = deployment("READY", 1, 1, name="by-hand")
OUR_CLAIM = AdoptionClaim(holder=f"{NAMESPACE}/{NAME}", ours=True)


def adopt(
    remote: Endpoint | None,
    *,
    previous: TogetherEndpointStatus | None = None,
    spec_models: frozenset[str] | None = frozenset({"projects/platform/models/ml_mixtral"}),
    claim: AdoptionClaim | None = OUR_CLAIM,
    owned_by: str | None = None,
    target: DeploymentTarget = TARGET,
    label: bool = False,
    **spec_overrides: Any,
) -> V2Plan:
    return plan_v2(
        V2Inputs(
            spec=spec(**{"endpointId": ADOPTED_ID, **OWN_KEY, **spec_overrides}),
            generation=1,
            namespace=NAMESPACE,
            name=NAME,
            previous=previous or TogetherEndpointStatus(),
            now=NOW,
            project_id=PROJECT,
            endpoint=remote,
            target=target,
            spec_models=spec_models,
            endpoint_owned_by=owned_by,
            namespace_allows_adoption=label,
            adoption_claim=claim,
        )
    )


def test_adoption_reads_the_catalogue_then_claims_the_endpoint_before_recording_it() -> None:
    reading = adopt(handmade(HANDMADE_DEPLOYMENT), spec_models=None, claim=None)
    assert reading.action == ResolveTarget()
    claiming = adopt(handmade(HANDMADE_DEPLOYMENT), claim=None)
    assert claiming.action == ClaimEndpoint(ADOPTED_ID)
    for step in (reading, claiming):
        assert step.status.endpoint_id is None, "nothing is recorded before the claim is won"
        assert conditions(step)[ConditionType.RECONCILING] == ("True", V2Reason.ADOPTING)


def test_an_adopted_endpoint_running_the_spec_is_recorded_and_kept_as_it_is() -> None:
    plan = adopt(handmade(HANDMADE_DEPLOYMENT))
    assert plan.action is None, "its deployment already runs the spec's model on its hardware"
    status = plan.status
    assert (status.api, status.endpoint_id, status.endpoint_name, status.deployment_id) == (
        TogetherAPI.V2,
        ADOPTED_ID,
        "devproj/chat",
        DEPLOYMENT_ID,
    )
    assert conditions(plan)[ConditionType.READY] == ("True", Reason.STARTED)
    later = adopt(
        handmade(deployment("READY", 1, 1, name="by-hand")), previous=status, claim=None, spec_models=None
    )
    assert later.action is None, "once recorded it is ours: no catalogue read, no claim again"
    assert known_name(spec(endpointId=ADOPTED_ID), status, NAMESPACE, NAME) == "chat"


def test_an_adopted_endpoint_is_reconciled_as_our_own_from_then_on() -> None:
    adopted = adopt(handmade(HANDMADE_DEPLOYMENT)).status
    scaled = adopt(
        handmade(HANDMADE_DEPLOYMENT), previous=adopted, autoscaling={"minReplicas": 1, "maxReplicas": 3}
    )
    assert scaled.action == SetV2Autoscaling(
        ADOPTED_ID, DEPLOYMENT_ID, Autoscaling(min_replicas=1, max_replicas=3)
    )
    llama = DeploymentTarget(
        model="projects/platform/models/ml_llama/revisions/rv_1", config=CONFIG, hardware=None
    )
    other = adopt(
        handmade(HANDMADE_DEPLOYMENT), previous=adopted, target=llama, model="meta-llama/Llama-3.3-70B"
    )
    assert isinstance(other.action, CreateV2Deployment), "a model change is a rollout, not a refusal"
    assert other.status.rollout is not None
    assert other.status.rollout.from_ == DEPLOYMENT_ID


def test_an_adopted_deployment_on_other_hardware_rolls_out_with_the_traffic_kept_on_it() -> None:
    elsewhere = HANDMADE_DEPLOYMENT.model_copy(update={"hardware": "1xnvidia-a100-80gb"})
    plan = adopt(handmade(elsewhere))
    assert isinstance(plan.action, CreateV2Deployment)
    assert plan.action.request.name == DEPLOYMENT_NAME
    assert plan.status.deployment_id == DEPLOYMENT_ID, "the adopted deployment serves meanwhile"
    assert plan.status.rollout == RolloutStatus(from_=DEPLOYMENT_ID, to=DEPLOYMENT_NAME, phase="Creating")


OTHER_MODEL = HANDMADE_DEPLOYMENT.model_copy(
    update={"model": "projects/platform/models/ml_llama/revisions/rv_1"}
)


@pytest.mark.parametrize(
    ("remote", "overrides", "reason", "rule"),
    [
        (handmade(OTHER_MODEL), {}, Reason.ADOPTION_REFUSED, "adopted only by a resource of its model"),
        (
            handmade(HANDMADE_DEPLOYMENT),
            {"apiKeySecretRef": None},
            Reason.ADOPTION_REFUSED,
            "would be adopted with the operator-wide API key",
        ),
        (
            handmade(HANDMADE_DEPLOYMENT),
            {"owned_by": "team-b/chat"},
            Reason.ENDPOINT_OWNED_ELSEWHERE,
            "already managed by TogetherEndpoint team-b/chat",
        ),
        (
            handmade(HANDMADE_DEPLOYMENT),
            {"claim": AdoptionClaim(holder="team-b/chat", ours=False)},
            Reason.ENDPOINT_OWNED_ELSEWHERE,
            "already managed by TogetherEndpoint team-b/chat",
        ),
        (None, {}, V2Reason.ENDPOINT_NOT_FOUND, "is not an endpoint of project proj_1"),
    ],
    ids=["other-model", "operator-wide-key", "recorded-by-another", "claimed-by-another", "not-found"],
)
def test_a_refused_adoption_stalls_naming_the_rule_and_records_nothing_to_change(
    remote: Endpoint | None, overrides: dict[str, Any], reason: str, rule: str
) -> None:
    plan = adopt(remote, **overrides)
    assert plan.action is None, "no claim, scale, split or create"
    assert plan.status.endpoint_id is None, "so deletion never touches it either"
    assert conditions(plan)[ConditionType.STALLED] == ("True", reason)
    (event,) = plan.events
    assert (event.type, event.reason) == (EventType.WARNING, reason)
    assert rule in event.message
    assert isinstance(
        plan_v2_deletion(
            V2DeletionInputs(spec=spec(endpointId=ADOPTED_ID), status=plan.status, endpoint=remote, now=NOW)
        ),
        V2Released,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # its own key
        {"apiKeySecretRef": None, "label": True},
        {"apiKeySecretRef": None, "managementPolicy": "ObserveOnly"},
    ],
    ids=["own-key", "namespace-allows", "observe-only"],
)
def test_the_operator_wide_key_adopts_only_where_the_namespace_allows_or_for_observe_only(
    overrides: dict[str, Any],
) -> None:
    assert adopt(handmade(HANDMADE_DEPLOYMENT), **overrides).status.endpoint_id == ADOPTED_ID


def test_an_adopted_endpoint_whose_namespace_withdrew_consent_is_changed_no_more() -> None:
    adopted = adopt(handmade(HANDMADE_DEPLOYMENT), apiKeySecretRef=None, label=True).status
    plan = adopt(
        handmade(HANDMADE_DEPLOYMENT),
        previous=adopted,
        apiKeySecretRef=None,
        autoscaling={"minReplicas": 2, "maxReplicas": 2},
    )
    assert plan.action is None
    assert conditions(plan)[ConditionType.STALLED] == ("True", Reason.ADOPTION_REFUSED)
    deletion = V2DeletionInputs(
        spec=spec(endpointId=ADOPTED_ID), status=adopted, endpoint=handmade(HANDMADE_DEPLOYMENT), now=NOW
    )
    assert isinstance(plan_v2_deletion(deletion), V2Released), "left in place"
    consenting = dataclasses.replace(deletion, namespace_allows_adoption=True)
    assert isinstance(plan_v2_deletion(consenting), SetV2Autoscaling), "deleted in the platform's order"


def test_observe_only_adopts_and_only_mirrors() -> None:
    plan = adopt(handmade(deployment("STOPPED", 0, 0, name="by-hand")), managementPolicy="ObserveOnly")
    assert plan.action is None
    assert (plan.status.endpoint_id, plan.status.state) == (ADOPTED_ID, "STOPPED")
    assert conditions(plan)[ConditionType.READY] == ("True", Reason.OBSERVING)


def test_a_v1_endpoint_id_kept_through_a_migration_is_not_adopted_on_v2() -> None:
    assert adoption_id(spec(endpointId="endpoint-1")) is None
    assert adoption_id(spec(endpointId=ADOPTED_ID)) == ADOPTED_ID
    plan = run(None, previous=V1_STATUS, target=None, endpointId="endpoint-1")
    assert plan.action == CreateV2Endpoint("team-a-mixtral")


def test_the_models_spec_model_names_come_from_the_catalogue() -> None:
    assert models_named(spec(), CATALOGUE) == {"projects/platform/models/ml_mixtral"}
    assert models_named(spec(model="other/model"), CATALOGUE) == frozenset()
    resource = "projects/p/models/ml_x/revisions/rv_2"
    assert models_named(spec(model=resource), []) == {"projects/p/models/ml_x"}


def test_an_endpoint_id_added_after_the_resource_made_its_own_endpoint_changes_nothing() -> None:
    """As on v1, spec.endpointId adopts only while nothing is recorded; the endpoint the resource made
    stays its own, and is deleted with it whatever the namespace's consent."""
    later = run(endpoint(deployment()), endpointId=ADOPTED_ID)
    assert later.status.endpoint_id == ENDPOINT_ID
    assert conditions(later)[ConditionType.READY] == ("True", Reason.STARTED)
    deletion = V2DeletionInputs(
        spec=spec(endpointId=ADOPTED_ID), status=CREATED, endpoint=endpoint(deployment()), now=NOW
    )
    assert isinstance(plan_v2_deletion(deletion), SetV2Autoscaling)
