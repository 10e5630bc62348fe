"""A create whose outcome is unknown (operator killed mid-call, timeout, lost response) is not repeated
while it may still land: finding nothing right after the intent proves nothing.

Found by tests/faults/test_sigkill.py: the operator killed 1 s into a create the server took 8 s to
finish came back, listed nothing, and POSTed a second endpoint (the first became an orphan).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from together_operator.core import (
    CREATE_OUTCOME_WINDOW,
    CREATE_SEND_DEADLINE,
    AdoptEndpoint,
    CreateEndpoint,
    CreateInFlight,
    Inputs,
    NotCreated,
    create_may_still_land,
    plan,
)
from together_operator.resource import ManagementPolicy
from together_operator.together.models import DedicatedEndpoint

from .builders import NOW, candidate, condition, inputs, next_reconcile, verdict

INTENT = NOW
SETTLED_AFTER_INTENT = CREATE_SEND_DEADLINE + CREATE_OUTCOME_WINDOW
"""The POST went out by CREATE_SEND_DEADLINE after its intent, if at all, and shows a window later."""


def _recovery(seconds_after_intent: float, *found: DedicatedEndpoint) -> Inputs:
    """The reconcile after a create whose intent was recorded at INTENT and whose answer never was;
    `found`: the unowned endpoints of the model it saw."""
    intent = inputs(remote=NotCreated(), now=INTENT)
    return next_reconcile(
        intent, remote=CreateInFlight(found), now=INTENT + timedelta(seconds=seconds_after_intent)
    )


@pytest.mark.parametrize("seconds", [0, 3, 30, SETTLED_AFTER_INTENT.total_seconds() - 1])
def test_nothing_found_while_the_create_may_still_land_waits_instead_of_creating_again(
    seconds: float,
) -> None:
    step = _recovery(seconds)

    result = plan(step)

    assert result.actions == ()
    assert verdict(result)["Reconciling"] == ("True", "Creating")
    assert verdict(result)["Ready"] == ("False", "Creating")
    assert "waiting for the outcome of the create" in condition(result, "Ready").message
    # The intent stays as it was: the window is counted from the first request, not from each look.
    assert result.status.create_requested_at == INTENT
    assert create_may_still_land(step)


def test_waiting_for_the_outcome_posts_no_repeated_event() -> None:
    first = plan(_recovery(3))
    again = plan(replace(_recovery(33), previous=first.status))

    assert again.events == ()
    assert again.status == first.status


@pytest.mark.parametrize("seconds", [SETTLED_AFTER_INTENT.total_seconds(), 300])
def test_nothing_found_once_the_window_has_passed_creates_again(seconds: float) -> None:
    step = _recovery(seconds)

    result = plan(step)

    assert [type(action) for action in result.actions] == [CreateEndpoint]
    assert not create_may_still_land(step)


def test_the_endpoint_showing_up_within_the_window_is_adopted_at_once() -> None:
    result = plan(_recovery(5, candidate("endpoint-late", created_at=INTENT + timedelta(seconds=8))))

    assert result.actions == (AdoptEndpoint("endpoint-late"),)


def test_a_stall_that_forbids_creating_is_not_hidden_by_the_wait() -> None:
    """ObserveOnly never creates: it says so at once, waiting or not."""
    intent = inputs(remote=NotCreated(), now=INTENT)
    step = next_reconcile(
        intent,
        remote=CreateInFlight(()),
        now=INTENT + timedelta(seconds=3),
        spec=intent.spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE_ONLY}),
    )

    result = plan(step)

    assert verdict(result)["Stalled"] == ("True", "InvalidSpec")


def test_a_create_the_server_answered_with_an_error_is_not_waited_for() -> None:
    """A 429 or 5xx answer means the request is over: what it did (if anything) is already listed, so
    finding nothing proves nothing was made. Only a create without an answer (timeout, dropped
    connection, operator killed) may still be running on the server."""
    step = replace(_recovery(3), create_answered=True)

    result = plan(step)

    assert not create_may_still_land(step)
    assert [type(action) for action in result.actions] == [CreateEndpoint]
