"""Deletion safety (issue 11, item 2): once deletion starts nothing is created, started or updated; a 404
means "deleted" only to the key the endpoint was created with; a DELETE that did not take is sent again."""

from __future__ import annotations

from dataclasses import replace

from together_operator.core import (
    DELETE_RESEND_AFTER,
    Found,
    Gone,
    KeepFinalizer,
    NotCreated,
    Released,
    SendDelete,
    hold,
    plan,
    plan_after_action,
    plan_deletion,
)
from together_operator.together.errors import NotFoundError

from .builders import (
    ENDPOINT_ID,
    NOW,
    deletion,
    endpoint,
    inputs,
    later,
    status,
    verdict,
)

KEY_A, KEY_B = "fingerprint-a", "fingerprint-b"


def test_nothing_is_touched_once_deletion_has_started() -> None:
    held = hold(finalizer_held=True, paused=False, deleting=True, resync_seconds=600)

    assert held is not None


def test_the_key_an_endpoint_was_created_with_is_recorded_with_its_id() -> None:
    step = replace(inputs(remote=NotCreated()), credential_fingerprint=KEY_A)
    creating = plan(step)
    [create] = creating.actions

    after = plan_after_action(step, creating, create, endpoint(state="PENDING"))

    assert (after.status.endpoint_id, after.status.api_key_fingerprint) == (ENDPOINT_ID, KEY_A)


def test_an_endpoint_id_first_seen_records_the_key_that_sees_it() -> None:
    result = plan(
        replace(inputs(endpoint_id=ENDPOINT_ID, remote=Found(endpoint())), credential_fingerprint=KEY_A)
    )

    assert result.status.api_key_fingerprint == KEY_A


def test_the_recorded_key_is_kept_when_the_key_changes() -> None:
    previous = status(endpoint_id=ENDPOINT_ID, api_key_fingerprint=KEY_A)

    result = plan(replace(inputs(previous=previous), credential_fingerprint=KEY_B))

    assert result.status.api_key_fingerprint == KEY_A


def test_a_404_to_another_key_is_not_taken_as_deleted_outside_kubernetes() -> None:
    previous = status(endpoint_id=ENDPOINT_ID, api_key_fingerprint=KEY_A)

    result = plan(replace(inputs(previous=previous, remote=Gone(ENDPOINT_ID)), credential_fingerprint=KEY_B))

    assert verdict(result)["Stalled"] == ("True", "Unauthorized")


# The resource being deleted recorded ENDPOINT_ID, created with KEY_A; its key is resolved.
DELETING = deletion(
    recorded=status(endpoint_id=ENDPOINT_ID, api_key_fingerprint=KEY_A),
    key_resolved=True,
    credential_fingerprint=KEY_A,
)


def test_a_404_to_the_key_the_endpoint_was_created_with_is_deleted() -> None:
    assert plan_deletion(replace(DELETING, endpoint_exists=False)) == Released(
        f"endpoint {ENDPOINT_ID} deleted"
    )


def test_a_404_to_another_key_keeps_the_finalizer() -> None:
    outcome = plan_deletion(replace(DELETING, endpoint_exists=False, credential_fingerprint=KEY_B))

    assert isinstance(outcome, KeepFinalizer)
    assert "another API key" in outcome.message


def test_a_404_error_to_another_key_keeps_the_finalizer() -> None:
    gone = NotFoundError("not found", method="DELETE", path="endpoints/x", status_code=404)

    outcome = plan_deletion(replace(DELETING, error=gone, credential_fingerprint=KEY_B))

    assert isinstance(outcome, KeepFinalizer)


def test_a_delete_that_did_not_take_is_sent_again() -> None:
    """Together answered the DELETE, yet the endpoint is still there a while later: ask again."""
    sent = replace(DELETING, endpoint_exists=True, delete_sent_at=NOW)

    assert isinstance(plan_deletion(replace(sent, now=later(seconds=30))), KeepFinalizer)
    assert plan_deletion(replace(sent, now=NOW + DELETE_RESEND_AFTER)) == SendDelete(ENDPOINT_ID)
