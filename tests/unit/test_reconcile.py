"""The reconcile core as a specification: (spec, generation, observed endpoint, previous status, clock)
in, (Together API actions, new status, events) out. CONTRACT.md sections 1 (status, conditions) and 2
(behaviour) are the reference; every test states one rule.

No I/O and no sleeps: the clock is `NOW` from the builders, and a "later reconcile" is the same inputs
with the previous plan's status fed back in (`next_reconcile`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pytest

from together_operator.core import (
    CREATE_CLOCK_SKEW,
    STATE_CHANGE_GRACE,
    AdoptEndpoint,
    CreateEndpoint,
    CreateInFlight,
    Event,
    FailurePlan,
    Found,
    Gone,
    Inputs,
    NotCreated,
    Plan,
    RemoteView,
    RetryPolicy,
    UpdateEndpoint,
    plan,
    plan_failure,
)
from together_operator.credentials import CredentialsMissing
from together_operator.resource import AutoStopRecord, ConditionType, TogetherEndpointStatus
from together_operator.together.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TogetherError,
    TransientError,
)
from together_operator.together.models import DedicatedEndpoint, UpdateEndpointRequest

from .builders import (
    DEFAULT_DISPLAY_NAME,
    ENDPOINT_ID,
    ENDPOINT_NAME,
    HARDWARE,
    MODEL,
    NOW,
    candidate,
    condition,
    endpoint,
    hardware,
    inputs,
    later,
    next_reconcile,
    patch_body,
    reconciled,
    spec,
    status,
    steady,
    verdict,
)

IN_SYNC_STARTED = {
    "Ready": ("True", "Started"),
    "Serving": ("True", "Started"),
    "Reconciling": ("False", "Reconciled"),
    "Stalled": ("False", "NotStalled"),
}


def event_summary(result: Plan | FailurePlan) -> list[tuple[str, str]]:
    return [(str(e.type), e.reason) for e in result.events]


def running(**spec_fields: Any) -> Inputs:
    """A reconcile of generation 1 that found the endpoint in sync: the usual starting point."""
    return inputs(**spec_fields)


def auto_stopped(restart_requested_at: str | None = None) -> Inputs:
    """Auto-stop on (60 minutes); the endpoint ran, then Together stopped it for inactivity."""
    first = running(inactive_timeout=60)
    first = dataclasses.replace(
        first, previous=status(inactive_timeout=60), restart_requested_at=restart_requested_at
    )
    return next_reconcile(first, remote=Found(endpoint(state="STOPPED")), now=later(minutes=90))


# --- create ---------------------------------------------------------------------------------------

DEFAULT_CREATE_BODY: dict[str, Any] = {
    "model": MODEL,
    "hardware": HARDWARE,
    "autoscaling": {"min_replicas": 1, "max_replicas": 1},
    "display_name": DEFAULT_DISPLAY_NAME,
    "disable_speculative_decoding": True,
    "state": "STARTED",
}


@pytest.mark.parametrize(
    ("spec_fields", "body_changes"),
    [
        pytest.param({}, {}, id="defaults"),
        pytest.param(
            {"display_name": "Chat (prod)"}, {"display_name": "Chat (prod)"}, id="display-name-given"
        ),
        pytest.param(
            {"autoscaling": {"min_replicas": 2, "max_replicas": 5}},
            {"autoscaling": {"min_replicas": 2, "max_replicas": 5}},
            id="autoscaling-both-bounds",
        ),
        pytest.param({"state": "Stopped"}, {"state": "STOPPED"}, id="created-stopped"),
        pytest.param(
            {"speculative_decoding": True}, {"disable_speculative_decoding": False}, id="speculative-on"
        ),
        pytest.param(
            {"speculative_decoding": False}, {"disable_speculative_decoding": True}, id="speculative-off"
        ),
        pytest.param({"inactive_timeout": 30}, {"inactive_timeout": 30}, id="inactive-timeout-positive"),
        pytest.param({"inactive_timeout": 0}, {}, id="inactive-timeout-zero-omitted"),
        pytest.param(
            {"availability_zone": "us-central-4b"}, {"availability_zone": "us-central-4b"}, id="zone"
        ),
        pytest.param({"prompt_cache": True}, {}, id="prompt-cache-true-never-sent"),
        pytest.param({"prompt_cache": False}, {}, id="prompt-cache-false-never-sent"),
        pytest.param(
            {"hardware": None, "gpu": {"type": "h100", "count": 1}},
            {"hardware": "1x_nvidia_h100_80gb_sxm"},
            id="gpu-shorthand-resolved",
        ),
    ],
)
def test_a_create_sends_exactly_what_the_spec_asks_for(
    spec_fields: dict[str, Any], body_changes: dict[str, Any]
) -> None:
    result = plan(inputs(remote=NotCreated(), **spec_fields))

    [action] = result.actions
    assert isinstance(action, CreateEndpoint)
    assert action.request.to_body() == {**DEFAULT_CREATE_BODY, **body_changes}


def test_a_create_records_its_intent_time_and_reports_creating() -> None:
    result = plan(inputs(remote=NotCreated(), generation=3))

    assert result.status.create_requested_at == NOW
    assert result.status.endpoint_id is None
    assert result.status.observed_generation == 3
    assert verdict(result) == {
        "Ready": ("False", "Creating"),
        "Serving": ("False", "NotCreated"),
        "Reconciling": ("True", "Creating"),
        "Stalled": ("False", "NotStalled"),
    }
    assert event_summary(result) == [("Normal", "Creating")]
    assert result.in_transition


@pytest.mark.parametrize("timeout", [None, 0, 45])
def test_a_create_remembers_the_inactive_timeout_it_applied(timeout: int | None) -> None:
    result = plan(inputs(remote=NotCreated(), inactive_timeout=timeout))

    assert result.status.inactive_timeout == timeout


def test_a_create_after_an_unrelated_stall_goes_ahead() -> None:
    """Credentials or auth problems do not bind the spec: once they are fixed the create happens."""
    unauthorized = plan_failure(
        inputs(remote=NotCreated()),
        AuthError("invalid api key", method="GET", path="hardware", status_code=401),
        action=None,
    )

    result = plan(inputs(remote=NotCreated(), previous=unauthorized.status, now=later(minutes=2)))

    assert [type(a) for a in result.actions] == [CreateEndpoint]
    assert verdict(result)["Stalled"] == ("False", "NotStalled")


def test_a_create_rejected_as_invalid_is_not_tried_again_until_the_generation_changes() -> None:
    first = inputs(remote=NotCreated())
    [create] = plan(first).actions
    rejected = plan_failure(
        first,
        PermanentError("min_replicas too high", method="POST", path="endpoints", status_code=400),
        action=create,
    )
    assert verdict(rejected.status)["Stalled"] == ("True", "InvalidSpec")

    same_generation = plan(dataclasses.replace(first, previous=rejected.status, now=later(minutes=5)))
    new_generation = plan(
        dataclasses.replace(first, previous=rejected.status, generation=2, now=later(minutes=5))
    )

    assert same_generation.actions == ()
    assert verdict(same_generation)["Stalled"] == ("True", "InvalidSpec")
    assert same_generation.events == ()
    assert [type(a) for a in new_generation.actions] == [CreateEndpoint]


# --- nothing to do --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_fields", "remote_state", "expected"),
    [
        pytest.param({}, "STARTED", IN_SYNC_STARTED, id="started"),
        pytest.param(
            {"state": "Stopped"},
            "STOPPED",
            {
                "Ready": ("True", "Stopped"),
                "Serving": ("False", "Stopped"),
                "Reconciling": ("False", "Reconciled"),
                "Stalled": ("False", "NotStalled"),
            },
            id="stopped",
        ),
        pytest.param(
            {"display_name": "Chat", "autoscaling": {"min_replicas": 2, "max_replicas": 4}},
            "STARTED",
            IN_SYNC_STARTED,
            id="started-with-custom-name-and-scale",
        ),
    ],
)
def test_an_endpoint_in_sync_needs_no_action_and_is_ready(
    spec_fields: dict[str, Any], remote_state: str, expected: dict[str, tuple[str, str]]
) -> None:
    remote = endpoint(
        state=remote_state,
        display_name=spec_fields.get("display_name", DEFAULT_DISPLAY_NAME),
        autoscaling=spec_fields.get("autoscaling", {"min_replicas": 1, "max_replicas": 1}),
    )

    result = plan(inputs(remote=Found(remote), **spec_fields))

    assert result.actions == ()
    assert verdict(result) == expected
    assert not result.stalled
    assert not result.in_transition


@pytest.mark.parametrize(
    ("spec_timeout", "applied_timeout"),
    [
        pytest.param(30, 30, id="same-timeout"),
        pytest.param(None, None, id="never-set"),
        pytest.param(0, None, id="zero-is-off"),
        pytest.param(None, 0, id="omitted-is-off"),
    ],
)
def test_an_applied_inactive_timeout_is_not_sent_again(
    spec_timeout: int | None, applied_timeout: int | None
) -> None:
    result = plan(inputs(inactive_timeout=spec_timeout, previous=status(inactive_timeout=applied_timeout)))

    assert result.actions == ()


def test_observed_fields_are_mirrored_into_status() -> None:
    remote = endpoint(min_replicas=2, max_replicas=3, display_name="Chat")

    result = plan(
        inputs(remote=Found(remote), display_name="Chat", autoscaling={"min_replicas": 2, "max_replicas": 3})
    )

    observed = result.status
    assert observed.endpoint_id == ENDPOINT_ID
    assert observed.endpoint_name == ENDPOINT_NAME
    assert observed.state == "STARTED"
    assert observed.hardware == HARDWARE
    assert observed.autoscaling is not None
    assert (observed.autoscaling.min_replicas, observed.autoscaling.max_replicas) == (2, 3)
    assert observed.display_name == "Chat"
    assert observed.created_at == remote.created_at
    assert observed.last_sync_time == NOW


@pytest.mark.parametrize(
    "remote_state", ["PENDING", "STARTING", "STARTED", "STOPPING", "STOPPED", "ERROR", "DEGRADED"]
)
def test_serving_is_true_exactly_when_the_remote_state_is_started(remote_state: str) -> None:
    result = plan(inputs(remote=Found(endpoint(state=remote_state))))

    assert condition(result, "Serving").status == ("True" if remote_state == "STARTED" else "False")


def _failure_at_generation_7() -> TogetherEndpointStatus:
    failed = plan_failure(
        inputs(generation=7),
        TransientError("bad gateway", method="GET", path="endpoints", status_code=502),
        action=None,
    )
    return failed.status


GENERATION_7_SCENARIOS: dict[str, Callable[[], TogetherEndpointStatus]] = {
    "in-sync": lambda: reconciled(inputs(generation=7)),
    "creating": lambda: reconciled(inputs(generation=7, remote=NotCreated())),
    "updating": lambda: reconciled(inputs(generation=7, remote=Found(endpoint(display_name="x")))),
    "stalled": lambda: reconciled(inputs(generation=7, remote=NotCreated(), hardware_options=())),
    "gone": lambda: reconciled(inputs(generation=7, remote=Gone(ENDPOINT_ID))),
    "remote-error": lambda: reconciled(inputs(generation=7, remote=Found(endpoint(state="ERROR")))),
    "failure": _failure_at_generation_7,
}


@pytest.mark.parametrize("scenario", list(GENERATION_7_SCENARIOS))
def test_observed_generation_is_set_on_the_status_and_every_condition(scenario: str) -> None:
    result = GENERATION_7_SCENARIOS[scenario]()

    assert result.observed_generation == 7
    assert sorted(str(c.type) for c in result.conditions) == ["Ready", "Reconciling", "Serving", "Stalled"]
    assert {c.observed_generation for c in result.conditions} == {7}


# --- transitions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "remote_state", "reason"),
    [
        pytest.param("Started", "PENDING", "Starting", id="started-pending"),
        pytest.param("Started", "STARTING", "Starting", id="started-starting"),
        pytest.param("Stopped", "STOPPING", "Stopping", id="stopped-stopping"),
        pytest.param("Started", "STOPPING", "Starting", id="started-while-still-stopping"),
    ],
)
def test_a_remote_transition_is_waited_for_as_reconciling(
    desired: str, remote_state: str, reason: str
) -> None:
    result = plan(inputs(state=desired, remote=Found(endpoint(state=remote_state))))

    assert result.actions == ()
    assert verdict(result) == {
        "Ready": ("False", reason),
        "Serving": ("False", remote_state.capitalize()),
        "Reconciling": ("True", reason),
        "Stalled": ("False", "NotStalled"),
    }
    assert result.in_transition


# --- patch only what differs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_fields", "remote_fields", "applied_timeout", "body", "reason"),
    [
        pytest.param(
            {},
            {"display_name": "old name"},
            None,
            {"display_name": DEFAULT_DISPLAY_NAME},
            "Updating",
            id="display-name-defaulted",
        ),
        pytest.param(
            {"display_name": "Chat"}, {}, None, {"display_name": "Chat"}, "Updating", id="display-name-given"
        ),
        pytest.param(
            {"autoscaling": {"min_replicas": 2, "max_replicas": 4}},
            {"min_replicas": 2, "max_replicas": 3},
            None,
            {"autoscaling": {"min_replicas": 2, "max_replicas": 4}},
            "Updating",
            id="autoscaling-max-only-changed-sends-both-bounds",
        ),
        pytest.param(
            {"autoscaling": {"min_replicas": 1, "max_replicas": 3}},
            {"min_replicas": 2, "max_replicas": 3},
            None,
            {"autoscaling": {"min_replicas": 1, "max_replicas": 3}},
            "Updating",
            id="autoscaling-min-only-changed-sends-both-bounds",
        ),
        pytest.param({"state": "Stopped"}, {}, None, {"state": "STOPPED"}, "Stopping", id="stop"),
        pytest.param(
            {"state": "Stopped"},
            {"state": "STARTING"},
            None,
            {"state": "STOPPED"},
            "Stopping",
            id="stop-while-starting",
        ),
        pytest.param(
            {"state": "Stopped"},
            {"state": "PENDING"},
            None,
            {"state": "STOPPED"},
            "Stopping",
            id="stop-while-pending",
        ),
        pytest.param({}, {"state": "STOPPED"}, None, {"state": "STARTED"}, "Starting", id="start"),
        pytest.param(
            {"inactive_timeout": 30}, {}, None, {"inactive_timeout": 30}, "Updating", id="timeout-set"
        ),
        pytest.param(
            {"inactive_timeout": 60}, {}, 30, {"inactive_timeout": 60}, "Updating", id="timeout-changed"
        ),
        pytest.param(
            {"inactive_timeout": 0}, {}, 30, {"inactive_timeout": 0}, "Updating", id="timeout-off-with-zero"
        ),
        pytest.param(
            {"inactive_timeout": None},
            {},
            30,
            {"inactive_timeout": 0},
            "Updating",
            id="timeout-off-by-omission",
        ),
        pytest.param(
            {
                "display_name": "Chat",
                "autoscaling": {"min_replicas": 2, "max_replicas": 4},
                "state": "Stopped",
                "inactive_timeout": 15,
            },
            {},
            None,
            {
                "display_name": "Chat",
                "autoscaling": {"min_replicas": 2, "max_replicas": 4},
                "state": "STOPPED",
                "inactive_timeout": 15,
            },
            "Stopping",
            id="several-at-once",
        ),
        pytest.param(
            {"display_name": "Chat", "autoscaling": {"min_replicas": 1, "max_replicas": 2}},
            {"min_replicas": 1, "max_replicas": 3},
            None,
            {"display_name": "Chat", "autoscaling": {"min_replicas": 1, "max_replicas": 2}},
            "Updating",
            id="name-and-scale-but-not-state",
        ),
    ],
)
def test_a_patch_sends_only_what_differs(
    spec_fields: dict[str, Any],
    remote_fields: dict[str, Any],
    applied_timeout: int | None,
    body: dict[str, Any],
    reason: str,
) -> None:
    result = plan(
        inputs(
            remote=Found(endpoint(**remote_fields)),
            previous=steady(inactive_timeout=applied_timeout),
            **spec_fields,
        )
    )

    assert patch_body(result) == body
    assert verdict(result)["Ready"] == ("False", reason)
    assert verdict(result)["Reconciling"] == ("True", reason)
    assert verdict(result)["Stalled"] == ("False", "NotStalled")
    assert event_summary(result) == [("Normal", reason)]


@pytest.mark.parametrize(("spec_timeout", "recorded"), [(30, 30), (0, 0), (None, None)])
def test_a_patch_of_the_inactive_timeout_records_the_value_sent(
    spec_timeout: int | None, recorded: int | None
) -> None:
    result = plan(inputs(inactive_timeout=spec_timeout, previous=status(inactive_timeout=7)))

    assert patch_body(result)["inactive_timeout"] == (spec_timeout or 0)
    assert result.status.inactive_timeout == recorded


def test_an_update_not_yet_visible_keeps_reconciling_without_patching_twice_in_the_event_log() -> None:
    first = inputs(autoscaling={"min_replicas": 2, "max_replicas": 2})
    patched = plan(first)
    assert patch_body(patched) == {"autoscaling": {"min_replicas": 2, "max_replicas": 2}}

    # The next poll still shows the old bounds: the PATCH is repeated (it is idempotent), quietly.
    still_old = plan(next_reconcile(first, now=later(seconds=15)))

    assert verdict(still_old)["Reconciling"] == ("True", "Updating")
    assert verdict(still_old)["Ready"] == ("False", "Updating")
    assert still_old.events == ()


# --- drift correction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_fields", "remote_fields", "body", "reason"),
    [
        pytest.param(
            {},
            {"display_name": "renamed in the console"},
            {"display_name": DEFAULT_DISPLAY_NAME},
            "Updating",
            id="remote-rename",
        ),
        pytest.param(
            {},
            {"min_replicas": 3, "max_replicas": 6},
            {"autoscaling": {"min_replicas": 1, "max_replicas": 1}},
            "Updating",
            id="remote-rescale",
        ),
        pytest.param(
            {}, {"state": "STOPPED"}, {"state": "STARTED"}, "Starting", id="remote-stop-auto-stop-omitted"
        ),
        pytest.param(
            {"inactive_timeout": 0},
            {"state": "STOPPED"},
            {"state": "STARTED"},
            "Starting",
            id="remote-stop-auto-stop-zero",
        ),
        pytest.param(
            {"state": "Stopped"},
            {"state": "STARTED"},
            {"state": "STOPPED"},
            "Stopping",
            id="remote-start-of-a-stopped-spec",
        ),
    ],
)
def test_remote_drift_is_put_back(
    spec_fields: dict[str, Any], remote_fields: dict[str, Any], body: dict[str, Any], reason: str
) -> None:
    in_sync_state = "STOPPED" if spec_fields.get("state") == "Stopped" else "STARTED"
    ready = inputs(remote=Found(endpoint(state=in_sync_state)), **spec_fields)
    assert verdict(reconciled(ready))["Ready"][0] == "True"

    result = plan(next_reconcile(ready, remote=Found(endpoint(**remote_fields)), now=later(minutes=30)))

    assert patch_body(result) == body
    assert verdict(result)["Ready"] == ("False", reason)
    assert event_summary(result) == [("Normal", reason)]


# --- AutoStopped ----------------------------------------------------------------------------------


@pytest.mark.parametrize("restart_requested_at", [None, "2025-02-01T00:00:00Z"])
def test_a_remote_stop_with_auto_stop_on_is_accepted_as_auto_stopped(
    restart_requested_at: str | None,
) -> None:
    result = plan(auto_stopped(restart_requested_at))

    assert result.actions == ()
    assert verdict(result) == {
        "Ready": ("True", "AutoStopped"),
        "Serving": ("False", "Stopped"),
        "Reconciling": ("False", "Reconciled"),
        "Stalled": ("False", "NotStalled"),
    }
    assert result.status.auto_stopped == AutoStopRecord(
        generation=1, restart_requested_at=restart_requested_at
    )
    assert "together.ai/restart-requested-at" in condition(result, "Ready").message
    assert event_summary(result) == [("Normal", "AutoStopped")]


def test_an_auto_stopped_endpoint_is_left_alone_while_nothing_asks_for_a_start() -> None:
    step = auto_stopped("r0")
    record = reconciled(step).auto_stopped

    for minutes in (95, 120, 600):
        step = next_reconcile(step, now=later(minutes=minutes))
        result = plan(step)
        assert result.actions == ()
        assert result.events == ()
        assert verdict(result)["Ready"] == ("True", "AutoStopped")
        assert result.status.auto_stopped == record


def test_a_stop_in_progress_with_auto_stop_on_is_not_undone() -> None:
    first = dataclasses.replace(running(inactive_timeout=60), previous=status(inactive_timeout=60))
    stopping = next_reconcile(first, remote=Found(endpoint(state="STOPPING")), now=later(minutes=90))

    result = plan(stopping)
    stopped = plan(next_reconcile(stopping, remote=Found(endpoint(state="STOPPED")), now=later(minutes=91)))

    assert result.actions == ()
    assert verdict(result)["Reconciling"] == ("True", "Stopping")
    assert stopped.actions == ()
    assert verdict(stopped)["Ready"] == ("True", "AutoStopped")


@pytest.mark.parametrize(("before", "after"), [(None, "r1"), ("r1", "r2")])
def test_a_new_restart_requested_at_value_starts_an_auto_stopped_endpoint_once(
    before: str | None, after: str
) -> None:
    stopped = auto_stopped(before)
    restart = next_reconcile(stopped, restart_requested_at=after, now=later(hours=3))

    started = plan(restart)

    assert patch_body(started) == {"state": "STARTED"}
    assert started.status.auto_stopped is None
    assert verdict(started)["Ready"] == ("False", "Starting")
    assert event_summary(started) == [("Normal", "Starting")]

    # It runs, and later stops for inactivity again: the same annotation value does not start it twice.
    runs = next_reconcile(restart, remote=Found(endpoint(state="STARTED")), now=later(hours=3, minutes=10))
    stops_again = next_reconcile(runs, remote=Found(endpoint(state="STOPPED")), now=later(hours=5))
    result = plan(stops_again)

    assert verdict(reconciled(runs))["Ready"] == ("True", "Started")
    assert result.actions == ()
    assert verdict(result)["Ready"] == ("True", "AutoStopped")
    assert result.status.auto_stopped == AutoStopRecord(generation=1, restart_requested_at=after)


@pytest.mark.parametrize(
    ("spec_change", "body"),
    [
        pytest.param({}, {"state": "STARTED"}, id="generation-only"),
        pytest.param(
            {"autoscaling": {"min_replicas": 1, "max_replicas": 2}},
            {"state": "STARTED", "autoscaling": {"min_replicas": 1, "max_replicas": 2}},
            id="with-a-scale-change",
        ),
    ],
)
def test_a_generation_change_starts_an_auto_stopped_endpoint(
    spec_change: dict[str, Any], body: dict[str, Any]
) -> None:
    stopped = auto_stopped()
    changed = next_reconcile(
        stopped, generation=2, spec=spec(inactive_timeout=60, **spec_change), now=later(hours=3)
    )

    result = plan(changed)

    assert patch_body(result) == body
    assert result.status.auto_stopped is None
    assert verdict(result)["Ready"] == ("False", "Starting")


def test_a_stop_first_seen_in_the_reconcile_of_a_spec_change_is_undone() -> None:
    first = dataclasses.replace(running(inactive_timeout=60), previous=status(inactive_timeout=60))
    stop_and_change = next_reconcile(
        first,
        generation=2,
        spec=spec(inactive_timeout=60, display_name="Chat"),
        remote=Found(endpoint(state="STOPPED")),
        now=later(minutes=90),
    )

    result = plan(stop_and_change)

    assert patch_body(result) == {"display_name": "Chat", "state": "STARTED"}
    assert result.status.auto_stopped is None


def test_auto_stop_is_not_involved_when_the_spec_says_stopped() -> None:
    result = plan(
        inputs(
            state="Stopped",
            inactive_timeout=60,
            remote=Found(endpoint(state="STOPPED")),
            previous=status(inactive_timeout=60),
        )
    )

    assert result.actions == ()
    assert verdict(result)["Ready"] == ("True", "Stopped")
    assert result.status.auto_stopped is None


def test_drift_while_auto_stopped_is_put_back_without_starting_the_endpoint() -> None:
    stopped = auto_stopped()
    rescaled = next_reconcile(
        stopped, remote=Found(endpoint(state="STOPPED", max_replicas=4)), now=later(hours=2)
    )

    result = plan(rescaled)

    assert patch_body(result) == {"autoscaling": {"min_replicas": 1, "max_replicas": 1}}
    assert result.status.auto_stopped == reconciled(stopped).auto_stopped


def test_an_auto_stopped_endpoint_started_by_hand_is_simply_running_again() -> None:
    stopped = auto_stopped()

    result = plan(next_reconcile(stopped, remote=Found(endpoint(state="STARTED")), now=later(hours=2)))

    assert result.actions == ()
    assert verdict(result) == IN_SYNC_STARTED
    assert result.status.auto_stopped is None


@pytest.mark.parametrize("seconds", [0, 20], ids=["patch-response", "next-poll"])
@pytest.mark.parametrize("trigger", ["annotation", "generation"])
def test_a_start_not_visible_yet_is_not_mistaken_for_a_new_auto_stop(trigger: str, seconds: int) -> None:
    """A new auto-stop needs the endpoint seen running (STARTED or STOPPING) since: right after a start
    PATCH the API may still show STOPPED, and no inactivity timeout can have passed."""
    stopped = auto_stopped()
    restart = next_reconcile(
        stopped,
        now=later(hours=3),
        **({"restart_requested_at": "r1"} if trigger == "annotation" else {"generation": 2}),
    )
    assert patch_body(plan(restart))["state"] == "STARTED"

    # With a 60-minute inactivity timeout, the endpoint still shows STOPPED this soon after the start.
    result = plan(next_reconcile(restart, now=later(hours=3, seconds=seconds)))

    assert verdict(result)["Ready"] != ("True", "AutoStopped")
    assert verdict(result)["Ready"][0] == "False"
    assert verdict(result)["Reconciling"][0] == "True"
    assert result.status.auto_stopped is None
    assert "AutoStopped" not in [e.reason for e in result.events]


@pytest.mark.parametrize("seen_before", ["PENDING", "STARTING", "STOPPED"])
def test_a_stop_of_an_endpoint_never_seen_running_is_not_an_auto_stop(seen_before: str) -> None:
    """Auto-stop on, spec unchanged, but the last status never showed the endpoint running: the
    inactivity timeout cannot be at work, so it is started."""
    first = dataclasses.replace(
        inputs(inactive_timeout=60, remote=Found(endpoint(state=seen_before))),
        previous=status(inactive_timeout=60),
    )
    assert reconciled(first).state == seen_before

    result = plan(next_reconcile(first, remote=Found(endpoint(state="STOPPED")), now=later(minutes=90)))

    assert result.status.auto_stopped is None
    assert patch_body(result) == {"state": "STARTED"}
    assert verdict(result)["Ready"] == ("False", "Starting")


@pytest.mark.parametrize("seen_before", ["STARTED", "STOPPING"])
def test_a_stop_of_an_endpoint_seen_running_is_an_auto_stop(seen_before: str) -> None:
    first = dataclasses.replace(
        inputs(inactive_timeout=60, remote=Found(endpoint(state=seen_before))),
        previous=status(inactive_timeout=60),
    )

    result = plan(next_reconcile(first, remote=Found(endpoint(state="STOPPED")), now=later(minutes=90)))

    assert result.actions == ()
    assert verdict(result)["Ready"] == ("True", "AutoStopped")
    assert result.status.auto_stopped == AutoStopRecord(generation=1)


# --- a start or stop the API does not show yet ----------------------------------------------------


def _state_change(direction: str) -> Inputs:
    """A reconcile at NOW that PATCHes a state change: a start of an endpoint stopped remotely (auto-stop
    off), or a stop asked for by a new generation."""
    if direction == "start":
        return inputs(remote=Found(endpoint(state="STOPPED")), previous=steady())
    return inputs(state="Stopped", generation=2, previous=steady())


STATE_CHANGES = [
    pytest.param("start", {"state": "STARTED"}, "Starting", id="start"),
    pytest.param("stop", {"state": "STOPPED"}, "Stopping", id="stop"),
]


@pytest.mark.parametrize(
    "after",
    [timedelta(seconds=0), timedelta(seconds=20), STATE_CHANGE_GRACE - timedelta(seconds=1)],
    ids=["patch-response", "next-poll", "just-before-the-grace-ends"],
)
@pytest.mark.parametrize(("direction", "body", "reason"), STATE_CHANGES)
def test_a_state_change_asked_for_moments_ago_is_not_asked_for_again(
    direction: str, body: dict[str, Any], reason: str, after: timedelta
) -> None:
    asked = _state_change(direction)
    assert patch_body(plan(asked)) == body
    assert verdict(reconciled(asked))["Reconciling"] == ("True", reason)

    # The API accepted the PATCH but still shows the old state.
    result = plan(next_reconcile(asked, now=NOW + after))

    assert result.actions == ()
    assert verdict(result)["Ready"][0] == "False"
    assert verdict(result)["Reconciling"][0] == "True"
    assert verdict(result)["Stalled"] == ("False", "NotStalled")


def test_an_endpoint_seen_stopping_out_of_band_is_started_as_soon_as_it_is_stopped() -> None:
    """Seen STOPPING, it cannot be started yet, though Reconciling already says Starting: the start goes
    out once it is STOPPED, not a grace period later (found by the out-of-band stop test under load)."""
    stopping = inputs(remote=Found(endpoint(state="STOPPING")), previous=steady())
    assert plan(stopping).actions == ()
    assert verdict(reconciled(stopping))["Reconciling"] == ("True", "Starting")

    stopped = next_reconcile(
        stopping, remote=Found(endpoint(state="STOPPED")), now=NOW + timedelta(seconds=5)
    )

    assert patch_body(plan(stopped)) == {"state": "STARTED"}


@pytest.mark.parametrize(
    "after",
    [STATE_CHANGE_GRACE, STATE_CHANGE_GRACE + timedelta(minutes=5)],
    ids=["when-the-grace-ends", "long-after"],
)
@pytest.mark.parametrize(("direction", "body", "reason"), STATE_CHANGES)
def test_a_state_change_still_not_visible_after_the_grace_is_asked_for_again(
    direction: str, body: dict[str, Any], reason: str, after: timedelta
) -> None:
    asked = _state_change(direction)

    result = plan(next_reconcile(asked, now=NOW + after))

    assert patch_body(result) == body
    assert verdict(result)["Reconciling"] == ("True", reason)


@pytest.mark.parametrize(
    ("drift", "fix"),
    [
        pytest.param(
            {"display_name": "renamed in the console"}, {"display_name": DEFAULT_DISPLAY_NAME}, id="rename"
        ),
        pytest.param(
            {"min_replicas": 2, "max_replicas": 3},
            {"autoscaling": {"min_replicas": 1, "max_replicas": 1}},
            id="rescale",
        ),
    ],
)
@pytest.mark.parametrize(("direction", "body", "reason"), STATE_CHANGES)
def test_a_name_or_scale_change_is_still_sent_during_the_grace(
    direction: str, body: dict[str, Any], reason: str, drift: dict[str, Any], fix: dict[str, Any]
) -> None:
    asked = _state_change(direction)
    assert isinstance(asked.remote, Found)
    not_visible_yet = asked.remote.endpoint.state

    result = plan(
        next_reconcile(asked, remote=Found(endpoint(state=not_visible_yet, **drift)), now=later(seconds=20))
    )

    assert patch_body(result) == fix
    assert verdict(result)["Reconciling"][0] == "True"


@pytest.mark.parametrize(("direction", "body", "reason"), STATE_CHANGES)
def test_a_new_generation_during_the_grace_asks_for_the_state_again(
    direction: str, body: dict[str, Any], reason: str
) -> None:
    """The grace is for the generation that asked: a new spec is applied in full."""
    asked = _state_change(direction)

    result = plan(
        next_reconcile(
            asked,
            generation=asked.generation + 1,
            spec=asked.spec.model_copy(update={"display_name": "Chat"}),
            now=later(seconds=20),
        )
    )

    assert patch_body(result) == {"display_name": "Chat", **body}
    assert verdict(result)["Reconciling"] == ("True", reason)


def _polls_within_the_grace(direction: str) -> list[Plan]:
    """The plans of the polls every 20 s after a state change PATCH, the API still showing the old state."""
    step = _state_change(direction)
    plans = []
    for seconds in range(20, int(STATE_CHANGE_GRACE.total_seconds()), 20):
        step = next_reconcile(step, now=later(seconds=seconds))
        plans.append(plan(step))
    return plans


@pytest.mark.parametrize(("direction", "body", "reason"), STATE_CHANGES)
def test_no_poll_within_the_grace_asks_for_the_state_again(
    direction: str, body: dict[str, Any], reason: str
) -> None:
    assert patch_body(plan(_state_change(direction))) == body

    assert [result.actions for result in _polls_within_the_grace(direction)] == [()] * 5


@pytest.mark.parametrize(("direction", "body", "reason"), STATE_CHANGES)
def test_every_poll_within_the_grace_keeps_the_reason_and_stays_quiet(
    direction: str, body: dict[str, Any], reason: str
) -> None:
    polls = _polls_within_the_grace(direction)

    assert [verdict(result)["Reconciling"] for result in polls] == [("True", reason)] * 5
    assert [verdict(result)["Ready"] for result in polls] == [("False", reason)] * 5
    assert [result.events for result in polls] == [()] * 5


# --- remote ERROR ---------------------------------------------------------------------------------


def _remote_error(**spec_fields: Any) -> Inputs:
    return next_reconcile(running(**spec_fields), remote=Found(endpoint(state="ERROR")), now=later(minutes=5))


def test_a_remote_error_stalls_without_touching_the_endpoint() -> None:
    result = plan(_remote_error())

    assert result.actions == ()
    assert verdict(result) == {
        "Ready": ("False", "RemoteError"),
        "Serving": ("False", "Error"),
        "Reconciling": ("False", "Reconciled"),
        "Stalled": ("True", "RemoteError"),
    }
    assert "the spec changes" in condition(result, "Stalled").message
    assert event_summary(result) == [("Warning", "RemoteError")]
    assert result.status.state == "ERROR"


def test_a_remote_error_is_not_reapplied_for_the_same_generation() -> None:
    step = _remote_error()
    for minutes in (10, 30, 120):
        step = next_reconcile(step, now=later(minutes=minutes))
        result = plan(step)
        assert result.actions == ()
        assert result.events == ()
        assert verdict(result)["Stalled"] == ("True", "RemoteError")


@pytest.mark.parametrize(
    ("spec_change", "body"),
    [
        pytest.param(
            {"autoscaling": {"min_replicas": 1, "max_replicas": 2}},
            {"autoscaling": {"min_replicas": 1, "max_replicas": 2}, "state": "STARTED"},
            id="fix-and-start",
        ),
        pytest.param({"state": "Stopped"}, {"state": "STOPPED"}, id="stop"),
    ],
)
def test_a_remote_error_is_reapplied_after_a_generation_change(
    spec_change: dict[str, Any], body: dict[str, Any]
) -> None:
    stalled = _remote_error()

    result = plan(next_reconcile(stalled, generation=2, spec=spec(**spec_change), now=later(minutes=30)))

    assert patch_body(result) == body
    assert verdict(result)["Stalled"] == ("False", "NotStalled")
    assert verdict(result)["Reconciling"][0] == "True"


def test_an_endpoint_that_recovers_from_error_by_itself_is_ready_again() -> None:
    stalled = _remote_error()

    result = plan(next_reconcile(stalled, remote=Found(endpoint(state="STARTED")), now=later(minutes=30)))

    assert result.actions == ()
    assert verdict(result) == IN_SYNC_STARTED
    assert event_summary(result) == [("Normal", "Started")]


# --- remote endpoint gone -------------------------------------------------------------------------


def test_a_remote_endpoint_deleted_outside_kubernetes_stalls_and_is_not_recreated() -> None:
    result = plan(next_reconcile(running(), remote=Gone(ENDPOINT_ID), now=later(minutes=5)))

    assert result.actions == ()
    assert verdict(result) == {
        "Ready": ("False", "RemoteDeleted"),
        "Serving": ("False", "RemoteDeleted"),
        "Reconciling": ("False", "Reconciled"),
        "Stalled": ("True", "RemoteDeleted"),
    }
    assert result.status.state is None
    assert result.status.endpoint_id == ENDPOINT_ID
    assert event_summary(result) == [("Warning", "RemoteDeleted")]


def test_a_deleted_remote_endpoint_is_not_recreated_after_a_generation_change_either() -> None:
    gone = next_reconcile(running(), remote=Gone(ENDPOINT_ID), now=later(minutes=5))

    result = plan(next_reconcile(gone, generation=2, spec=spec(display_name="Chat"), now=later(minutes=6)))

    assert result.actions == ()
    assert verdict(result)["Stalled"] == ("True", "RemoteDeleted")


# --- ObserveOnly ----------------------------------------------------------------------------------

OBSERVE_ONLY_CASES = [
    pytest.param(Found(endpoint()), 1, ("True", "Started"), ("False", "NotStalled"), id="in-sync"),
    pytest.param(
        Found(endpoint(display_name="renamed")),
        1,
        ("False", "Observing"),
        ("False", "NotStalled"),
        id="drifted-name",
    ),
    pytest.param(
        Found(endpoint(max_replicas=5)),
        1,
        ("False", "Observing"),
        ("False", "NotStalled"),
        id="drifted-scale",
    ),
    pytest.param(
        Found(endpoint(state="STOPPED")),
        1,
        ("False", "Observing"),
        ("False", "NotStalled"),
        id="stopped-remotely",
    ),
    pytest.param(
        Found(endpoint(state="STARTING")),
        1,
        ("False", "Observing"),
        ("False", "NotStalled"),
        id="in-transition",
    ),
    pytest.param(
        Found(endpoint(state="ERROR")), 1, ("False", "RemoteError"), ("True", "RemoteError"), id="error"
    ),
    pytest.param(
        Found(endpoint(state="ERROR")),
        2,
        ("False", "RemoteError"),
        ("True", "RemoteError"),
        id="error-new-generation",
    ),
    pytest.param(Gone(ENDPOINT_ID), 1, ("False", "RemoteDeleted"), ("True", "RemoteDeleted"), id="gone"),
    pytest.param(
        NotCreated(), 1, ("False", "InvalidSpec"), ("True", "InvalidSpec"), id="without-endpoint-id"
    ),
    pytest.param(
        CreateInFlight(()),
        1,
        ("False", "InvalidSpec"),
        ("True", "InvalidSpec"),
        id="interrupted-create-no-candidates",
    ),
]


@pytest.mark.parametrize(("remote", "generation", "ready", "stalled"), OBSERVE_ONLY_CASES)
def test_observe_only_never_produces_actions(
    remote: RemoteView, generation: int, ready: tuple[str, str], stalled: tuple[str, str]
) -> None:
    previous = reconciled(running(management_policy="ObserveOnly"))

    result = plan(
        inputs(
            management_policy="ObserveOnly",
            remote=remote,
            generation=generation,
            previous=previous,
            now=later(minutes=5),
        )
    )

    assert result.actions == ()
    assert verdict(result)["Ready"] == ready
    assert verdict(result)["Stalled"] == stalled


def test_observe_only_says_what_differs_and_mirrors_the_remote() -> None:
    result = plan(
        inputs(
            management_policy="ObserveOnly", remote=Found(endpoint(display_name="renamed", max_replicas=3))
        )
    )

    message = condition(result, "Ready").message
    assert "ObserveOnly" in message
    assert "display name is 'renamed'" in message
    assert "autoscaling is 1..3" in message
    assert result.status.display_name == "renamed"


def test_observe_only_without_an_endpoint_id_says_to_set_it() -> None:
    result = plan(inputs(management_policy="ObserveOnly", remote=NotCreated()))

    assert "spec.endpointId" in condition(result, "Stalled").message
    assert event_summary(result) == [("Warning", "InvalidSpec")]


def test_observe_only_in_transition_is_reconciling() -> None:
    result = plan(inputs(management_policy="ObserveOnly", remote=Found(endpoint(state="PENDING"))))

    assert verdict(result)["Reconciling"] == ("True", "Observing")


# --- recovery of an interrupted create ------------------------------------------------------------

INTENT = NOW
RECOVERY_TIME = later(minutes=5)
OTHER_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


def _interrupted_create(*candidates: DedicatedEndpoint, generation: int = 1, **spec_fields: Any) -> Inputs:
    """A create whose intent was recorded at INTENT; its response never was (crash, lost response).
    `candidates` are what the reconciler found again: the account's endpoints of the model that no other
    TogetherEndpoint owns, read in full."""
    intent = inputs(remote=NotCreated(), now=INTENT, generation=generation, **spec_fields)
    return next_reconcile(intent, remote=CreateInFlight(candidates), now=RECOVERY_TIME)


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        pytest.param((), "create", id="no-candidates"),
        pytest.param(
            (candidate("endpoint-new", created_at=INTENT + timedelta(seconds=3)),),
            "adopt endpoint-new",
            id="one-match",
        ),
        pytest.param(
            (candidate("endpoint-new", created_at=INTENT - timedelta(minutes=1)),),
            "adopt endpoint-new",
            id="one-match-within-clock-skew",
        ),
        pytest.param(
            (candidate("endpoint-new", created_at=INTENT - CREATE_CLOCK_SKEW),),
            "adopt endpoint-new",
            id="one-match-at-the-clock-skew-bound",
        ),
        pytest.param(
            (candidate("endpoint-early", created_at=INTENT - CREATE_CLOCK_SKEW - timedelta(seconds=1)),),
            "create",
            id="only-just-beyond-the-clock-skew",
        ),
        pytest.param(
            (
                candidate("endpoint-new", created_at=INTENT),
                candidate("endpoint-llama", model=OTHER_MODEL, created_at=INTENT),
            ),
            "adopt endpoint-new",
            id="other-model-ignored",
        ),
        pytest.param(
            (
                candidate("endpoint-new", created_at=INTENT),
                candidate("endpoint-last-week", created_at=INTENT - timedelta(days=7)),
            ),
            "adopt endpoint-new",
            id="older-endpoint-of-the-model-ignored",
        ),
        pytest.param(
            (
                candidate("endpoint-other", created_at=INTENT, display_name="team-b/mixtral"),
                candidate("endpoint-new", created_at=INTENT),
            ),
            "adopt endpoint-new",
            id="display-name-tells-same-model-and-time-apart",
        ),
        pytest.param(
            (candidate("endpoint-llama", model=OTHER_MODEL, created_at=INTENT),),
            "create",
            id="only-another-model",
        ),
        pytest.param(
            (candidate("endpoint-other", created_at=INTENT, display_name="team-b/mixtral"),),
            "create",
            id="only-another-display-name",
        ),
        pytest.param(
            (candidate("endpoint-last-week", created_at=INTENT - timedelta(days=7)),),
            "create",
            id="only-long-before-intent",
        ),
        pytest.param(
            (candidate("endpoint-a", created_at=INTENT), candidate("endpoint-b", created_at=INTENT)),
            "stall",
            id="several-matches",
        ),
    ],
)
def test_an_interrupted_create_is_found_again_before_anything_is_created(
    candidates: tuple[DedicatedEndpoint, ...], expected: str
) -> None:
    """A match has the spec's model, the desired display name and a creation time no earlier than the
    intent (less CREATE_CLOCK_SKEW); exactly one is adopted, none means no create happened, several stall."""
    result = plan(_interrupted_create(*candidates))

    if expected == "create":
        assert [type(a) for a in result.actions] == [CreateEndpoint]
        assert result.status.create_requested_at == RECOVERY_TIME
    elif expected == "stall":
        assert result.actions == ()
        assert verdict(result)["Stalled"] == ("True", "CreateIncomplete")
    else:
        assert result.actions == (AdoptEndpoint(expected.removeprefix("adopt ")),)


@pytest.mark.parametrize(
    ("display_name", "adopted"),
    [
        pytest.param(None, "endpoint-default", id="defaulted-namespace-slash-name"),
        pytest.param("Chat (prod)", "endpoint-given", id="given-in-the-spec"),
    ],
)
def test_an_interrupted_create_matches_the_display_name_it_would_have_sent(
    display_name: str | None, adopted: str
) -> None:
    candidates = (
        candidate("endpoint-default", created_at=INTENT, display_name=DEFAULT_DISPLAY_NAME),
        candidate("endpoint-given", created_at=INTENT, display_name="Chat (prod)"),
    )

    result = plan(_interrupted_create(*candidates, display_name=display_name))

    assert result.actions == (AdoptEndpoint(adopted),)


def test_adopting_an_interrupted_create_reports_creating() -> None:
    result = plan(_interrupted_create(candidate("endpoint-new", created_at=INTENT)))

    assert verdict(result) == {
        "Ready": ("False", "Creating"),
        "Serving": ("False", "NotCreated"),
        "Reconciling": ("True", "Creating"),
        "Stalled": ("False", "NotStalled"),
    }
    assert result.status.create_requested_at == INTENT


def test_an_ambiguous_interrupted_create_stalls_and_names_the_candidates() -> None:
    result = plan(
        _interrupted_create(
            candidate("endpoint-b", created_at=INTENT), candidate("endpoint-a", created_at=INTENT)
        )
    )

    message = condition(result, "Stalled").message
    assert "endpoint-a, endpoint-b" in message
    assert "spec.endpointId" in message
    assert verdict(result)["Ready"] == ("False", "CreateIncomplete")
    assert event_summary(result) == [("Warning", "CreateIncomplete")]


def test_an_ambiguous_interrupted_create_creates_nothing_on_later_reconciles() -> None:
    step = _interrupted_create(
        candidate("endpoint-a", created_at=INTENT), candidate("endpoint-b", created_at=INTENT)
    )
    # Even when the candidates later vanish from the list, the same generation creates nothing.
    for remote in (step.remote, CreateInFlight(())):
        step = next_reconcile(step, remote=remote, now=later(minutes=10))
        result = plan(step)
        assert result.actions == ()
        assert result.events == ()
        assert verdict(result)["Stalled"] == ("True", "CreateIncomplete")


# --- unknown remote state -------------------------------------------------------------------------


def test_an_unknown_remote_state_is_carried_verbatim_and_not_acted_on() -> None:
    result = plan(inputs(remote=Found(endpoint(state="DEGRADED"))))

    assert result.status.state == "DEGRADED"
    assert result.actions == ()
    assert verdict(result)["Ready"][0] == "False"
    assert verdict(result)["Serving"] == ("False", "Unknown")
    assert verdict(result)["Stalled"] == ("False", "NotStalled")
    assert "DEGRADED" in condition(result, "Ready").message


def test_an_unknown_remote_state_still_gets_a_stop_when_the_spec_says_stopped() -> None:
    result = plan(inputs(state="Stopped", remote=Found(endpoint(state="DEGRADED"))))

    assert patch_body(result) == {"state": "STOPPED"}
    assert result.status.state == "DEGRADED"


# --- failures -------------------------------------------------------------------------------------

AN_UPDATE = UpdateEndpoint(ENDPOINT_ID, UpdateEndpointRequest(display_name="Chat"))
# Ready and Serving exactly as the previous status had them.
KEPT = "kept"


def _http(cls: type[TogetherError], code: int, **extra: Any) -> TogetherError:
    return cls(
        "the server said no", method="PATCH", path=f"endpoints/{ENDPOINT_ID}", status_code=code, **extra
    )


NOT_READY = "not ready"


class FailureCase(NamedTuple):
    error: TogetherError | CredentialsMissing
    action: UpdateEndpoint | None
    """The action that failed; None: only looking failed."""
    reason: str
    ready: str
    """KEPT or NOT_READY."""
    stalled: bool
    reconciling: bool
    retry_after: float


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            FailureCase(
                error=_http(AuthError, 401),
                action=None,
                reason="Unauthorized",
                ready=NOT_READY,
                stalled=True,
                reconciling=False,
                retry_after=120.0,
            ),
            id="401",
        ),
        pytest.param(
            FailureCase(
                error=_http(AuthError, 403),
                action=AN_UPDATE,
                reason="Unauthorized",
                ready=NOT_READY,
                stalled=True,
                reconciling=False,
                retry_after=120.0,
            ),
            id="403-on-update",
        ),
        pytest.param(
            FailureCase(
                error=_http(RateLimitedError, 429, retry_after=42.0),
                action=AN_UPDATE,
                reason="RateLimited",
                ready=NOT_READY,
                stalled=False,
                reconciling=True,
                retry_after=42.0,
            ),
            id="429-on-update-retry-after-honoured",
        ),
        pytest.param(
            FailureCase(
                error=_http(RateLimitedError, 429),
                action=None,
                reason="RateLimited",
                ready=KEPT,
                stalled=False,
                reconciling=True,
                retry_after=10.0,
            ),
            id="429-while-observing-default-wait",
        ),
        pytest.param(
            FailureCase(
                error=_http(TransientError, 503),
                action=AN_UPDATE,
                reason="ApiUnavailable",
                ready=NOT_READY,
                stalled=False,
                reconciling=True,
                retry_after=10.0,
            ),
            id="503-on-update",
        ),
        pytest.param(
            FailureCase(
                error=_http(TransientError, 503, retry_after=17.0),
                action=None,
                reason="ApiUnavailable",
                ready=KEPT,
                stalled=False,
                reconciling=True,
                retry_after=17.0,
            ),
            id="503-while-observing-retry-after-honoured",
        ),
        pytest.param(
            FailureCase(
                error=TransientError("timed out", method="GET", path="endpoints"),
                action=None,
                reason="ApiUnavailable",
                ready=KEPT,
                stalled=False,
                reconciling=True,
                retry_after=10.0,
            ),
            id="timeout-while-observing",
        ),
        pytest.param(
            FailureCase(
                error=_http(PermanentError, 400),
                action=AN_UPDATE,
                reason="InvalidSpec",
                ready=NOT_READY,
                stalled=True,
                reconciling=False,
                retry_after=120.0,
            ),
            id="400-on-update",
        ),
        pytest.param(
            FailureCase(
                error=_http(PermanentError, 422),
                action=AN_UPDATE,
                reason="InvalidSpec",
                ready=NOT_READY,
                stalled=True,
                reconciling=False,
                retry_after=120.0,
            ),
            id="422-on-update",
        ),
        pytest.param(
            FailureCase(
                error=_http(NotFoundError, 404),
                action=AN_UPDATE,
                reason="RemoteDeleted",
                ready=NOT_READY,
                stalled=True,
                reconciling=False,
                retry_after=120.0,
            ),
            id="404-on-update",
        ),
        pytest.param(
            FailureCase(
                error=CredentialsMissing("Secret team-a/together not found"),
                action=None,
                reason="CredentialsNotFound",
                ready=NOT_READY,
                stalled=True,
                reconciling=False,
                retry_after=60.0,
            ),
            id="credentials-missing",
        ),
    ],
)
def test_a_failure_becomes_a_condition_and_a_retry_time(case: FailureCase) -> None:
    """Generation 2 asks for a new display name (AN_UPDATE) of an endpoint Ready at generation 1. A
    failure makes Ready False with its reason (NOT_READY), except a transient one while only looking:
    that keeps Ready and Serving as they were (KEPT), so GitOps health does not flap on every 429."""
    step = next_reconcile(running(), generation=2, spec=spec(display_name="Chat"), now=later(minutes=5))
    before = step.previous
    assert verdict(before)["Ready"] == ("True", "Started")

    failure = plan_failure(step, case.error, action=case.action)

    result = verdict(failure.status)
    if case.ready == KEPT:
        for kept in (ConditionType.READY, ConditionType.SERVING):
            assert failure.status.condition(kept) == before.condition(kept)
        moved = {ConditionType.RECONCILING, ConditionType.STALLED}
    else:
        assert result["Ready"] == ("False", case.reason)
        moved = set(ConditionType)
    assert result["Stalled"] == (("True", case.reason) if case.stalled else ("False", "NotStalled"))
    assert result["Reconciling"] == (("True", case.reason) if case.reconciling else ("False", "Reconciled"))
    assert failure.retry_after == case.retry_after
    assert failure.status.observed_generation == 2
    assert {c.observed_generation for c in failure.status.conditions if c.type in moved} == {2}


@pytest.mark.parametrize(
    ("secret_ref", "where"),
    [
        pytest.param(None, "the operator's TOGETHER_API_KEY", id="operator-wide-key"),
        pytest.param({"name": "together"}, "key 'api-key' of Secret 'together'", id="secret-default-key"),
        pytest.param(
            {"name": "together", "key": "token"}, "key 'token' of Secret 'together'", id="secret-custom-key"
        ),
    ],
)
def test_unauthorized_names_where_the_api_key_comes_from(
    secret_ref: dict[str, str] | None, where: str
) -> None:
    failure = plan_failure(inputs(api_key_secret_ref=secret_ref), _http(AuthError, 401), action=None)

    assert where in condition(failure.status, "Stalled").message


def test_credentials_not_found_carries_the_message_of_what_is_missing() -> None:
    missing = CredentialsMissing(
        "Secret team-a/together has no key api-key: add it or set apiKeySecretRef.key"
    )

    failure = plan_failure(inputs(), missing, action=None)

    assert condition(failure.status, "Stalled").message == missing.message


def test_a_retry_policy_sets_the_waits() -> None:
    policy = RetryPolicy(transient_seconds=1.0, auth_seconds=2.0, credentials_seconds=3.0)
    step = inputs()

    waits = [
        plan_failure(step, _http(TransientError, 502), action=None, retry=policy).retry_after,
        plan_failure(step, _http(AuthError, 401), action=None, retry=policy).retry_after,
        plan_failure(step, CredentialsMissing("no key"), action=None, retry=policy).retry_after,
    ]

    assert waits == [1.0, 2.0, 3.0]


def test_a_failure_keeps_the_last_observation_of_the_endpoint() -> None:
    step = next_reconcile(running(), now=later(minutes=5))

    failure = plan_failure(step, _http(TransientError, 502), action=None)

    assert failure.status.endpoint_id == ENDPOINT_ID
    assert failure.status.state == "STARTED"
    assert failure.status.endpoint_name == ENDPOINT_NAME


OBSERVING_FAILURES = [
    pytest.param(_http(RateLimitedError, 429, retry_after=3.0), "RateLimited", id="429"),
    pytest.param(_http(TransientError, 502), "ApiUnavailable", id="502"),
    pytest.param(TransientError("timed out", method="GET", path="endpoints"), "ApiUnavailable", id="timeout"),
]


@pytest.mark.parametrize(("error", "reason"), OBSERVING_FAILURES)
@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(running, id="ready"),
        pytest.param(auto_stopped, id="auto-stopped"),
        pytest.param(lambda: running(display_name="Chat"), id="updating"),
        pytest.param(_remote_error, id="remote-error"),
    ],
)
def test_a_transient_failure_while_observing_keeps_ready_and_serving(
    scenario: Callable[[], Inputs], error: TogetherError, reason: str
) -> None:
    """No GitOps health flapping: what Ready and Serving said is still the best knowledge. Only
    Reconciling says the API is not answering."""
    step = next_reconcile(scenario(), now=later(hours=4))
    before = step.previous

    failure = plan_failure(step, error, action=None)

    assert failure.status.condition(ConditionType.READY) == before.condition(ConditionType.READY)
    assert failure.status.condition(ConditionType.SERVING) == before.condition(ConditionType.SERVING)
    assert verdict(failure.status)["Reconciling"] == ("True", reason)
    assert failure.status.state == before.state
    assert failure.status.auto_stopped == before.auto_stopped


@pytest.mark.parametrize(("error", "reason"), OBSERVING_FAILURES)
def test_a_transient_failure_on_the_first_observation_is_not_ready(error: TogetherError, reason: str) -> None:
    """With no previous Ready to keep, the failure itself is the verdict."""
    failure = plan_failure(inputs(), error, action=None)

    assert verdict(failure.status) == {
        "Ready": ("False", reason),
        "Serving": ("False", "NotCreated"),
        "Reconciling": ("True", reason),
        "Stalled": ("False", "NotStalled"),
    }


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(TransientError("read timeout", method="POST", path="endpoints"), id="timeout"),
        pytest.param(_http(TransientError, 502), id="502"),
        pytest.param(_http(RateLimitedError, 429), id="429"),
    ],
)
def test_a_create_with_an_unknown_outcome_keeps_its_intent(error: TogetherError) -> None:
    """The intent recorded before the POST survives the failure, so the next reconcile looks for the
    endpoint (CreateInFlight) instead of POSTing again: one POST per resource, ever."""
    step = inputs(remote=NotCreated())
    [create] = plan(step).actions

    failure = plan_failure(step, error, action=create)

    assert failure.status.create_requested_at == NOW
    assert failure.status.to_patch()["createRequestedAt"] is not None
    assert failure.status.endpoint_id is None
    assert verdict(failure.status)["Ready"][0] == "False"

    # The POST had in fact succeeded: the next reconcile finds the endpoint and adopts it.
    found_again = plan(
        dataclasses.replace(
            step,
            previous=failure.status,
            remote=CreateInFlight((candidate("endpoint-new", created_at=NOW + timedelta(seconds=2)),)),
            now=later(seconds=30),
        )
    )
    assert found_again.actions == (AdoptEndpoint("endpoint-new"),)


def _error_then_fix() -> tuple[Inputs, Plan]:
    fixed = next_reconcile(
        _remote_error(),
        generation=2,
        spec=spec(autoscaling={"min_replicas": 1, "max_replicas": 2}),
        now=later(minutes=30),
    )
    return fixed, plan(fixed)


def _auto_stop_then_change() -> tuple[Inputs, Plan]:
    first = dataclasses.replace(running(inactive_timeout=60), previous=status(inactive_timeout=60))
    changed = next_reconcile(
        first,
        generation=2,
        spec=spec(inactive_timeout=60, display_name="Chat"),
        remote=Found(endpoint(state="STOPPED")),
        now=later(minutes=90),
    )
    return changed, plan(changed)


@pytest.mark.parametrize(
    "scenario", [_error_then_fix, _auto_stop_then_change], ids=["remote-error", "auto-stop"]
)
def test_a_generation_whose_patch_failed_transiently_is_applied_on_the_next_reconcile(
    scenario: Callable[[], tuple[Inputs, Plan]],
) -> None:
    step, planned = scenario()
    [update] = planned.actions
    assert isinstance(update, UpdateEndpoint)
    assert update.request.state == "STARTED"
    failure = plan_failure(step, _http(TransientError, 503), action=update)

    assert failure.status.observed_generation == 2
    assert failure.status.reconciled_generation == 1

    retry = plan(dataclasses.replace(step, previous=failure.status, now=step.now + timedelta(seconds=10)))

    assert [a.request.state for a in retry.actions if isinstance(a, UpdateEndpoint)] == ["STARTED"]
    assert retry.status.auto_stopped is None
    assert verdict(retry)["Stalled"] == ("False", "NotStalled")
    assert retry.status.reconciled_generation == 2


@pytest.mark.parametrize(
    ("error", "action"),
    [
        pytest.param(_http(TransientError, 503), AN_UPDATE, id="503-on-update"),
        pytest.param(_http(RateLimitedError, 429), None, id="429-while-observing"),
        pytest.param(_http(AuthError, 401), None, id="401"),
        pytest.param(_http(PermanentError, 400), AN_UPDATE, id="400-on-update"),
        pytest.param(CredentialsMissing("Secret team-a/together not found"), None, id="credentials"),
    ],
)
def test_reconciled_generation_moves_only_with_a_plan_without_api_failure(
    error: TogetherError | CredentialsMissing, action: UpdateEndpoint | None
) -> None:
    """observedGeneration is written on failures too; reconciledGeneration only by `plan`, as it is
    what "this spec was applied" is judged by."""
    first = running()
    assert reconciled(first).reconciled_generation == 1
    step = next_reconcile(first, generation=2, spec=spec(display_name="Chat"), now=later(minutes=5))

    failure = plan_failure(step, error, action=action)

    assert failure.status.observed_generation == 2
    assert failure.status.reconciled_generation == 1
    assert reconciled(step).reconciled_generation == 2


# --- events ---------------------------------------------------------------------------------------


def test_one_normal_event_per_change_of_verdict() -> None:
    steps: list[tuple[RemoteView, list[tuple[str, str]]]] = [
        (NotCreated(), [("Normal", "Creating")]),
        (Found(endpoint(state="PENDING")), [("Normal", "Starting")]),
        (Found(endpoint(state="STARTING")), []),
        (Found(endpoint(state="STARTED")), [("Normal", "Started")]),
        (Found(endpoint(state="STARTED")), []),
        (Found(endpoint(state="STARTED", display_name="renamed")), [("Normal", "Updating")]),
        (Found(endpoint(state="STARTED", display_name="renamed")), []),
        (Found(endpoint(state="STARTED")), [("Normal", "Started")]),
    ]
    previous = TogetherEndpointStatus()

    seen = []
    for minute, (remote, _) in enumerate(steps):
        result = plan(inputs(remote=remote, previous=previous, now=later(minutes=minute)))
        seen.append(event_summary(result))
        previous = result.status

    assert seen == [expected for _, expected in steps]


StallCase = Callable[[TogetherEndpointStatus], tuple[TogetherEndpointStatus, tuple[Event, ...]]]


def _planned(**fields: Any) -> StallCase:
    def case(previous: TogetherEndpointStatus) -> tuple[TogetherEndpointStatus, tuple[Event, ...]]:
        result = plan(inputs(previous=previous, **fields))
        return result.status, result.events

    return case


def _failed(error: TogetherError | CredentialsMissing, action: UpdateEndpoint | None = None) -> StallCase:
    def case(previous: TogetherEndpointStatus) -> tuple[TogetherEndpointStatus, tuple[Event, ...]]:
        failure = plan_failure(inputs(previous=previous), error, action=action)
        return failure.status, failure.events

    return case


STALL_CASES = [
    pytest.param(
        _planned(remote=NotCreated(), hardware="8x_nvidia_h200_140gb_sxm"),
        "HardwareNotSupported",
        id="HardwareNotSupported",
    ),
    pytest.param(
        _planned(
            remote=NotCreated(),
            hardware=None,
            gpu={"type": "h100", "count": 2},
            hardware_options=(hardware("2x_nvidia_h100_80gb_sxm"), hardware("2x_nvidia_h100_80gb_pcie")),
        ),
        "HardwareAmbiguous",
        id="HardwareAmbiguous",
    ),
    pytest.param(
        _planned(remote=NotCreated(), hardware_options=()), "ModelNotSupported", id="ModelNotSupported"
    ),
    pytest.param(
        _planned(remote=NotCreated(), management_policy="ObserveOnly"),
        "InvalidSpec",
        id="InvalidSpec-observe",
    ),
    pytest.param(_failed(_http(PermanentError, 400), AN_UPDATE), "InvalidSpec", id="InvalidSpec-400"),
    pytest.param(_planned(remote=Found(endpoint(state="ERROR"))), "RemoteError", id="RemoteError"),
    pytest.param(_planned(remote=Gone(ENDPOINT_ID)), "RemoteDeleted", id="RemoteDeleted"),
    pytest.param(
        _planned(remote=CreateInFlight((candidate("endpoint-a"), candidate("endpoint-b")))),
        "CreateIncomplete",
        id="CreateIncomplete",
    ),
    pytest.param(_failed(_http(AuthError, 401)), "Unauthorized", id="Unauthorized"),
    pytest.param(
        _failed(CredentialsMissing("Secret team-a/together not found")),
        "CredentialsNotFound",
        id="CredentialsNotFound",
    ),
]


@pytest.mark.parametrize(("case", "reason"), STALL_CASES)
def test_every_stalled_reason_is_a_warning_event_once(case: StallCase, reason: str) -> None:
    was_ready = reconciled(running())

    stalled, events = case(was_ready)
    _, repeated = case(stalled)

    assert verdict(stalled)["Stalled"] == ("True", reason)
    assert [(str(e.type), e.reason) for e in events] == [("Warning", reason)]
    assert events[0].message == condition(stalled, "Stalled").message != ""
    assert repeated == ()


def test_no_event_while_the_verdict_is_unchanged() -> None:
    scenarios = [
        running(),
        auto_stopped(),
        _remote_error(),
        inputs(remote=Found(endpoint(state="STOPPED")), state="Stopped"),
    ]
    for first in scenarios:
        step = next_reconcile(first, now=first.now + timedelta(minutes=1))
        for _ in range(3):
            assert plan(step).events == ()
            step = next_reconcile(step, now=step.now + timedelta(minutes=1))


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(running(), id="first-reconcile"),
        pytest.param(
            next_reconcile(running(), now=later(minutes=5)),
            id="after-ready",
        ),
    ],
)
def test_a_failure_repeated_while_rate_limited_does_not_repeat_its_event(step: Inputs) -> None:
    first = plan_failure(step, _http(RateLimitedError, 429, retry_after=1.0), action=None)
    second = plan_failure(
        dataclasses.replace(step, previous=first.status),
        _http(RateLimitedError, 429, retry_after=2.0),
        action=None,
    )

    assert event_summary(first) == [("Normal", "RateLimited")]
    assert second.events == ()


# --- lastTransitionTime and lastSyncTime ----------------------------------------------------------


def test_last_transition_time_is_kept_while_a_condition_status_is_unchanged() -> None:
    ready = running()  # at NOW
    later_poll = next_reconcile(ready, now=later(hours=1))
    drifted = next_reconcile(later_poll, remote=Found(endpoint(display_name="renamed")), now=later(hours=2))

    times = {c.type: c.last_transition_time for c in reconciled(later_poll).conditions}
    after_drift = {c.type: c.last_transition_time for c in reconciled(drifted).conditions}

    assert set(times.values()) == {NOW}
    assert after_drift == {
        "Ready": later(hours=2),
        "Serving": NOW,
        "Reconciling": later(hours=2),
        "Stalled": NOW,
    }


def test_last_transition_time_is_kept_when_only_the_reason_changes() -> None:
    creating = inputs(remote=NotCreated())
    starting = next_reconcile(creating, remote=Found(endpoint(state="PENDING")), now=later(minutes=1))

    reconciling = condition(reconciled(starting), "Reconciling")

    assert reconciling.reason == "Starting"
    assert reconciling.last_transition_time == NOW


@pytest.mark.parametrize(
    ("after", "remote", "expected_sync"),
    [
        pytest.param(later(minutes=1), endpoint(), NOW, id="unchanged"),
        pytest.param(later(hours=1), endpoint(), NOW, id="unchanged-for-an-hour"),
        pytest.param(later(days=30), endpoint(), NOW, id="unchanged-for-a-month"),
        pytest.param(later(minutes=1), endpoint(state="STOPPING"), later(minutes=1), id="state-changed"),
        pytest.param(
            later(minutes=1),
            endpoint(name="devuser/renamed-1"),
            later(minutes=1),
            id="observed-field-changed",
        ),
    ],
)
def test_last_sync_time_moves_only_with_a_real_change(
    after: datetime, remote: DedicatedEndpoint, expected_sync: datetime
) -> None:
    first = running()

    result = plan(next_reconcile(first, remote=Found(remote), now=after))

    assert result.status.last_sync_time == expected_sync


def test_a_poll_that_changes_nothing_writes_nothing() -> None:
    first = running()

    result = plan(next_reconcile(first, now=later(minutes=3)))

    assert result.status == reconciled(first)
    assert result.actions == ()
    assert result.events == ()


@pytest.mark.parametrize("remote", [Gone(ENDPOINT_ID), NotCreated()], ids=["gone", "not-created"])
def test_last_sync_time_is_only_set_by_an_observation(remote: RemoteView) -> None:
    result = plan(next_reconcile(running(), remote=remote, now=later(hours=1)))

    assert result.status.last_sync_time == NOW


# --- credentials ----------------------------------------------------------------------------------

SECRET_KEY_VALUE = "tgp_v1_SECRET-0123456789abcdef"


def test_the_api_key_never_appears_anywhere_in_a_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", SECRET_KEY_VALUE)
    with_secret: dict[str, Any] = {"api_key_secret_ref": {"name": "together", "key": "api-key"}}
    outputs: list[Any] = [
        plan(inputs(remote=NotCreated(), **with_secret)),
        plan(inputs(remote=Found(endpoint(display_name="x")), **with_secret)),
        plan(inputs(remote=Gone(ENDPOINT_ID))),
        plan_failure(inputs(**with_secret), _http(AuthError, 401), action=None),
        plan_failure(inputs(), _http(AuthError, 403), action=None),
        plan_failure(inputs(), CredentialsMissing("Secret team-a/together not found"), action=None),
    ]

    for output in outputs:
        written = (
            json.dumps(output.status.to_patch()) + repr(output.events) + repr(getattr(output, "actions", ()))
        )
        assert SECRET_KEY_VALUE not in written
        assert "Bearer" not in written
    assert not any("key" in f.name or "token" in f.name for f in dataclasses.fields(Inputs))


@pytest.mark.parametrize("prompt_cache", [True, False])
def test_a_prompt_cache_setting_is_ignored_with_one_warning_per_generation(prompt_cache: bool) -> None:
    first_inputs = inputs(remote=NotCreated(), prompt_cache=prompt_cache)

    first = plan(first_inputs)
    again = plan(next_reconcile(first_inputs, remote=Found(endpoint())))

    create = first.actions[0]
    assert isinstance(create, CreateEndpoint)
    assert "disable_prompt_cache" not in create.request.to_body()
    warnings = [e for e in first.events if e.type == "Warning"]
    assert [e.reason for e in warnings] == ["PromptCacheIgnored"]
    assert "promptCache" in warnings[0].message
    assert all(e.reason != "PromptCacheIgnored" for e in again.events)


@pytest.mark.parametrize(
    ("failures", "suggested", "jitter", "expected"),
    [
        pytest.param(1, 10.0, 1.0, 10.0, id="first-failure-waits-what-the-error-says"),
        pytest.param(3, 10.0, 1.0, 40.0, id="doubles-per-repeat"),
        pytest.param(12, 10.0, 1.0, 300.0, id="capped"),
        pytest.param(3, 10.0, 1.2, 48.0, id="jittered"),
        pytest.param(1, 10.0, 0.8, 10.0, id="never-sooner-than-retry-after"),
    ],
)
def test_consecutive_failures_back_off_exponentially_with_jitter(
    failures: int, suggested: float, jitter: float, expected: float
) -> None:
    assert RetryPolicy().backoff(failures, suggested, jitter) == pytest.approx(expected)


def test_an_endpoint_id_another_resource_owns_is_refused() -> None:
    refused = plan(
        dataclasses.replace(
            inputs(endpoint_id="endpoint-taken", remote=NotCreated()), endpoint_owned_by="team-b/bot"
        )
    )

    assert refused.actions == ()
    assert verdict(refused)["Stalled"] == ("True", "EndpointOwnedElsewhere")
    assert "team-b/bot" in condition(refused, "Stalled").message
