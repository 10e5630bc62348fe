"""Small builders for reconcile-core tests: a spec, an observed endpoint, hardware, a previous status.

Every builder starts from one coherent world (the resource `team-a/mixtral`, a Mixtral spec on
`2x_nvidia_h100_80gb_sxm`, an endpoint that matches it) and takes keyword overrides, so a test names
only what matters to it. The clock is fixed: `NOW`, and `later(...)` for the next reconciles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from together_operator.core import (
    DeletionInputs,
    Found,
    Inputs,
    Plan,
    RemoteView,
    UpdateEndpoint,
    plan,
)
from together_operator.resource import (
    Condition,
    ConditionType,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)
from together_operator.together.models import DedicatedEndpoint, HardwareWithStatus

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NAMESPACE = "team-a"
NAME = "mixtral"
DEFAULT_DISPLAY_NAME = f"{NAMESPACE}/{NAME}"
MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
HARDWARE = "2x_nvidia_h100_80gb_sxm"
ENDPOINT_ID = "endpoint-0b8f7c1e-aaaa-4bbb-8ccc-000000000001"
ENDPOINT_NAME = f"devuser/{MODEL}-bb04c904"


def later(**delta: float) -> datetime:
    """`NOW` moved on, e.g. `later(seconds=30)`."""
    return NOW + timedelta(**delta)


def spec(**overrides: Any) -> TogetherEndpointSpec:
    """A valid spec (snake_case field names); `hardware=None` with `gpu=...` for the shorthand."""
    fields: dict[str, Any] = {"model": MODEL, "hardware": HARDWARE}
    fields.update(overrides)
    return TogetherEndpointSpec.model_validate(fields)


def endpoint(**overrides: Any) -> DedicatedEndpoint:
    """The remote endpoint as GET returns it, in sync with `spec()` unless overridden.

    `min_replicas` / `max_replicas` are accepted as shortcuts for `autoscaling`.
    """
    fields: dict[str, Any] = {
        "object": "endpoint",
        "id": ENDPOINT_ID,
        "name": ENDPOINT_NAME,
        "display_name": DEFAULT_DISPLAY_NAME,
        "model": MODEL,
        "hardware": HARDWARE,
        "type": "dedicated",
        "owner": "devuser",
        "state": "STARTED",
        "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        "created_at": NOW - timedelta(hours=1),
    }
    autoscaling = dict(fields["autoscaling"])
    for bound in ("min_replicas", "max_replicas"):
        if bound in overrides:
            autoscaling[bound] = overrides.pop(bound)
    fields["autoscaling"] = autoscaling
    fields.update(overrides)
    return DedicatedEndpoint.model_validate(fields)


def candidate(
    endpoint_id: str,
    *,
    model: str = MODEL,
    created_at: datetime = NOW,
    display_name: str = DEFAULT_DISPLAY_NAME,
    **overrides: Any,
) -> DedicatedEndpoint:
    """An endpoint the reconciler found for an interrupted create: listed, not owned by another
    resource, and read in full (GET) for its display name. PENDING, as a fresh create is."""
    fields: dict[str, Any] = {
        "id": endpoint_id,
        "name": f"devuser/{model}-{endpoint_id[-8:]}",
        "model": model,
        "display_name": display_name,
        "created_at": created_at,
        "state": "PENDING",
    }
    fields.update(overrides)
    return endpoint(**fields)


def hardware(
    hardware_id: str, *, gpu_type: str | None = None, gpu_count: int | None = None
) -> HardwareWithStatus:
    """An item of `GET /hardware?model=`; gpu type and count are read off the id unless given."""
    count_text, _, rest = hardware_id.partition("x_")
    fields: dict[str, Any] = {
        "object": "hardware",
        "id": hardware_id,
        "pricing": {"cents_per_minute": 5.42},
        "specs": {
            "gpu_type": gpu_type if gpu_type is not None else rest.removeprefix("nvidia_").replace("_", "-"),
            "gpu_link": "sxm",
            "gpu_memory": 80.0,
            "gpu_count": gpu_count if gpu_count is not None else int(count_text),
        },
        "availability": {"status": "available"},
        "updated_at": NOW - timedelta(days=1),
    }
    return HardwareWithStatus.model_validate(fields)


# What GET /hardware?model= offers for MODEL in most tests.
OFFERED = (
    hardware("1x_nvidia_h100_80gb_sxm"),
    hardware(HARDWARE),
    hardware("4x_nvidia_a100_80gb_sxm"),
)


def status(**overrides: Any) -> TogetherEndpointStatus:
    """A previous status, empty unless overridden (snake_case field names)."""
    return TogetherEndpointStatus.model_validate(overrides)


def steady(generation: int = 1, **overrides: Any) -> TogetherEndpointStatus:
    """The previous status of an endpoint in sync with `spec()`, as the plan of `generation` that saw
    it wrote it: observedGeneration and reconciledGeneration at `generation`, Ready True. Fields given
    (snake_case) replace what that plan wrote."""
    written = plan(inputs(generation=generation)).status
    return TogetherEndpointStatus.model_validate({**written.model_dump(by_alias=False), **overrides})


def inputs(
    *,
    remote: RemoteView | None = None,
    spec_: TogetherEndpointSpec | None = None,
    generation: int = 1,
    previous: TogetherEndpointStatus | None = None,
    now: datetime = NOW,
    restart_requested_at: str | None = None,
    hardware_options: Sequence[HardwareWithStatus] | None = OFFERED,
    **spec_overrides: Any,
) -> Inputs:
    """The inputs of one reconcile. Spec fields may be given directly (`inputs(state="Stopped")`);
    the remote defaults to an endpoint in sync with the spec."""
    if spec_ is None:
        spec_ = spec(**spec_overrides)
    elif spec_overrides:
        raise TypeError("pass either spec_ or spec field overrides, not both")
    return Inputs(
        spec=spec_,
        generation=generation,
        namespace=NAMESPACE,
        name=NAME,
        previous=previous if previous is not None else TogetherEndpointStatus(),
        remote=remote if remote is not None else Found(endpoint()),
        now=now,
        restart_requested_at=restart_requested_at,
        hardware_options=hardware_options,
    )


def reconciled(inputs_: Inputs) -> TogetherEndpointStatus:
    """The status a reconcile with these inputs writes: the `previous` of the next one."""
    return plan(inputs_).status


def next_reconcile(after: Inputs, **changes: Any) -> Inputs:
    """The inputs of the reconcile that follows `after`, whose status it starts from."""
    return replace(after, previous=reconciled(after), **changes)


def condition(result: Plan | TogetherEndpointStatus, kind: str) -> Condition:
    status_ = result.status if isinstance(result, Plan) else result
    found = status_.condition(ConditionType(kind))
    assert found is not None, f"no {kind} condition in {status_.conditions}"
    return found


def verdict(result: Plan | TogetherEndpointStatus) -> dict[str, tuple[str, str]]:
    """Each condition as (status, reason): the shape the contract talks in."""
    status_ = result.status if isinstance(result, Plan) else result
    return {str(c.type): (c.status, c.reason) for c in status_.conditions}


def patch_body(result: Plan) -> dict[str, Any]:
    """The one PATCH body of a plan (fails unless the plan is exactly one update)."""
    assert len(result.actions) == 1, result.actions
    [action] = result.actions
    assert isinstance(action, UpdateEndpoint), action
    assert action.endpoint_id == ENDPOINT_ID
    return action.request.to_body()


def deletion(
    *,
    recorded: TogetherEndpointStatus | None = None,
    spec_: TogetherEndpointSpec | None = None,
    **changes: Any,
) -> DeletionInputs:
    """The inputs of a deletion step of the resource whose status recorded `recorded` (ENDPOINT_ID by
    default), at NOW; other fields given replace the defaults (e.g. `key_resolved=True`)."""
    first = DeletionInputs(
        spec=spec_ if spec_ is not None else spec(),
        status=recorded if recorded is not None else status(endpoint_id=ENDPOINT_ID),
        generation=1,
        namespace=NAMESPACE,
        name=NAME,
        now=NOW,
    )
    return replace(first, **changes)
