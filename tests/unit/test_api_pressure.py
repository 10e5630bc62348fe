"""API pressure (issue 11, item 4): a Retry-After of 0 (or a date in the past) never makes a resource
hammer the API, and a value the API normalised is not PATCHed again and again.

Reproduced end to end before: four resources under 429 with `Retry-After: 0` made 300 calls in 30 s."""

from __future__ import annotations

from dataclasses import replace

import pytest

from together_operator.core import (
    Found,
    Inputs,
    KeepFinalizer,
    Plan,
    RetryPolicy,
    UpdateEndpoint,
    plan,
    plan_after_action,
    plan_deletion,
    plan_failure,
)
from together_operator.together.errors import RateLimitedError, TogetherError, TransientError
from together_operator.together.http_client import retry_delay

from .builders import (
    condition,
    deletion,
    endpoint,
    inputs,
    steady,
    verdict,
)

POLICY = RetryPolicy(transient_seconds=10.0)


def _told_to_retry_at_once(kind: type[RateLimitedError | TransientError], code: int) -> TogetherError:
    return kind("busy", method="GET", path="endpoints/x", status_code=code, retry_after=0.0)


@pytest.mark.parametrize(
    "error",
    [_told_to_retry_at_once(RateLimitedError, 429), _told_to_retry_at_once(TransientError, 503)],
    ids=["429", "503"],
)
def test_a_retry_after_of_zero_still_waits_the_transient_interval_doubling(error: TogetherError) -> None:
    failure = plan_failure(inputs(), error, action=None, retry=POLICY)

    waits = [POLICY.backoff(n, failure.retry_after, 1.0) for n in (1, 2, 3)]

    assert waits == [10.0, 20.0, 40.0]


def test_a_retry_after_longer_than_the_interval_is_honoured() -> None:
    error = RateLimitedError("busy", method="GET", path="e", status_code=429, retry_after=42.0)

    assert plan_failure(inputs(), error, action=None, retry=POLICY).retry_after == 42.0


def test_deleting_under_a_retry_after_of_zero_waits_the_transient_interval() -> None:
    step = deletion(retry=POLICY, key_resolved=True, error=_told_to_retry_at_once(RateLimitedError, 429))

    outcome = plan_deletion(step)

    assert isinstance(outcome, KeepFinalizer)
    assert outcome.retry_after == 10.0


@pytest.mark.parametrize("retries_done", [0, 1, 2])
def test_the_client_never_retries_sooner_than_its_backoff_whatever_retry_after_says(
    retries_done: int,
) -> None:
    error = _told_to_retry_at_once(RateLimitedError, 429)

    delays = [retry_delay(retries_done, error) for _ in range(50)]

    assert all(delay is not None and delay >= 0.5 * 2**retries_done for delay in delays)


# --- values the API normalises --------------------------------------------------------------------


def _patched(sent_display_name: str, answered: str) -> tuple[Inputs, Plan]:
    """A PATCH of the display name, and the plan from what Together answered."""
    step = inputs(display_name=sent_display_name, generation=2, previous=steady())
    updating = plan(step)
    [action] = updating.actions
    assert isinstance(action, UpdateEndpoint)
    assert action.request.display_name == sent_display_name
    return step, plan_after_action(step, updating, action, endpoint(display_name=answered))


def test_a_patch_answered_with_a_normalised_value_stalls_instead_of_patching_again() -> None:
    step, after = _patched(" Chat ", answered="Chat")

    assert verdict(after)["Stalled"] == ("True", "InvalidSpec")
    assert "'Chat'" in condition(after, "Stalled").message
    again = plan(replace(step, previous=after.status, remote=Found(endpoint(display_name="Chat"))))
    assert again.actions == ()


def test_a_patch_whose_answer_does_not_show_it_yet_does_not_stall() -> None:
    _, after = _patched("Chat", answered="team-a/mixtral")

    assert verdict(after)["Stalled"][0] == "False"
