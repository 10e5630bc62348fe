"""Hardware pre-flight: the one hardware id a create sends, checked against `GET /hardware?model=`.

`spec.hardware` must be offered for the model; the `gpu` shorthand (the vendor CLI's
`--gpu h100 --gpu-count 2`) must resolve to exactly one offered id. Anything else stalls before any
POST, with a message that says what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from together_operator.core import (
    CreateEndpoint,
    HardwareRejected,
    HardwareResolved,
    NotCreated,
    plan,
    resolve_hardware,
)
from together_operator.together.models import HardwareWithStatus

from .builders import MODEL, OFFERED, condition, hardware, inputs, next_reconcile, spec, verdict

A100_VARIANTS = (
    hardware("8x_nvidia_a100_80gb_sxm", gpu_type="a100-80gb"),
    hardware("8x_nvidia_a100_40gb_pcie", gpu_type="a100-40gb"),
    hardware("2x_nvidia_h100_80gb_sxm", gpu_type="h100-80gb"),
)


@pytest.mark.parametrize(
    ("spec_fields", "options", "resolved"),
    [
        pytest.param(
            {"hardware": "2x_nvidia_h100_80gb_sxm"}, OFFERED, "2x_nvidia_h100_80gb_sxm", id="hardware-offered"
        ),
        pytest.param(
            {"hardware": None, "gpu": {"type": "h100", "count": 2}},
            OFFERED,
            "2x_nvidia_h100_80gb_sxm",
            id="gpu-h100-x2",
        ),
        pytest.param(
            {"hardware": None, "gpu": {"type": "h100", "count": 1}},
            OFFERED,
            "1x_nvidia_h100_80gb_sxm",
            id="gpu-h100-x1",
        ),
        pytest.param(
            {"hardware": None, "gpu": {"type": "H100", "count": 2}},
            OFFERED,
            "2x_nvidia_h100_80gb_sxm",
            id="gpu-type-is-case-insensitive",
        ),
        pytest.param(
            {"hardware": None, "gpu": {"type": "a100", "count": 4}},
            OFFERED,
            "4x_nvidia_a100_80gb_sxm",
            id="gpu-a100-x4",
        ),
        pytest.param(
            {"hardware": None, "gpu": {"type": "a100-40gb", "count": 8}},
            A100_VARIANTS,
            "8x_nvidia_a100_40gb_pcie",
            id="gpu-type-matches-the-hardware-spec-gpu-type",
        ),
    ],
)
def test_hardware_resolves_to_exactly_one_offered_id(
    spec_fields: dict[str, Any], options: Sequence[HardwareWithStatus], resolved: str
) -> None:
    assert resolve_hardware(spec(**spec_fields), options) == HardwareResolved(resolved)


@pytest.mark.parametrize(
    ("spec_fields", "options", "reason", "message_parts"),
    [
        pytest.param(
            {"hardware": "8x_nvidia_h200_140gb_sxm"},
            OFFERED,
            "HardwareNotSupported",
            [
                "spec.hardware '8x_nvidia_h200_140gb_sxm' is not offered",
                MODEL,
                "offered: 1x_nvidia_h100_80gb_sxm, 2x_nvidia_h100_80gb_sxm, 4x_nvidia_a100_80gb_sxm",
            ],
            id="hardware-not-offered-lists-the-offered-ids",
        ),
        pytest.param(
            {"hardware": None, "gpu": {"type": "h100", "count": 8}},
            OFFERED,
            "HardwareNotSupported",
            ["spec.gpu 8x h100", "offered: 1x_nvidia_h100_80gb_sxm, 2x_nvidia_h100_80gb_sxm"],
            id="gpu-count-not-offered",
        ),
        pytest.param(
            {"hardware": None, "gpu": {"type": "l40s", "count": 2}},
            OFFERED,
            "HardwareNotSupported",
            ["spec.gpu 2x l40s", "offered: "],
            id="gpu-type-not-offered",
        ),
        pytest.param(
            {"hardware": None, "gpu": {"type": "a100", "count": 8}},
            A100_VARIANTS,
            "HardwareAmbiguous",
            ["8x_nvidia_a100_40gb_pcie, 8x_nvidia_a100_80gb_sxm", "set spec.hardware to one of them"],
            id="gpu-shorthand-ambiguous",
        ),
        pytest.param(
            {"hardware": "2x_nvidia_h100_80gb_sxm"},
            (),
            "ModelNotSupported",
            [MODEL, "check spec.model"],
            id="no-hardware-for-the-model",
        ),
        pytest.param(
            {"hardware": None, "gpu": {"type": "h100", "count": 2}},
            (),
            "ModelNotSupported",
            [MODEL],
            id="no-hardware-for-the-model-with-gpu-shorthand",
        ),
    ],
)
def test_hardware_that_cannot_be_resolved_is_rejected_with_what_to_do(
    spec_fields: dict[str, Any],
    options: Sequence[HardwareWithStatus],
    reason: str,
    message_parts: list[str],
) -> None:
    rejection = resolve_hardware(spec(**spec_fields), options)

    assert isinstance(rejection, HardwareRejected)
    assert rejection.reason == reason
    for part in message_parts:
        assert part in rejection.message


@pytest.mark.parametrize(
    ("spec_fields", "options", "reason"),
    [
        pytest.param(
            {"hardware": "8x_nvidia_h200_140gb_sxm"}, OFFERED, "HardwareNotSupported", id="not-offered"
        ),
        pytest.param(
            {"hardware": None, "gpu": {"type": "a100", "count": 8}},
            A100_VARIANTS,
            "HardwareAmbiguous",
            id="ambiguous",
        ),
        pytest.param({}, (), "ModelNotSupported", id="unknown-model"),
    ],
)
def test_unresolvable_hardware_stalls_before_any_create(
    spec_fields: dict[str, Any], options: Sequence[HardwareWithStatus], reason: str
) -> None:
    result = plan(inputs(remote=NotCreated(), hardware_options=options, **spec_fields))

    assert result.actions == ()
    assert verdict(result) == {
        "Ready": ("False", reason),
        "Serving": ("False", "NotCreated"),
        "Reconciling": ("False", "Reconciled"),
        "Stalled": ("True", reason),
    }
    assert result.status.create_requested_at is None


def test_the_stall_message_names_the_offered_hardware() -> None:
    result = plan(inputs(remote=NotCreated(), hardware="8x_nvidia_h200_140gb_sxm"))

    assert "offered: 1x_nvidia_h100_80gb_sxm, 2x_nvidia_h100_80gb_sxm, 4x_nvidia_a100_80gb_sxm" in (
        condition(result, "Stalled").message
    )


def test_an_unsupported_spec_is_not_tried_again_for_the_same_generation() -> None:
    first = inputs(remote=NotCreated(), hardware="8x_nvidia_h200_140gb_sxm")
    # Even were the hardware offered by now, the same spec is not looked at again.
    again = next_reconcile(first, hardware_options=(*OFFERED, hardware("8x_nvidia_h200_140gb_sxm")))

    result = plan(again)

    assert result.actions == ()
    assert verdict(result)["Stalled"] == ("True", "HardwareNotSupported")
    assert result.events == ()


def test_an_unsupported_spec_is_tried_again_once_the_generation_changes() -> None:
    first = inputs(remote=NotCreated(), hardware="8x_nvidia_h200_140gb_sxm")
    fixed = next_reconcile(first, generation=2, spec=spec(hardware="1x_nvidia_h100_80gb_sxm"))

    result = plan(fixed)

    assert len(result.actions) == 1
    [create] = result.actions
    assert isinstance(create, CreateEndpoint)
    assert create.request.hardware == "1x_nvidia_h100_80gb_sxm"
    assert verdict(result)["Stalled"] == ("False", "NotStalled")


def test_the_gpu_shorthand_is_resolved_into_the_create_request() -> None:
    result = plan(inputs(remote=NotCreated(), hardware=None, gpu={"type": "h100", "count": 2}))

    [create] = result.actions
    assert isinstance(create, CreateEndpoint)
    assert create.request.hardware == "2x_nvidia_h100_80gb_sxm"
