"""Create safety without a crash (issue 11, item 1): recovery matches what the create sent, the outcome
window runs from when the create was found in doubt, only a 4xx proves nothing was created, and an
unreadable 2xx still records the endpoint id it carried."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from together_operator.core import (
    CREATE_CLOCK_SKEW,
    CREATE_OUTCOME_WINDOW,
    CREATE_SEND_DEADLINE,
    AdoptEndpoint,
    CreateEndpoint,
    CreateInFlight,
    Inputs,
    KeepFinalizer,
    NotCreated,
    OpenCreate,
    create_may_still_land,
    may_send_create,
    plan,
    plan_deletion,
    plan_failure,
    rival_creates,
)
from together_operator.resource import CreateIntent
from together_operator.together.errors import (
    PermanentError,
    RateLimitedError,
    TogetherError,
    TransientError,
    UnexpectedResponseError,
)

from .builders import HARDWARE, NOW, candidate, condition, deletion, inputs, later, spec, verdict


def _create_failed(error: TogetherError, *, failed_after: float = 0.0) -> Inputs:
    """The reconcile after a create (planned at NOW) failed with `error`, `failed_after` seconds later."""
    step = inputs(remote=NotCreated())
    [create] = plan(step).actions
    assert isinstance(create, CreateEndpoint)
    failure = plan_failure(step, error, action=create, failed_at=NOW + timedelta(seconds=failed_after))
    return replace(step, previous=failure.status, create_answered=failure.create_answered)


def _timeout() -> TransientError:
    return TransientError("ReadTimeout: no response within 30s", method="POST", path="endpoints")


def _status(code: int) -> TogetherError:
    kind: type[TogetherError] = {429: RateLimitedError, 400: PermanentError}.get(code, TransientError)
    return kind("boom", method="POST", path="endpoints", status_code=code)


def test_recovery_matches_the_display_name_that_was_sent_not_the_one_the_spec_has_now() -> None:
    """Reproduced end to end: editing displayName while a create's outcome was unknown left two
    endpoints for one resource."""
    failed = _create_failed(_timeout())
    edited = replace(
        failed,
        spec=spec(display_name="Chat (prod)"),
        generation=2,
        remote=CreateInFlight((candidate("endpoint-sent", created_at=NOW),)),
        now=later(seconds=20),
    )

    assert plan(edited).actions == (AdoptEndpoint("endpoint-sent"),)


def test_recovery_matches_the_hardware_that_was_sent() -> None:
    failed = _create_failed(_timeout())
    step = replace(
        failed,
        remote=CreateInFlight(
            (
                candidate("endpoint-other-gpu", created_at=NOW, hardware="1x_nvidia_h100_80gb_sxm"),
                candidate("endpoint-sent", created_at=NOW, hardware=HARDWARE),
            )
        ),
        now=later(seconds=20),
    )

    assert plan(step).actions == (AdoptEndpoint("endpoint-sent"),)


def test_the_outcome_window_runs_from_when_the_create_was_found_in_doubt() -> None:
    """The POST may have waited for the rate limiter and then for a 30 s timeout: the server may still
    be making the endpoint a window after the failure, not a window after the plan."""
    failed = _create_failed(_timeout(), failed_after=45)
    step = replace(failed, remote=CreateInFlight(()), now=later(seconds=45) + CREATE_OUTCOME_WINDOW / 2)

    assert plan(step).actions == ()
    assert replace(step, now=later(seconds=45) + CREATE_OUTCOME_WINDOW).remote == step.remote
    assert [type(a) for a in plan(replace(step, now=later(seconds=45) + CREATE_OUTCOME_WINDOW)).actions] == [
        CreateEndpoint
    ]


@pytest.mark.parametrize(
    ("error", "in_doubt"),
    [
        pytest.param(_status(429), False, id="429"),
        pytest.param(_status(400), False, id="400"),
        pytest.param(_status(500), True, id="500"),
        pytest.param(_status(503), True, id="503"),
        pytest.param(_timeout(), True, id="no-response"),
        pytest.param(
            UnexpectedResponseError(
                "unexpected response body", method="POST", path="endpoints", status_code=200
            ),
            True,
            id="unreadable-2xx",
        ),
    ],
)
def test_only_a_4xx_answer_to_a_create_proves_nothing_was_created(
    error: TogetherError, in_doubt: bool
) -> None:
    failed = _create_failed(error)

    assert create_may_still_land(replace(failed, now=later(seconds=5))) is in_doubt


def test_an_unreadable_2xx_create_answer_still_records_the_endpoint_id_it_carried() -> None:
    unreadable = UnexpectedResponseError(
        "unexpected response body: state: Field required",
        method="POST",
        path="endpoints",
        status_code=200,
        endpoint_id="endpoint-made",
    )

    failed = _create_failed(unreadable)

    assert failed.previous.endpoint_id == "endpoint-made"


def test_the_intent_records_what_the_create_sends() -> None:
    step = inputs(remote=NotCreated(), display_name="Chat")
    result = plan(step)
    [create] = result.actions
    assert isinstance(create, CreateEndpoint)

    intent = result.status.create_intent

    assert intent is not None
    assert (intent.model, intent.hardware, intent.display_name) == (
        create.request.model,
        create.request.hardware,
        create.request.display_name,
    )


def test_an_interrupted_create_is_settled_by_its_intent_however_often_the_operator_restarts() -> None:
    """The intent is written before the POST waits for a call slot, and the POST goes out within
    CREATE_SEND_DEADLINE of it or not at all: an operator killed every few seconds (which never lives a
    whole window) still creates again once nothing showed a window after that deadline."""
    step = inputs(remote=NotCreated())
    intent_written = plan(step).status  # then the process was killed, its POST waiting for a slot
    settled = NOW + CREATE_SEND_DEADLINE + CREATE_OUTCOME_WINDOW
    waiting = replace(
        step, previous=intent_written, remote=CreateInFlight(()), now=settled - timedelta(seconds=1)
    )

    assert create_may_still_land(waiting)
    assert [type(a) for a in plan(replace(waiting, now=settled)).actions] == [CreateEndpoint]


@pytest.mark.parametrize(
    ("seconds_after_intent", "may_send"),
    [
        (0, True),
        (CREATE_SEND_DEADLINE.total_seconds(), True),
        (CREATE_SEND_DEADLINE.total_seconds() + 1, False),
    ],
)
def test_a_post_goes_out_within_the_send_deadline_of_its_intent_or_not_at_all(
    seconds_after_intent: float, may_send: bool
) -> None:
    assert may_send_create(NOW, later(seconds=seconds_after_intent)) is may_send


# --- two resources, one interrupted create --------------------------------------------------------

RIVAL = OpenCreate(uid="uid-b", name="team-b/mixtral", requested_at=NOW)


def _recovering(*rivals: OpenCreate, created_at: datetime = NOW) -> Inputs:
    """This resource's create timed out; one endpoint matching what it sent is listed, owned by none."""
    failed = _create_failed(_timeout())
    return replace(
        failed,
        remote=CreateInFlight((candidate("endpoint-one", created_at=created_at),)),
        now=later(seconds=20),
        rival_creates=rivals,
    )


def test_two_resources_that_sent_the_same_create_cannot_both_adopt_one_endpoint() -> None:
    """Another resource sent the same model, hardware and display name and has not recorded an endpoint
    either: the one endpoint may be its create's. Adopting it could give two resources one endpoint."""
    result = plan(_recovering(RIVAL))

    assert result.actions == ()
    assert verdict(result)["Stalled"] == ("True", "CreateIncomplete")
    assert "team-b/mixtral" in condition(result, "Stalled").message


def test_a_rival_whose_create_was_sent_after_the_endpoint_appeared_is_not_in_the_way() -> None:
    late_rival = replace(RIVAL, requested_at=NOW + CREATE_CLOCK_SKEW + timedelta(seconds=1))

    assert plan(_recovering(late_rival)).actions == (AdoptEndpoint("endpoint-one"),)


def test_rivals_are_the_other_resources_with_an_open_create_of_the_same_intent() -> None:
    intent = CreateIntent(model="m", hardware="h", display_name="d")
    index = {
        ("m", "h", "d"): [
            ("uid-a", "team-a/mixtral", NOW.isoformat()),
            ("uid-b", "team-b/mixtral", NOW.isoformat()),
        ],
        ("m", "h", "other"): [("uid-c", "team-c/mixtral", NOW.isoformat())],
    }

    assert rival_creates(index, intent, "uid-a") == (RIVAL,)


def test_deleting_does_not_take_an_endpoint_a_rival_create_may_have_made() -> None:
    step = deletion(
        recorded=_create_failed(_timeout()).previous,
        now=later(minutes=5),
        key_resolved=True,
        candidates=(candidate("endpoint-one", created_at=NOW),),
        rival_creates=(RIVAL,),
    )

    outcome = plan_deletion(step)

    assert isinstance(outcome, KeepFinalizer)
    assert "team-b/mixtral" in outcome.message
