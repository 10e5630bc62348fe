"""The CRD as data: it agrees with the typed model in resource.py and with docs/contract.md section 1.

No API server here (tests/integration/test_crd_admission.py applies the rules for real): these tests
catch drift between crds/togetherendpoints.together.ai.yaml and together_operator.resource the moment
either changes.
"""

from __future__ import annotations

import re
import types
import typing
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from together_operator import resource
from together_operator.resource import (
    Condition,
    DeletionPolicy,
    DesiredState,
    ManagementPolicy,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = REPO_ROOT / "crds" / "togetherendpoints.together.ai.yaml"
SAMPLES_DIR = REPO_ROOT / "deploy" / "samples"

Schema = dict[str, Any]


def _load_crd() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(CRD_PATH.read_text()) if d is not None]
    assert len(docs) == 1, "the CRD file holds exactly one document"
    crd: dict[str, Any] = docs[0]
    return crd


CRD = _load_crd()
VERSION: dict[str, Any] = CRD["spec"]["versions"][0]
ROOT: Schema = VERSION["schema"]["openAPIV3Schema"]
SPEC: Schema = ROOT["properties"]["spec"]
STATUS: Schema = ROOT["properties"]["status"]


# ------------------------------------------------------------------------------------------------
# helpers


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X`, `X | None` or `tuple[X, ...]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) in (typing.Union, tuple):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def _aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def _schema_of_items(schema: Schema) -> Schema:
    items: Schema = schema["items"] if schema.get("type") == "array" else schema
    return items


def _compare_fields(model: type[BaseModel], schema: Schema, path: str, extra: frozenset[str]) -> list[str]:
    """Differences between a pydantic model's aliases and an object schema's properties, recursively."""
    props: dict[str, Schema] = schema.get("properties", {})
    problems: list[str] = []
    want, have = _aliases(model), set(props) - extra
    if want != have:
        problems.append(f"{path}: model has {sorted(want - have)} not in CRD, CRD has {sorted(have - want)}")
    for name, field in model.model_fields.items():
        alias = field.alias or name
        nested = _nested_model(field.annotation)
        if nested is not None and alias in props:
            problems += _compare_fields(
                nested, _schema_of_items(props[alias]), f"{path}.{alias}", frozenset()
            )
    return problems


def _required_aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items() if field.is_required()}


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Structural defaulting as the API server does it: a missing property with a `default` gets it,
    then defaults inside that value apply too (so `default: {}` fills the nested defaults)."""
    if schema.get("type") == "object" and isinstance(value, dict):
        out = dict(value)
        for name, prop in schema.get("properties", {}).items():
            if name not in out and "default" in prop:
                out[name] = prop["default"]
            if name in out:
                out[name] = apply_defaults(prop, out[name])
        return out
    if schema.get("type") == "array" and isinstance(value, list):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _walk(schema: Schema, path: str = "") -> typing.Iterator[tuple[str, Schema]]:
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")


def _spec_rules() -> list[dict[str, str]]:
    rules: list[dict[str, str]] = SPEC["x-kubernetes-validations"]
    return rules


# ------------------------------------------------------------------------------------------------
# names, versions, printer columns (docs/contract.md section 1)


def test_names_and_scope_match_the_contract() -> None:
    assert CRD["apiVersion"] == "apiextensions.k8s.io/v1"
    assert CRD["metadata"]["name"] == f"{resource.PLURAL}.{resource.GROUP}" == "togetherendpoints.together.ai"
    spec = CRD["spec"]
    assert spec["group"] == resource.GROUP == "together.ai"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": resource.KIND,
        "listKind": "TogetherEndpointList",
        "plural": resource.PLURAL,
        "singular": "togetherendpoint",
        "shortNames": ["tep"],
        "categories": ["together"],
    }


def test_one_served_storage_version_with_status_subresource() -> None:
    assert len(CRD["spec"]["versions"]) == 1
    assert VERSION["name"] == resource.VERSION == "v1alpha1"
    assert VERSION["served"] is True
    assert VERSION["storage"] is True
    assert VERSION["subresources"] == {"status": {}}


def test_printer_columns_match_the_contract() -> None:
    columns = {c["name"]: c for c in VERSION["additionalPrinterColumns"]}
    assert list(columns) == ["Model", "Hardware", "Desired", "State", "Ready", "Endpoint", "$/h", "Age"]
    assert columns["Model"]["jsonPath"] == ".spec.model"
    assert columns["Hardware"]["jsonPath"] == ".status.hardware"
    assert columns["Desired"]["jsonPath"] == ".spec.state"
    assert columns["State"]["jsonPath"] == ".status.state"
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Endpoint"]["jsonPath"] == ".status.endpointName"
    assert columns["$/h"]["jsonPath"] == ".status.pricing.hourlyRange"
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


# ------------------------------------------------------------------------------------------------
# agreement with resource.py


def test_spec_fields_equal_the_model_aliases() -> None:
    assert _compare_fields(TogetherEndpointSpec, SPEC, "spec", frozenset()) == []


def test_status_fields_equal_the_model_aliases_plus_kopf() -> None:
    assert _compare_fields(TogetherEndpointStatus, STATUS, "status", frozenset({"kopf"})) == []
    kopf = STATUS["properties"]["kopf"]
    assert kopf["x-kubernetes-preserve-unknown-fields"] is True


def test_only_status_kopf_preserves_unknown_fields() -> None:
    open_paths = [p for p, s in _walk(ROOT) if s.get("x-kubernetes-preserve-unknown-fields")]
    assert open_paths == [".status.kopf"]


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("spec", TogetherEndpointSpec),
        ("spec.gpu", resource.GPUShorthand),
        ("spec.autoscaling", resource.AutoscalingSpec),
        ("spec.apiKeySecretRef", resource.SecretKeyRef),
        ("spec.connection", resource.ConnectionSpec),
        ("status.autoscaling", resource.ObservedAutoscaling),
        ("status.autoStopped", resource.AutoStopRecord),
        ("status.pricing", resource.Pricing),
        ("spec.schedule", resource.ScheduleSpec),
        ("status.schedule", resource.ScheduleStatus),
        ("status.conditions", Condition),
    ],
)
def test_required_fields_equal_the_model(path: str, model: type[BaseModel]) -> None:
    schema: Schema = ROOT
    for part in path.split("."):
        schema = _schema_of_items(schema["properties"][part])
    assert set(schema.get("required", [])) == _required_aliases(model)


def test_schema_defaults_equal_the_model_defaults() -> None:
    """Defaulting a minimal spec on the server gives exactly what the model fills in."""
    for minimal in (
        {"model": "m", "hardware": "1x_nvidia_h100_80gb_sxm"},
        {"model": "m", "gpu": {"type": "h100", "count": 2}, "apiKeySecretRef": {"name": "s"}},
        {"model": "m", "hardware": "1x_a", "autoscaling": {"maxReplicas": 3}, "connection": {}},
    ):
        defaulted = apply_defaults(SPEC, minimal)
        from_model = TogetherEndpointSpec.model_validate(minimal).model_dump(mode="json", exclude_none=True)
        assert defaulted == from_model


def test_each_default_equals_the_model_field_default() -> None:
    props = SPEC["properties"]
    for name, field in TogetherEndpointSpec.model_fields.items():
        alias = field.alias or name
        if field.is_required() or field.default is None:
            assert "default" not in props[alias], f"spec.{alias} has no default in the model"
            continue
        default = field.default
        if isinstance(default, BaseModel):
            # `default: {}` plus nested defaults, as the model's default instance
            assert apply_defaults(props[alias], props[alias]["default"]) == default.model_dump(mode="json")
        else:
            assert props[alias]["default"] == (default.value if isinstance(default, StrEnum) else default)
    assert (
        SPEC["properties"]["apiKeySecretRef"]["properties"]["key"]["default"] == resource.DEFAULT_SECRET_KEY
    )


@pytest.mark.parametrize(
    ("field", "enum"),
    [("state", DesiredState), ("deletionPolicy", DeletionPolicy), ("managementPolicy", ManagementPolicy)],
)
def test_enums_equal_the_model_enums(field: str, enum: type[StrEnum]) -> None:
    assert SPEC["properties"][field]["enum"] == [e.value for e in enum]


def test_integer_minimums_equal_the_model() -> None:
    props = SPEC["properties"]
    assert props["gpu"]["properties"]["count"]["minimum"] == 1
    assert props["autoscaling"]["properties"]["minReplicas"]["minimum"] == 1
    assert props["autoscaling"]["properties"]["maxReplicas"]["minimum"] == 1
    assert props["inactiveTimeout"]["minimum"] == 0
    assert "default" not in props["inactiveTimeout"]
    assert props["model"]["minLength"] == 1


@pytest.mark.parametrize(
    ("path", "model", "name"),
    [
        ("gpu.count", resource.GPUShorthand, "count"),
        ("autoscaling.minReplicas", resource.AutoscalingSpec, "min_replicas"),
        ("autoscaling.maxReplicas", resource.AutoscalingSpec, "max_replicas"),
        ("inactiveTimeout", TogetherEndpointSpec, "inactive_timeout"),
    ],
)
def test_spec_integer_bounds_equal_the_model(path: str, model: type[BaseModel], name: str) -> None:
    schema: Schema = SPEC
    for part in path.split("."):
        schema = schema["properties"][part]
    bounds = {
        bound: getattr(m, bound)
        for m in model.model_fields[name].metadata
        for bound in ("ge", "le")
        if hasattr(m, bound)
    }
    assert (schema["minimum"], schema["maximum"]) == (bounds["ge"], bounds["le"])


def test_every_integer_is_at_most_int32_max() -> None:
    """Together reads its integers as int32: admission refuses anything larger, naming the field."""
    integers = {
        path: schema.get("maximum") for path, schema in _walk(ROOT) if schema.get("type") == "integer"
    }
    assert {".spec.gpu.count", ".status.conditions[].observedGeneration"} <= integers.keys()
    assert resource.INT32_MAX == 2**31 - 1
    assert {path for path, maximum in integers.items() if maximum != resource.INT32_MAX} == set()


# ------------------------------------------------------------------------------------------------
# documentation and CEL hygiene


def test_every_spec_and_status_field_is_documented() -> None:
    undocumented = [
        path
        for root in ("spec", "status")
        for path, schema in _walk(ROOT["properties"][root], f".{root}")
        if len(schema.get("description", "")) < 15
    ]
    assert undocumented == []


def test_every_spec_string_has_a_max_length() -> None:
    """Bounded strings keep the estimated cost of the CEL rules low (and reject absurd input)."""
    unbounded = [
        path
        for path, schema in _walk(SPEC, ".spec")
        if schema.get("type") == "string" and "enum" not in schema and "maxLength" not in schema
    ]
    assert unbounded == []


def test_deprecated_prompt_cache_says_so() -> None:
    description = SPEC["properties"]["promptCache"]["description"]
    assert "Deprecated" in description
    assert "ignored" in description


@pytest.mark.parametrize(
    "field", ["model", "hardware", "gpu", "availabilityZone", "speculativeDecoding", "endpointId"]
)
def test_immutable_fields_have_transition_rules_naming_them(field: str) -> None:
    on_field = SPEC["properties"][field].get("x-kubernetes-validations", [])
    on_spec = [r for r in _spec_rules() if r.get("fieldPath") == f".{field}"]
    # A rule with optionalOldSelf runs on create too: not a transition rule.
    transition = [r for r in [*on_field, *on_spec] if "oldSelf" in r["rule"] and not r.get("optionalOldSelf")]
    assert len(transition) == 1, f"one transition rule guards spec.{field}"
    assert transition[0]["message"].startswith(field)
    assert "create a new TogetherEndpoint" in transition[0]["message"]


@pytest.mark.parametrize("field", ["hardware", "gpu", "availabilityZone", "endpointId"])
def test_optional_immutable_fields_are_checked_on_spec_so_adding_and_removing_count(field: str) -> None:
    """A rule on an optional field itself runs only when old and new both have it."""
    (rule,) = [
        r
        for r in _spec_rules()
        if r.get("fieldPath") == f".{field}" and "oldSelf" in r["rule"] and not r.get("optionalOldSelf")
    ]
    assert f"has(oldSelf.{field})" in rule["rule"]


def test_spec_rules_point_at_a_field_and_name_it() -> None:
    for rule in _spec_rules():
        field = rule["fieldPath"].lstrip(".")
        schema: Schema = SPEC
        for part in field.split("."):
            assert part in schema["properties"], rule
            schema = schema["properties"][part]
        assert field in rule["message"], rule


def test_api_has_no_schema_default_so_a_later_default_never_flips_a_stored_object() -> None:
    assert SPEC["properties"]["api"]["enum"] == ["v1", "v2"]
    assert "default" not in SPEC["properties"]["api"]
    assert TogetherEndpointSpec.model_fields["api"].default is None


@pytest.mark.parametrize("field", ["model", "hardware", "gpu", "availabilityZone", "speculativeDecoding"])
def test_fields_fixed_on_v1_are_a_rollout_on_v2(field: str) -> None:
    (rule,) = [r for r in _spec_rules() if r.get("fieldPath") == f".{field}" and "oldSelf" in r["rule"]]
    assert rule["rule"].startswith("(has(self.api) && self.api == 'v2') ||")
    assert rule["message"].startswith(f"{field} is immutable on api v1")


def test_v2_rules_name_their_field_and_what_to_do() -> None:
    messages = {r["fieldPath"]: r["message"] for r in _spec_rules() if "oldSelf" not in r["rule"]}
    assert "set spec.api to v2, or remove spec.v2" in messages[".v2"]
    assert messages[".promptCache"].startswith("promptCache is v1 only")
    assert "between 30 and 1440" in messages[".inactiveTimeout"]
    transitions = [r["message"] for r in _spec_rules() if "oldSelf" in r["rule"]]
    assert "api can change only from v1 to v2 (a migration), never back" in " ".join(transitions)
    assert any(m.startswith("v2.endpointName is immutable") for m in transitions)


# ------------------------------------------------------------------------------------------------
# patterns (the API server uses Go's RE2; these patterns mean the same in Python)


@pytest.mark.parametrize(
    ("path", "good", "bad"),
    [
        (
            "hardware",
            ["2x_nvidia_h100_80gb_sxm", "1x_nvidia_a100_80gb_sxm", "16x_x", "2xnvidia-h100-80gb"],
            ["0x_nvidia_h100", "2x-nvidia", "nvidia_h100", "2x_NVIDIA", "2x_", "2xnvidia-", ""],
        ),
        ("v2.endpointName", ["mixtral", "team-a-mixtral", "a" * 63], ["Mixtral", "-a", "a-", "a" * 64]),
        (
            "v2.config",
            ["projects/proj_1/configs/cr_abc"],
            ["cr_abc", "projects/p/configs/", "projects/p/models/m"],
        ),
        ("v2.scaling.scaleDownWindow", ["5m", "1h30m", "90s"], ["5 m", "5min", "m"]),
        ("gpu.type", ["h100", "a100", "l40s", "a100-80gb"], ["H100", "-h100", "h100 ", ""]),
        (
            "endpointId",
            ["endpoint-e6c6b82f-90f7-45b7-af39-3ca3b51d08xx", "ep_abc123"],
            ["e6c6b82f", "endpoint-", "x-endpoint-1", "ep_", "ep-abc", "dep_abc123"],
        ),
        ("availabilityZone", ["us-central-4b", "us-east-1a"], ["US-EAST", "us_east", "-us"]),
        ("connection.configMapName", ["mixtral-connection", "a.b-c"], ["Mixtral", "a_b", "-a", "a."]),
        ("apiKeySecretRef.name", ["together-key"], ["Together", "a/b"]),
        ("apiKeySecretRef.key", ["api-key", "TOKEN_1", ".key"], ["a/b", "a b"]),
    ],
)
def test_patterns(path: str, good: list[str], bad: list[str]) -> None:
    schema: Schema = SPEC
    for part in path.split("."):
        schema = schema["properties"][part]
    pattern = re.compile(schema["pattern"])
    assert [v for v in good if not pattern.search(v)] == []
    assert [v for v in bad if pattern.search(v)] == []


# ------------------------------------------------------------------------------------------------
# samples


SAMPLES = sorted(SAMPLES_DIR.glob("togetherendpoint-*.yaml"))


def test_there_are_samples_and_the_demo_one() -> None:
    assert len(SAMPLES) >= 5
    minimal = yaml.safe_load((SAMPLES_DIR / "togetherendpoint-minimal.yaml").read_text())
    assert minimal["spec"] == {
        "model": "mistralai/Mixtral-8x7B-Instruct-v0.1",
        "hardware": "2x_nvidia_h100_80gb_sxm",
    }


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_is_a_commented_togetherendpoint_the_model_accepts(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("#"), "each sample starts with a comment saying what it shows"
    (doc,) = [d for d in yaml.safe_load_all(text) if d is not None]
    assert doc["apiVersion"] == f"{resource.GROUP}/{resource.VERSION}"
    assert doc["kind"] == resource.KIND
    assert "namespace" not in doc["metadata"], "samples apply to the current namespace"
    TogetherEndpointSpec.model_validate(apply_defaults(SPEC, doc["spec"]))
