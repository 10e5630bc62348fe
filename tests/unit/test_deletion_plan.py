"""The deletion plan as a specification: what is deleted, when the finalizer goes, what it says, and when
to look again. CONTRACT.md section 2, "Delete". `plan_deletion` is asked again after each read or call,
with what that answered filled in, until it releases the resource or keeps the finalizer."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from together_operator.core import (
    CREATE_OUTCOME_WINDOW,
    CREATE_SEND_DEADLINE,
    DeletionInputs,
    FindInterruptedCreate,
    KeepFinalizer,
    ReadEndpoint,
    Released,
    ResolveKey,
    RetryPolicy,
    SendDelete,
    plan_deletion,
)
from together_operator.credentials import CredentialsMissing
from together_operator.together.errors import (
    AuthError,
    NotFoundError,
    RateLimitedError,
    TogetherError,
    TransientError,
)

from .builders import ENDPOINT_ID, NOW, candidate, deletion, spec, status

RETRY = RetryPolicy(transient_seconds=10.0, auth_seconds=120.0, credentials_seconds=60.0)


def deleting(*, recorded: dict[str, Any] | None = None, **spec_fields: Any) -> DeletionInputs:
    """A resource being deleted whose status recorded `recorded` (an endpoint id by default)."""
    return deletion(
        recorded=status(**(recorded if recorded is not None else {"endpoint_id": ENDPOINT_ID})),
        spec_=spec(**spec_fields),
        retry=RETRY,
    )


def with_key(step: DeletionInputs) -> DeletionInputs:
    return replace(step, key_resolved=True)


def _http(kind: type[AuthError | NotFoundError | TransientError], code: int) -> Any:
    return kind("boom", method="GET", path=f"endpoints/{ENDPOINT_ID}", status_code=code)


def test_a_resource_that_never_created_anything_is_released_at_once() -> None:
    assert plan_deletion(deleting(recorded={})) == Released("no remote endpoint was created")


@pytest.mark.parametrize(
    "spec_fields",
    [{"deletion_policy": "Orphan"}, {"management_policy": "ObserveOnly", "endpoint_id": ENDPOINT_ID}],
    ids=["orphan", "observe-only"],
)
def test_orphan_and_observe_only_leave_the_endpoint_running(spec_fields: dict[str, Any]) -> None:
    assert plan_deletion(deleting(**spec_fields)) == Released(
        f"endpoint {ENDPOINT_ID} left running (orphaned)", release_claim=spec_fields.get("endpoint_id")
    )


def test_the_key_is_read_before_any_call() -> None:
    assert plan_deletion(deleting()) == ResolveKey()


def test_a_missing_key_keeps_the_finalizer_and_names_the_way_out() -> None:
    step = replace(with_key(deleting()), key_missing=CredentialsMissing("Secret team-a/together not found"))

    outcome = plan_deletion(step)

    assert isinstance(outcome, KeepFinalizer)
    assert "Secret team-a/together not found" in outcome.message
    assert "deletionPolicy: Orphan" in outcome.message
    assert outcome.retry_after == RETRY.credentials_seconds


def test_the_endpoint_is_read_then_deleted_then_read_until_gone() -> None:
    step = with_key(deleting())
    assert plan_deletion(step) == ReadEndpoint(ENDPOINT_ID)

    step = replace(step, endpoint_exists=True)
    assert plan_deletion(step) == SendDelete(ENDPOINT_ID)

    step = replace(step, delete_sent_at=NOW, endpoint_exists=None)
    assert plan_deletion(step) == ReadEndpoint(ENDPOINT_ID)

    assert plan_deletion(replace(step, endpoint_exists=True)) == KeepFinalizer(
        f"waiting for endpoint {ENDPOINT_ID} to be gone", 5.0
    )
    assert plan_deletion(replace(step, endpoint_exists=False)) == Released(f"endpoint {ENDPOINT_ID} deleted")


def test_a_delete_already_sent_is_not_sent_again_while_the_endpoint_goes() -> None:
    step = replace(with_key(deleting()), delete_sent_at=NOW, endpoint_exists=True)

    assert isinstance(plan_deletion(step), KeepFinalizer)


def test_releasing_withdraws_the_connection_config_map() -> None:
    step = replace(
        with_key(deleting(recorded={"endpoint_id": ENDPOINT_ID, "connection_config_map": "chat"})),
        endpoint_exists=False,
    )

    assert plan_deletion(step) == Released(f"endpoint {ENDPOINT_ID} deleted", withdraw_connection="chat")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            NotFoundError("gone", method="DELETE", path="endpoints/x", status_code=404),
            Released(f"endpoint {ENDPOINT_ID} deleted"),
            id="404-is-deleted",
        ),
        pytest.param(
            RateLimitedError("slow down", retry_after=42.0, method="GET", path="e", status_code=429),
            "wait 42.0",
            id="429-honours-retry-after",
        ),
        pytest.param(
            TransientError("bad gateway", method="GET", path="e", status_code=502),
            "wait 10.0",
            id="5xx-waits-the-transient-interval",
        ),
    ],
)
def test_a_failed_call_decides_the_outcome(error: TogetherError, expected: Released | str) -> None:
    step = replace(with_key(deleting()), error=error)

    outcome = plan_deletion(step)

    if isinstance(expected, Released):
        assert outcome == expected
    else:
        assert isinstance(outcome, KeepFinalizer)
        assert outcome.retry_after == float(expected.removeprefix("wait "))


def test_unauthorized_keeps_the_finalizer_and_says_how_to_let_go() -> None:
    outcome = plan_deletion(replace(with_key(deleting()), error=_http(AuthError, 403)))

    assert isinstance(outcome, KeepFinalizer)
    assert "fix the API key, or set deletionPolicy: Orphan" in outcome.message
    assert outcome.retry_after == RETRY.auth_seconds


# --- an interrupted create: intent recorded, no endpoint id -----------------------------------------

INTENT = {"create_requested_at": NOW}
SETTLED_AFTER_INTENT = CREATE_SEND_DEADLINE + CREATE_OUTCOME_WINDOW


def interrupted(seconds_after_intent: float = 300) -> DeletionInputs:
    step = with_key(deleting(recorded=INTENT))
    return replace(step, now=NOW + timedelta(seconds=seconds_after_intent))


def test_an_interrupted_create_is_looked_for_before_releasing() -> None:
    assert plan_deletion(interrupted()) == FindInterruptedCreate()


def test_the_endpoint_an_interrupted_create_made_is_deleted() -> None:
    step = replace(interrupted(), candidates=(candidate("endpoint-made", created_at=NOW),))

    assert plan_deletion(step) == ReadEndpoint("endpoint-made")
    assert plan_deletion(replace(step, endpoint_exists=True)) == SendDelete("endpoint-made")


def test_an_interrupted_create_that_made_nothing_is_released_once_its_window_passed() -> None:
    """Its POST went out by CREATE_SEND_DEADLINE after the intent, if at all."""
    step = replace(interrupted(SETTLED_AFTER_INTENT.total_seconds()), candidates=())

    assert plan_deletion(step) == Released("the interrupted create made no endpoint")


def test_an_interrupted_create_that_may_still_land_keeps_the_finalizer() -> None:
    outcome = plan_deletion(replace(interrupted(3), candidates=()))

    assert isinstance(outcome, KeepFinalizer)
    assert "may yet show up" in outcome.message
    assert outcome.retry_after == 5.0


def test_an_interrupted_create_whose_post_may_have_waited_for_its_slot_keeps_the_finalizer() -> None:
    """Its POST may have gone out up to CREATE_SEND_DEADLINE after the intent, and landed a window later."""
    waiting = replace(interrupted(SETTLED_AFTER_INTENT.total_seconds() - 1), candidates=())

    assert isinstance(plan_deletion(waiting), KeepFinalizer)


def test_several_endpoints_that_may_be_the_interrupted_create_keep_the_finalizer() -> None:
    step = replace(
        interrupted(),
        candidates=(candidate("endpoint-b", created_at=NOW), candidate("endpoint-a", created_at=NOW)),
    )

    outcome = plan_deletion(step)

    assert isinstance(outcome, KeepFinalizer)
    assert "(endpoint-a, endpoint-b)" in outcome.message
    assert outcome.retry_after == RETRY.auth_seconds
