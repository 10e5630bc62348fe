"""The TogetherEndpoint CRD on a real kube-apiserver: what admission rejects, and what it accepts.

Every rule of docs/contract.md section 1 is exercised with a real create or update through kubectl, as a
user would meet it: each rejection must name the field (and, for our CEL rules, say what to do), and
the object must be left as it was. Every sample in deploy/samples/ is applied for real and read back
with the server's defaults, which must equal what the typed model in resource.py fills in.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.controlplane import ControlPlane
from together_operator.resource import (
    INT32_MAX,
    AutoStopRecord,
    Condition,
    ConditionType,
    ObservedAutoscaling,
    Pricing,
    RolloutStatus,
    ScheduleStatus,
    TogetherAPI,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)

pytestmark = [pytest.mark.controlplane, pytest.mark.usefixtures("together_crd")]

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO_ROOT / "deploy" / "samples").glob("togetherendpoint-*.yaml"))

MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
HARDWARE = "2x_nvidia_h100_80gb_sxm"
ENDPOINT_ID = "endpoint-e6c6b82f-90f7-45b7-af39-3ca3b51d08a1"
V2_ENDPOINT_ID = "ep_3ca3b51d08a1e6c6b82f"
BASE: dict[str, Any] = {"model": MODEL, "hardware": HARDWARE}
GPU: dict[str, Any] = {"model": MODEL, "gpu": {"type": "h100", "count": 2}}
V1: dict[str, Any] = {**BASE, "api": "v1"}
V2: dict[str, Any] = {**BASE, "api": "v2"}
V2_HARDWARE = "2xnvidia-h100-80gb"


def _manifest(name: str, spec: dict[str, Any]) -> str:
    obj = {"apiVersion": "together.ai/v1alpha1", "kind": "TogetherEndpoint", "metadata": {"name": name}}
    if spec:
        obj["spec"] = spec
    return json.dumps(obj)


def _get(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    out = cp.kubectl("get", "togetherendpoint", name, "-n", namespace, "-o", "json").stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def _exists(cp: ControlPlane, namespace: str, name: str) -> bool:
    proc = cp.kubectl("get", "togetherendpoint", name, "-n", namespace, "--ignore-not-found", "-o", "name")
    return bool(proc.stdout.strip())


# ------------------------------------------------------------------------------------------------
# rejected: one case per rule


@dataclass(frozen=True)
class Rejected:
    id: str
    spec: dict[str, Any]
    """Created as is; with `patch`, it must be valid and the patch is what gets rejected."""
    expect: tuple[str, ...]
    """Substrings of kubectl's error: the field path first, then the hint."""
    patch: dict[str, Any] | None = field(default=None)


CREATE_CASES = [
    Rejected("missing-model", {"hardware": HARDWARE}, ("spec.model", "Required value")),
    Rejected("empty-model", {**BASE, "model": ""}, ("spec.model", "at least 1 chars long")),
    Rejected("model-too-long", {**BASE, "model": "m" * 257}, ("spec.model", "Too long")),
    Rejected("hardware-bad-pattern", {**BASE, "hardware": "h100x2"}, ("spec.hardware", "should match")),
    Rejected("hardware-zero-gpus", {**BASE, "hardware": "0x_nvidia_h100"}, ("spec.hardware", "should match")),
    Rejected(
        "both-hardware-and-gpu",
        {**BASE, "gpu": {"type": "h100", "count": 2}},
        (
            "spec.gpu: Forbidden",
            "hardware and gpu are mutually exclusive: set spec.hardware or spec.gpu, not both",
        ),
    ),
    Rejected(
        "neither-hardware-nor-gpu",
        {"model": MODEL},
        ("spec.hardware", "hardware or gpu is required: set spec.hardware"),
    ),
    Rejected(
        "gpu-without-count", {"model": MODEL, "gpu": {"type": "h100"}}, ("spec.gpu.count", "Required value")
    ),
    Rejected(
        "gpu-count-wrong-type",
        {"model": MODEL, "gpu": {"type": "h100", "count": "two"}},
        ("spec.gpu.count", "must be of type integer"),
    ),
    Rejected(
        "gpu-type-uppercase",
        {"model": MODEL, "gpu": {"type": "H100", "count": 2}},
        ("spec.gpu.type", "should match"),
    ),
    Rejected(
        "min-replicas-zero",
        {**BASE, "autoscaling": {"minReplicas": 0}},
        ("spec.autoscaling.minReplicas", "greater than or equal to 1"),
    ),
    Rejected(
        "min-above-max",
        {**BASE, "autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
        (
            "spec.autoscaling",
            "autoscaling.minReplicas must not exceed autoscaling.maxReplicas: lower minReplicas",
        ),
    ),
    Rejected(
        "min-above-defaulted-max",
        {**BASE, "autoscaling": {"minReplicas": 2}},
        (
            "spec.autoscaling",
            "autoscaling.minReplicas must not exceed autoscaling.maxReplicas: lower minReplicas",
        ),
    ),
    Rejected("state-bad-enum", {**BASE, "state": "Running"}, ("spec.state", 'supported values: "Started"')),
    Rejected(
        "deletion-policy-bad-enum", {**BASE, "deletionPolicy": "Retain"}, ("spec.deletionPolicy", '"Orphan"')
    ),
    Rejected(
        "management-policy-bad-enum",
        {**BASE, "managementPolicy": "Paused"},
        ("spec.managementPolicy", '"ObserveOnly"'),
    ),
    Rejected(
        "negative-inactive-timeout",
        {**BASE, "inactiveTimeout": -1},
        ("spec.inactiveTimeout", "greater than or equal to 0"),
    ),
    Rejected(
        "gpu-count-above-int32",
        {"model": MODEL, "gpu": {"type": "h100", "count": INT32_MAX + 1}},
        ("spec.gpu.count", "less than or equal to 2147483647"),
    ),
    Rejected(
        "max-replicas-above-int32",
        {**BASE, "autoscaling": {"minReplicas": 1, "maxReplicas": INT32_MAX + 1}},
        ("spec.autoscaling.maxReplicas", "less than or equal to 2147483647"),
    ),
    Rejected(
        "min-replicas-above-int32",
        {**BASE, "autoscaling": {"minReplicas": INT32_MAX + 1, "maxReplicas": INT32_MAX}},
        ("spec.autoscaling.minReplicas", "less than or equal to 2147483647"),
    ),
    Rejected(
        "inactive-timeout-above-int32",
        {**BASE, "inactiveTimeout": INT32_MAX + 1},
        ("spec.inactiveTimeout", "less than or equal to 2147483647"),
    ),
    Rejected(
        "speculative-decoding-wrong-type",
        {**BASE, "speculativeDecoding": "yes"},
        ("spec.speculativeDecoding", "must be of type boolean"),
    ),
    Rejected(
        "availability-zone-bad-pattern",
        {**BASE, "availabilityZone": "US East 1"},
        ("spec.availabilityZone", "should match"),
    ),
    Rejected(
        "endpoint-id-without-prefix",
        {**BASE, "endpointId": "e6c6b82f-90f7-45b7-af39-3ca3b51d08a1"},
        ("spec.endpointId", "should match '^(endpoint-|ep_)"),
    ),
    Rejected(
        "v2-endpoint-id-with-api-omitted",
        {**BASE, "endpointId": V2_ENDPOINT_ID},
        ("spec.endpointId", "endpointId ep_... is a v2 endpoint id: set spec.api to v2"),
    ),
    Rejected(
        "v2-endpoint-id-on-v1",
        {**V1, "endpointId": V2_ENDPOINT_ID},
        ("spec.endpointId", "endpointId ep_... is a v2 endpoint id: set spec.api to v2"),
    ),
    Rejected(
        "v1-endpoint-id-on-v2",
        {**V2, "endpointId": ENDPOINT_ID},
        ("spec.endpointId", "endpointId endpoint-... is a v1 endpoint id: on api v2 adopt a v2 endpoint"),
    ),
    Rejected(
        "v2-endpoint-id-with-an-endpoint-name",
        {**V2, "endpointId": V2_ENDPOINT_ID, "v2": {"endpointName": "mixtral"}},
        ("spec.v2.endpointName", "the adopted endpoint keeps its own name"),
    ),
    Rejected(
        "observe-only-without-endpoint-id",
        {**BASE, "managementPolicy": "ObserveOnly"},
        ("spec.endpointId", "endpointId is required with managementPolicy ObserveOnly: set spec.endpointId"),
    ),
    Rejected(
        "secret-ref-without-name",
        {**BASE, "apiKeySecretRef": {"key": "token"}},
        ("spec.apiKeySecretRef.name", "Required value"),
    ),
    Rejected(
        "config-map-name-not-dns",
        {**BASE, "connection": {"configMapName": "My_Config"}},
        ("spec.connection.configMapName", "should match"),
    ),
    Rejected("unknown-spec-field", {**BASE, "replicas": 2}, ('unknown field "spec.replicas"',)),
    Rejected("api-bad-enum", {**BASE, "api": "v3"}, ("spec.api", 'supported values: "v1", "v2"')),
    Rejected(
        "v2-settings-without-api",
        {**BASE, "v2": {"endpointName": "mixtral"}},
        ("spec.v2: Forbidden", "v2 is only for the v2 API: set spec.api to v2, or remove spec.v2"),
    ),
    Rejected(
        "v2-settings-on-v1",
        {**V1, "v2": {"config": "projects/p/configs/cr_1"}},
        ("spec.v2: Forbidden", "v2 is only for the v2 API"),
    ),
    Rejected(
        "prompt-cache-on-v2",
        {**V2, "promptCache": False},
        (
            "spec.promptCache: Forbidden",
            "promptCache is v1 only (and ignored there): remove spec.promptCache",
        ),
    ),
    Rejected(
        "inactive-timeout-outside-the-v2-range",
        {**V2, "inactiveTimeout": 10},
        ("spec.inactiveTimeout", "inactiveTimeout on api v2 must be 0 or between 30 and 1440 minutes"),
    ),
    Rejected(
        "v2-hardware-form-on-v1",
        {**BASE, "hardware": V2_HARDWARE},
        ("spec.hardware", "hardware in the v2 form (e.g. 2xnvidia-h100-80gb) needs api v2"),
    ),
    Rejected(
        "v2-endpoint-name-not-dns",
        {**V2, "v2": {"endpointName": "Mixtral_1"}},
        ("spec.v2.endpointName", "should match"),
    ),
    Rejected(
        "v2-config-not-a-config-revision",
        {**V2, "v2": {"config": "cr_123"}},
        ("spec.v2.config", "should match"),
    ),
    Rejected(
        "v2-scaling-unknown-metric",
        {**V2, "v2": {"scaling": {"metric": {"name": "qps", "target": 5}}}},
        ("spec.v2.scaling.metric.name", '"inflight_requests"'),
    ),
    Rejected(
        "v2-scaling-window-not-a-duration",
        {**V2, "v2": {"scaling": {"scaleDownWindow": "five minutes"}}},
        ("spec.v2.scaling.scaleDownWindow", "should match"),
    ),
    Rejected(
        "v2-observe-only-without-a-name",
        {**V2, "managementPolicy": "ObserveOnly"},
        ("spec.endpointId", "on api v2: spec.v2.endpointName"),
    ),
]

IMMUTABLE = "create a new TogetherEndpoint"
UPDATE_CASES = [
    Rejected(
        "change-model",
        BASE,
        ("spec.model", "model is immutable on api v1: " + IMMUTABLE),
        patch={"model": "meta-llama/Llama-3.3-70B-Instruct-Turbo"},
    ),
    Rejected(
        "change-hardware",
        BASE,
        ("spec.hardware", "hardware is immutable", IMMUTABLE),
        patch={"hardware": "4x_nvidia_h100_80gb_sxm"},
    ),
    Rejected(
        "hardware-to-gpu",
        BASE,
        ("spec.hardware", "hardware is immutable", "spec.gpu", "gpu is immutable"),
        patch={"hardware": None, "gpu": {"type": "h100", "count": 2}},
    ),
    Rejected(
        "change-gpu-count",
        GPU,
        ("spec.gpu", "gpu is immutable", IMMUTABLE),
        patch={"gpu": {"count": 4}},
    ),
    Rejected(
        "gpu-to-hardware",
        GPU,
        ("spec.gpu", "gpu is immutable", "spec.hardware", "hardware is immutable"),
        patch={"gpu": None, "hardware": HARDWARE},
    ),
    Rejected(
        "add-availability-zone",
        BASE,
        ("spec.availabilityZone", "availabilityZone is immutable", IMMUTABLE),
        patch={"availabilityZone": "us-east-1a"},
    ),
    Rejected(
        "change-availability-zone",
        {**BASE, "availabilityZone": "us-central-4b"},
        ("spec.availabilityZone", "availabilityZone is immutable", IMMUTABLE),
        patch={"availabilityZone": "us-east-1a"},
    ),
    Rejected(
        "remove-availability-zone",
        {**BASE, "availabilityZone": "us-central-4b"},
        ("spec.availabilityZone", "availabilityZone is immutable", IMMUTABLE),
        patch={"availabilityZone": None},
    ),
    Rejected(
        "enable-speculative-decoding",
        BASE,
        ("spec.speculativeDecoding", "speculativeDecoding is immutable on api v1: " + IMMUTABLE),
        patch={"speculativeDecoding": True},
    ),
    Rejected(
        "remove-speculative-decoding-true",  # removing it defaults it back to false: a change
        {**BASE, "speculativeDecoding": True},
        ("spec.speculativeDecoding", "speculativeDecoding is immutable"),
        patch={"speculativeDecoding": None},
    ),
    Rejected(
        "change-endpoint-id",
        {**BASE, "endpointId": ENDPOINT_ID},
        ("spec.endpointId", "endpointId cannot be changed or removed once set", IMMUTABLE),
        patch={"endpointId": "endpoint-00000000-0000-0000-0000-000000000000"},
    ),
    Rejected(
        "remove-endpoint-id",
        {**BASE, "endpointId": ENDPOINT_ID},
        ("spec.endpointId", "endpointId cannot be changed or removed once set"),
        patch={"endpointId": None},
    ),
    Rejected(
        "change-v2-endpoint-id",
        {**V2, "endpointId": V2_ENDPOINT_ID},
        ("spec.endpointId", "endpointId cannot be changed or removed once set", IMMUTABLE),
        patch={"endpointId": "ep_0000000000"},
    ),
    Rejected(
        "v1-endpoint-id-added-on-v2",
        V2,
        ("spec.endpointId", "endpointId endpoint-... is a v1 endpoint id"),
        patch={"endpointId": ENDPOINT_ID},
    ),
    Rejected(
        "v1-endpoint-id-added-with-a-migration",
        BASE,
        ("spec.endpointId", "endpointId endpoint-... is a v1 endpoint id"),
        patch={"api": "v2", "hardware": V2_HARDWARE, "endpointId": ENDPOINT_ID},
    ),
    Rejected(
        "observe-only-without-endpoint-id-on-update",
        BASE,
        ("spec.endpointId", "endpointId is required with managementPolicy ObserveOnly"),
        patch={"managementPolicy": "ObserveOnly"},
    ),
    Rejected(
        "change-model-on-explicit-v1",
        V1,
        ("spec.model", "model is immutable on api v1: " + IMMUTABLE),
        patch={"model": "meta-llama/Llama-3.3-70B-Instruct-Turbo"},
    ),
    Rejected(
        "api-back-from-v2-to-v1",
        V2,
        ("spec.api", "api can change only from v1 to v2 (a migration), never back"),
        patch={"api": "v1"},
    ),
    Rejected(
        "api-removed",
        V2,
        ("spec.api", "api cannot be removed once set"),
        patch={"api": None},
    ),
    Rejected(
        "v2-endpoint-name-changed",
        {**V2, "v2": {"endpointName": "mixtral"}},
        ("spec.v2.endpointName", "v2.endpointName is immutable"),
        patch={"v2": {"endpointName": "mixtral-2"}},
    ),
    Rejected(
        "v2-endpoint-name-added-after-create",  # the endpoint already carries the default name
        V2,
        ("spec.v2.endpointName", "v2.endpointName is immutable"),
        patch={"v2": {"endpointName": "mixtral"}},
    ),
    Rejected(
        "v2-endpoint-name-removed",
        {**V2, "v2": {"endpointName": "mixtral"}},
        ("spec.v2.endpointName", "v2.endpointName is immutable"),
        patch={"v2": None},
    ),
    Rejected(
        "raise-max-replicas-above-int32",
        BASE,
        ("spec.autoscaling.maxReplicas", "less than or equal to 2147483647"),
        patch={"autoscaling": {"maxReplicas": INT32_MAX + 1}},
    ),
    Rejected(
        "raise-min-above-max",
        {**BASE, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}},
        (
            "spec.autoscaling",
            "autoscaling.minReplicas must not exceed autoscaling.maxReplicas: lower minReplicas",
        ),
        patch={"autoscaling": {"minReplicas": 3}},
    ),
]


@pytest.mark.parametrize("case", CREATE_CASES, ids=lambda c: c.id)
def test_invalid_create_is_rejected_naming_the_field(
    control_plane: ControlPlane, namespace: str, case: Rejected
) -> None:
    proc = control_plane.kubectl(
        "create", "-n", namespace, "-f", "-", input=_manifest(case.id, case.spec), check=False
    )
    assert proc.returncode != 0, f"accepted: {proc.stdout}"
    for text in case.expect:
        assert text in proc.stderr
    assert not _exists(control_plane, namespace, case.id)


@pytest.mark.parametrize("case", UPDATE_CASES, ids=lambda c: c.id)
def test_invalid_update_is_rejected_naming_the_field(
    control_plane: ControlPlane, namespace: str, case: Rejected
) -> None:
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest(case.id, case.spec))
    before = _get(control_plane, namespace, case.id)
    proc = control_plane.kubectl(
        "patch",
        "togetherendpoint",
        case.id,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": case.patch}),
        check=False,
    )
    assert proc.returncode != 0, f"accepted: {proc.stdout}"
    for text in case.expect:
        assert text in proc.stderr
    after = _get(control_plane, namespace, case.id)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_rejection_lists_every_violation_at_once(control_plane: ControlPlane, namespace: str) -> None:
    """A user fixing a manifest sees all problems in one go, each with its field."""
    spec = {"model": "", "hardware": "bad", "state": "On", "autoscaling": {"minReplicas": 0}}
    proc = control_plane.kubectl(
        "create", "-n", namespace, "-f", "-", input=_manifest("m", spec), check=False
    )
    assert proc.returncode != 0
    for path in ("spec.model", "spec.hardware", "spec.state", "spec.autoscaling.minReplicas"):
        assert path in proc.stderr


# ------------------------------------------------------------------------------------------------
# accepted


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_is_accepted_with_the_model_defaults(
    control_plane: ControlPlane, namespace: str, path: Path
) -> None:
    sample = yaml.safe_load(path.read_text())
    control_plane.kubectl(
        "apply", "--server-side", "--field-manager=samples", "-n", namespace, "-f", str(path)
    )
    stored = _get(control_plane, namespace, sample["metadata"]["name"])
    expected = TogetherEndpointSpec.model_validate(sample["spec"]).model_dump(mode="json", exclude_none=True)
    assert stored["spec"] == expected
    assert stored["metadata"]["generation"] == 1


def test_integers_up_to_int32_max_are_accepted(control_plane: ControlPlane, namespace: str) -> None:
    spec = {
        "model": MODEL,
        "gpu": {"type": "h100", "count": INT32_MAX},
        "autoscaling": {"minReplicas": INT32_MAX, "maxReplicas": INT32_MAX},
        "inactiveTimeout": INT32_MAX,
    }
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest("largest", spec))
    stored = _get(control_plane, namespace, "largest")["spec"]
    assert {key: stored[key] for key in spec} == spec
    assert TogetherEndpointSpec.model_validate(stored).inactive_timeout == INT32_MAX, "the operator reads it"


def test_status_integers_above_int32_are_rejected(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest("ep", BASE))
    patch = {
        "status": {
            "autoscaling": {"minReplicas": 1, "maxReplicas": INT32_MAX + 1},
            "observedGeneration": INT32_MAX + 1,
        }
    }
    proc = control_plane.kubectl(
        "patch",
        "tep",
        "ep",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
        check=False,
    )
    assert proc.returncode != 0, f"accepted: {proc.stdout}"
    for path in ("status.autoscaling.maxReplicas", "status.observedGeneration"):
        assert f"{path}: Invalid value: 2147483648" in proc.stderr
    assert proc.stderr.count("should be less than or equal to 2147483647") == 2
    assert "status" not in _get(control_plane, namespace, "ep")


def test_minimal_sample_gets_the_contract_defaults(control_plane: ControlPlane, namespace: str) -> None:
    path = REPO_ROOT / "deploy" / "samples" / "togetherendpoint-minimal.yaml"
    control_plane.kubectl("apply", "--server-side", "-n", namespace, "-f", str(path))
    spec = _get(control_plane, namespace, "mixtral")["spec"]
    assert spec == {
        "model": MODEL,
        "hardware": HARDWARE,
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
        "state": "Started",
        "speculativeDecoding": False,
        "deletionPolicy": "Delete",
        "managementPolicy": "Full",
    }


def test_mutable_fields_can_change_and_endpoint_id_can_be_added(
    control_plane: ControlPlane, namespace: str
) -> None:
    spec = {**BASE, "availabilityZone": "us-central-4b", "speculativeDecoding": True}
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest("ep", spec))
    changes: list[dict[str, Any]] = [
        {"displayName": "Renamed", "autoscaling": {"minReplicas": 2, "maxReplicas": 4}},
        {"state": "Stopped", "inactiveTimeout": 0},
        {"inactiveTimeout": 60, "promptCache": False},
        {"deletionPolicy": "Orphan", "apiKeySecretRef": {"name": "team-key"}},
        {"connection": {"configMapName": "ep-connection"}},
        # set once: adding it later is allowed (to adopt after a CreateIncomplete stall) ...
        {"endpointId": ENDPOINT_ID},
        # ... and with it, observing only
        {"managementPolicy": "ObserveOnly"},
        {"displayName": None, "connection": None, "apiKeySecretRef": None, "managementPolicy": "Full"},
    ]
    for change in changes:
        control_plane.kubectl(
            "patch", "tep", "ep", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": change})
        )
    stored = _get(control_plane, namespace, "ep")
    assert stored["metadata"]["generation"] == 1 + len(changes)
    assert stored["spec"] == {
        **spec,
        "autoscaling": {"minReplicas": 2, "maxReplicas": 4},
        "state": "Stopped",
        "inactiveTimeout": 60,
        "promptCache": False,
        "deletionPolicy": "Orphan",
        "managementPolicy": "Full",
        "endpointId": ENDPOINT_ID,
    }


@pytest.mark.parametrize(
    "spec",
    [
        {**V2, "endpointId": V2_ENDPOINT_ID},
        {**V2, "endpointId": V2_ENDPOINT_ID, "managementPolicy": "ObserveOnly"},
        {**V2, "endpointId": V2_ENDPOINT_ID, "v2": {"config": "projects/p/configs/cr_1"}},
    ],
    ids=["full", "observe-only", "with-v2-settings"],
)
def test_a_v2_resource_adopts_by_a_v2_endpoint_id(
    control_plane: ControlPlane, namespace: str, spec: dict[str, Any]
) -> None:
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest("ep", spec))
    assert _get(control_plane, namespace, "ep")["spec"]["endpointId"] == V2_ENDPOINT_ID


def test_a_v2_endpoint_id_can_be_added_later_once(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest("ep", V2))
    patch = json.dumps({"spec": {"endpointId": V2_ENDPOINT_ID}})
    control_plane.kubectl("patch", "tep", "ep", "-n", namespace, "--type=merge", "-p", patch)
    assert _get(control_plane, namespace, "ep")["spec"]["endpointId"] == V2_ENDPOINT_ID


def test_a_v1_resource_that_adopted_keeps_its_endpoint_id_through_a_migration(
    control_plane: ControlPlane, namespace: str
) -> None:
    """The v1 id stays (set once) on the migrated resource, and later updates still pass."""
    control_plane.kubectl(
        "create", "-n", namespace, "-f", "-", input=_manifest("ep", {**BASE, "endpointId": ENDPOINT_ID})
    )
    for change in ({"api": "v2", "hardware": V2_HARDWARE}, {"autoscaling": {"maxReplicas": 2}}):
        control_plane.kubectl(
            "patch", "tep", "ep", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": change})
        )
    stored = _get(control_plane, namespace, "ep")
    assert (stored["spec"]["api"], stored["spec"]["endpointId"]) == ("v2", ENDPOINT_ID)
    assert stored["metadata"]["generation"] == 3


def test_v2_fields_fixed_on_v1_change_as_a_rollout(control_plane: ControlPlane, namespace: str) -> None:
    spec = {**V2, "v2": {"endpointName": "mixtral"}, "inactiveTimeout": 30}
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest("ep", spec))
    change = {
        "model": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "hardware": V2_HARDWARE,
        "availabilityZone": "us-central-4b",
        "speculativeDecoding": True,
        "v2": {"config": "projects/p/configs/cr_1", "scaling": {"metric": {"name": "ttft", "target": 0.5}}},
        "inactiveTimeout": 0,
    }
    control_plane.kubectl(
        "patch", "tep", "ep", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": change})
    )
    stored = _get(control_plane, namespace, "ep")["spec"]
    assert stored["model"] == change["model"]
    assert stored["hardware"] == V2_HARDWARE
    assert stored["v2"] == {
        "endpointName": "mixtral",
        "config": "projects/p/configs/cr_1",
        "scaling": {"metric": {"name": "ttft", "target": 0.5}},
    }


@pytest.mark.parametrize("start", [BASE, V1], ids=["api-omitted", "api-v1"])
def test_migration_to_v2_may_change_the_v1_fields_in_the_same_update(
    control_plane: ControlPlane, namespace: str, start: dict[str, Any]
) -> None:
    control_plane.kubectl(
        "create", "-n", namespace, "-f", "-", input=_manifest("ep", {**start, "promptCache": True})
    )
    change = {"api": "v2", "hardware": V2_HARDWARE, "promptCache": None, "v2": {"endpointName": "mixtral"}}
    control_plane.kubectl(
        "patch", "tep", "ep", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": change})
    )
    stored = _get(control_plane, namespace, "ep")["spec"]
    assert (stored["api"], stored["hardware"], stored["v2"]) == (
        "v2",
        V2_HARDWARE,
        {"endpointName": "mixtral"},
    )
    assert "promptCache" not in stored


def test_reapplying_an_unchanged_manifest_passes_the_transition_rules(
    control_plane: ControlPlane, namespace: str
) -> None:
    """Immutable fields that are present but unchanged (and defaults filled in) are not a change."""
    spec = {**GPU, "availabilityZone": "us-east-1a", "endpointId": ENDPOINT_ID, "speculativeDecoding": True}
    manifest = _manifest("same", spec)
    for _ in range(2):
        control_plane.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=manifest)
    control_plane.kubectl("label", "tep", "same", "-n", namespace, "team=research")  # a metadata-only update
    assert _get(control_plane, namespace, "same")["metadata"]["generation"] == 1


# ------------------------------------------------------------------------------------------------
# status subresource and printer columns


def _status(now: dt.datetime) -> TogetherEndpointStatus:
    """A status as the operator writes it, built with the typed model."""
    conditions = tuple(
        Condition(
            type=kind,
            status=value,
            reason=reason,
            message="",
            observed_generation=1,
            last_transition_time=now,
        )
        for kind, value, reason in (
            (ConditionType.READY, "True", "Started"),
            (ConditionType.SERVING, "True", "Started"),
            (ConditionType.RECONCILING, "False", "Reconciled"),
            (ConditionType.STALLED, "False", "NotStalled"),
        )
    )
    return TogetherEndpointStatus(
        endpoint_id=ENDPOINT_ID,
        endpoint_name=f"devuser/{MODEL}-bb04c904",
        state="STARTED",
        hardware=HARDWARE,
        autoscaling=ObservedAutoscaling(min_replicas=1, max_replicas=1),
        display_name="ns/mixtral",
        created_at=now,
        create_requested_at=now,
        inactive_timeout=60,
        auto_stopped=AutoStopRecord(generation=1, restart_requested_at="2026-01-01T00:00:00Z"),
        pricing=Pricing(
            per_replica_hour="6.72", min_hourly="6.72", max_hourly="13.44", hourly_range="6.72-13.44"
        ),
        schedule=ScheduleStatus(active=True, next_transition=now),
        observed_generation=1,
        last_sync_time=now,
        conditions=conditions,
    )


def test_status_from_the_model_round_trips_and_fills_the_columns(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest("mixtral", BASE))
    now = dt.datetime(2026, 2, 18, 11, 55, 50, 686000, tzinfo=dt.UTC)
    status = _status(now)
    patch = {"status": {**status.to_patch(), "kopf": {"progress": {"handler": {"retries": 1}}}}}
    control_plane.kubectl(
        "patch",
        "tep",
        "mixtral",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )
    stored = _get(control_plane, namespace, "mixtral")
    assert TogetherEndpointStatus.model_validate(stored["status"]) == status
    assert stored["status"]["kopf"] == {"progress": {"handler": {"retries": 1}}}
    assert stored["metadata"]["generation"] == 1, "a status write is not a spec change"

    table = control_plane.kubectl("get", "tep", "-n", namespace).stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "MODEL",
        "HARDWARE",
        "DESIRED",
        "STATE",
        "READY",
        "ENDPOINT",
        "$/H",
        "AGE",
    ]
    row = table[1].split()
    assert row[:8] == [
        "mixtral",
        MODEL,
        HARDWARE,
        "Started",
        "STARTED",
        "True",
        f"devuser/{MODEL}-bb04c904",
        "6.72-13.44",
    ]


def test_v2_status_from_the_model_round_trips(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest("mixtral", V2))
    status = TogetherEndpointStatus(
        api=TogetherAPI.V2,
        endpoint_id="ep_0123",
        endpoint_name="devuser/mixtral",
        project_id="proj_1",
        deployment_id="dep_0456",
        state="PROVISIONING",
        hardware=V2_HARDWARE,
        ready_replicas=0,
        desired_replicas=1,
        message="waiting for capacity",
        rollout=RolloutStatus(from_="dep_0123", to="mixtral-3f2a", phase="WaitingReady"),
        observed_generation=1,
    )
    control_plane.kubectl(
        "patch",
        "tep",
        "mixtral",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status.to_patch()}),
    )
    stored = _get(control_plane, namespace, "mixtral")
    assert stored["status"]["rollout"] == {"from": "dep_0123", "to": "mixtral-3f2a", "phase": "WaitingReady"}
    assert TogetherEndpointStatus.model_validate(stored["status"]) == status


def test_spec_cannot_be_changed_through_the_status_subresource(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest("ep", BASE))
    patch = {"spec": {"state": "Stopped"}, "status": {"state": "PENDING"}}
    control_plane.kubectl(
        "patch", "tep", "ep", "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(patch)
    )
    stored = _get(control_plane, namespace, "ep")
    assert stored["spec"]["state"] == "Started"
    assert stored["status"]["state"] == "PENDING"


def test_short_name_and_category(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=_manifest("ep", BASE))
    for resource in ("tep", "together", "togetherendpoints.together.ai"):
        names = control_plane.kubectl("get", resource, "-n", namespace, "-o", "name").stdout.split()
        assert names == ["togetherendpoint.together.ai/ep"]


# ------------------------------------------------------------------------------------------------
# kubectl explain serves the descriptions


def _explain(cp: ControlPlane, path: str) -> str:
    """`kubectl explain`, retried while the API server publishes the CRD's OpenAPI (asynchronous)."""
    deadline = time.monotonic() + 60
    while True:
        proc = cp.kubectl("explain", path, check=False)
        if proc.returncode == 0 or time.monotonic() > deadline:
            assert proc.returncode == 0, proc.stderr
            return proc.stdout
        time.sleep(1)


def test_kubectl_explain_documents_every_spec_field(control_plane: ControlPlane) -> None:
    out = _explain(control_plane, "togetherendpoint.spec")
    for name in TogetherEndpointSpec.model_fields.values():
        assert f"{name.alias}\t" in out or f"{name.alias} " in out, name.alias
    assert "Immutable" in out
    assert "2x_nvidia_h100_80gb_sxm" in out


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("tep.spec.promptCache", "Deprecated: accepted and ignored."),
        ("tep.spec.endpointId", "Set once: it can be given at creation or added later"),
        ("tep.spec.gpu.type", "The GPU model in lowercase"),
        ("tep.status.endpointName", "what clients send as `model`"),
    ],
)
def test_kubectl_explain_field_descriptions(control_plane: ControlPlane, path: str, text: str) -> None:
    words = " ".join(_explain(control_plane, path).split())  # kubectl wraps long lines
    assert text in words
