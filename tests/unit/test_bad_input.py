"""Bad input (issue 11, item 5): whatever Together answers, no condition or event carries a message the
apiserver would refuse, and a status write the apiserver refuses does not end the resource's loop."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from together_operator.core import MAX_MESSAGE_LENGTH, plan_failure
from together_operator.credentials import CredentialsMissing
from together_operator.together.errors import TransientError

from .builders import inputs
from .fakes import ShellBed

HUGE = "the upstream proxy says: " + "x" * 100_000


def test_a_together_error_message_is_cut_to_a_bounded_length() -> None:
    error = TransientError(HUGE, method="GET", path="endpoints/x", status_code=502)

    assert len(str(error)) <= 1200
    assert str(error).startswith(
        "Together API GET endpoints/x failed (HTTP 502): the upstream proxy says: xxx"
    )


def test_no_condition_or_event_message_exceeds_the_bound() -> None:
    failure = plan_failure(inputs(), CredentialsMissing(HUGE), action=None)

    assert max(len(c.message) for c in failure.status.conditions) <= MAX_MESSAGE_LENGTH
    assert failure.events
    assert max(len(e.message) for e in failure.events) <= MAX_MESSAGE_LENGTH


async def test_a_status_write_the_apiserver_refuses_does_not_end_the_loop() -> None:
    bed = ShellBed()
    bed.status.refusal = ApiException(status=422, reason="Unprocessable Entity")

    delay = await bed.reconcile(bed.resource())

    assert delay == 10.0  # the transient interval, as for any unexpected failure
