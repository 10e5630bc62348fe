"""The shell's I/O order, which money depends on: a create's intent is written before its POST and its
endpoint id right after; a stale view of the resource sends no POST; a create whose answer was lost is
found again rather than repeated, also when the resource is deleted; reads are cached only while that
is safe. Driven against the fakes (tests/unit/fakes.py), one reconcile at a time, on a fixed clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from together_operator.core import (
    CREATE_OUTCOME_WINDOW,
    CREATE_SEND_DEADLINE,
    KeepFinalizer,
    OtherResources,
    Released,
)
from together_operator.handlers import open_creates
from together_operator.resource import ConditionType
from together_operator.shell import ReconcilerSettings
from together_operator.together.errors import NotFoundError, RateLimitedError, TransientError

from .builders import DEFAULT_DISPLAY_NAME, ENDPOINT_ID, HARDWARE, MODEL, NOW, endpoint
from .fakes import ShellBed, kopf_index


def timed_out() -> TransientError:
    return TransientError("ReadTimeout: no response within 30s", method="POST", path="endpoints")


# --- create -------------------------------------------------------------------------------------------


async def test_a_create_writes_its_intent_before_the_post_and_the_endpoint_id_right_after() -> None:
    bed = ShellBed()
    body = bed.resource()

    await bed.reconcile(body)

    start = bed.log.index("status write (guarded)")
    assert bed.log[start : start + 3] == [
        "status write (guarded)",
        "event Normal Creating",
        "POST /endpoints",
    ]
    assert bed.log[start + 3] == "status write"
    intent, recorded = bed.status.writes[0], bed.status.writes[1]
    assert (intent.create_requested_at, intent.endpoint_id) == (NOW, None)
    assert recorded.endpoint_id == "endpoint-1"


async def test_a_stale_view_of_the_resource_sends_no_post() -> None:
    """Someone wrote the resource since kopf passed this body: the guarded intent write fails with 409,
    nothing is created, and the next reconcile starts from the resource as the watch shows it."""
    bed = ShellBed()
    body = bed.resource()
    bed.status.resource_version += 1  # a write this body has not seen

    delay = await bed.reconcile(body)

    assert "status write refused: 409" in bed.log
    assert "POST /endpoints" not in bed.log
    assert delay == 0.5
    assert bed.log[-1] == "read resource"

    bed.watch_event(body)
    await bed.reconcile(body)
    assert bed.calls().count("POST /endpoints") == 1


async def test_a_conflict_re_reads_the_resource_instead_of_waiting_for_the_watch() -> None:
    bed = ShellBed()
    body = bed.resource()
    bed.status.resource_version += 1  # a write this body has not seen, and the watch is slow

    await bed.reconcile(body)
    await bed.reconcile(body)

    assert bed.log.count("status write refused: 409") == 1
    assert bed.calls().count("POST /endpoints") == 1


async def test_conflicts_in_a_row_back_off() -> None:
    bed = ShellBed()
    body = bed.resource()
    bed.status.refuse_guarded_writes = True  # someone else writes the resource all the time

    delays = [await bed.reconcile(body) for _ in range(3)]

    assert delays == [0.5, 1.0, 2.0]
    assert "POST /endpoints" not in bed.calls()


async def test_a_create_whose_answer_was_lost_is_adopted_not_posted_again() -> None:
    bed = ShellBed()
    body = bed.resource()
    bed.together.lost_create_answer = timed_out()
    await bed.reconcile(body)
    bed.watch_event(body)
    assert bed.status.writes[-1].endpoint_id is None
    assert bed.status.writes[-1].create_requested_at == NOW

    bed.clock.advance(seconds=20)
    await bed.reconcile(body)

    assert bed.calls().count("POST /endpoints") == 1
    assert "GET /endpoints" in bed.calls()  # looked for it
    assert bed.status.writes[-1].endpoint_id == "endpoint-1"


async def test_a_lost_create_answer_with_nothing_found_is_waited_out_then_created_once() -> None:
    bed = ShellBed()
    body = bed.resource()
    bed.together.fail("POST /endpoints", timed_out())  # the request never reached the server
    await bed.reconcile(body)
    bed.watch_event(body)

    bed.clock.advance(seconds=10)
    await bed.reconcile(body)
    bed.watch_event(body)
    assert bed.calls().count("POST /endpoints") == 1  # it may still land

    bed.clock.advance(seconds=CREATE_OUTCOME_WINDOW.total_seconds())
    await bed.reconcile(body)
    assert bed.calls().count("POST /endpoints") == 2


async def test_the_intent_is_stamped_after_the_hardware_look_up() -> None:
    bed = ShellBed()
    bed.together.takes[f"GET /hardware?model={MODEL}"] = 30.0

    await bed.reconcile(bed.resource())

    assert bed.status.writes[0].create_requested_at == NOW + timedelta(seconds=30)


async def test_the_intent_is_written_once_before_the_post_waits_for_a_call_slot() -> None:
    """Writing it (or a conflict on it) never holds one of the slots every other call waits for, however
    long the POST then waits for one."""
    bed = ShellBed()
    bed.together.slot_waits["POST /endpoints"] = CREATE_SEND_DEADLINE.total_seconds()

    await bed.reconcile(bed.resource())

    intent, recorded = bed.status.writes[:2]
    assert (intent.create_requested_at, intent.endpoint_id) == (NOW, None)
    assert (recorded.create_requested_at, recorded.endpoint_id) == (NOW, "endpoint-1")


async def test_a_create_that_failed_after_a_long_wait_for_its_slot_keeps_its_send_time() -> None:
    bed = ShellBed()
    bed.together.slot_waits["POST /endpoints"] = CREATE_SEND_DEADLINE.total_seconds()
    bed.together.fail("POST /endpoints", timed_out())

    await bed.reconcile(bed.resource())

    assert bed.status.writes[-1].create_requested_at == NOW + CREATE_SEND_DEADLINE


async def test_a_post_in_flight_when_the_operator_stops_is_waited_for_a_window_after_it_was_sent() -> None:
    """The POST waited as long as it may for its rate-limiter slot, and the operator stopped with it on
    the wire: after the restart, the window runs from the latest it can have been sent, so the POST may
    still land and is not sent again."""
    bed = ShellBed()
    body = bed.resource()
    bed.together.slot_waits["POST /endpoints"] = CREATE_SEND_DEADLINE.total_seconds()
    bed.together.fail("POST /endpoints", asyncio.CancelledError())  # the operator stops meanwhile
    with pytest.raises(asyncio.CancelledError):
        await bed.reconcile(body)
    bed.restart()
    bed.watch_event(body)

    bed.clock.advance(seconds=10)
    await bed.reconcile(body)

    assert "GET /endpoints" in bed.calls()  # looked for it, found nothing
    assert bed.calls().count("POST /endpoints") == 1
    assert bed.status.writes[-1].endpoint_id is None


async def test_a_post_whose_call_slot_came_past_the_send_deadline_is_not_sent_but_created_afresh() -> None:
    """Sent that late, a restarted operator could not tell from the intent when it went out. Nothing was
    sent, so the next look creates again at once, with a fresh intent."""
    bed = ShellBed()
    body = bed.resource()
    bed.together.slot_waits["POST /endpoints"] = CREATE_SEND_DEADLINE.total_seconds() + 1

    delay = await bed.reconcile(body)

    assert "POST /endpoints" not in bed.calls()
    assert delay == 0.0
    bed.together.slot_waits.clear()
    bed.watch_event(body)
    await bed.reconcile(body)
    assert bed.calls().count("POST /endpoints") == 1
    assert "GET /endpoints" not in bed.calls()  # nothing to look for: it was never sent
    first_intent, fresh_intent = (w for w in bed.status.writes if w.create_intent and not w.endpoint_id)
    assert (first_intent.create_requested_at, fresh_intent.create_requested_at) == (
        NOW,
        NOW + CREATE_SEND_DEADLINE + timedelta(seconds=1),
    )
    assert bed.status.writes[-1].endpoint_id == "endpoint-1"


class OneCreateUnderWay:
    """Room for one create under way; the first resource's POST stays in flight until `answer()`, while
    a second resource reconciles behind it."""

    def __init__(self) -> None:
        self.bed = ShellBed(
            settings=ReconcilerSettings(base_url="https://api.together.ai/v1", creates_under_way=1)
        )
        self.answered = asyncio.Event()
        self.bed.together.held["POST /endpoints"] = self.answered
        self.second = self.bed.resource(uid="uid-b")

    async def second_waits_behind_the_first(self) -> list[asyncio.Task[float]]:
        posted = asyncio.Event()
        self.bed.together.meanwhile["POST /endpoints"] = posted.set
        first = asyncio.create_task(self.bed.reconcile(self.bed.resource(uid="uid-a")))
        await posted.wait()
        second = asyncio.create_task(self.bed.reconcile(self.second))
        for _ in range(20):
            await asyncio.sleep(0)
        return [first, second]


async def test_creates_beyond_those_under_way_wait_before_writing_their_intent() -> None:
    """So that a burst of thousands never leaves a POST waiting for its slot past its send deadline."""
    under_way = OneCreateUnderWay()
    reconciles = await under_way.second_waits_behind_the_first()

    log = under_way.bed.log
    assert log.count("status write (guarded)") == 1  # the first create's intent, not the second's
    under_way.answered.set()
    await asyncio.gather(*reconciles)
    assert log.index("POST /endpoints") < log.index("status write refused: 409")


async def test_a_resource_deleted_while_its_create_waited_for_its_turn_sends_nothing() -> None:
    under_way = OneCreateUnderWay()
    reconciles = await under_way.second_waits_behind_the_first()

    under_way.second["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    under_way.answered.set()
    await asyncio.gather(*reconciles)

    assert under_way.bed.calls().count("POST /endpoints") == 1
    intent_writes = ("status write (guarded)", "status write refused: 409")
    tried = [entry for entry in under_way.bed.log if entry in intent_writes]
    assert tried == ["status write (guarded)"]  # the first resource's; none for the deleted one


async def test_a_create_that_timed_out_is_waited_for_a_window_after_the_timeout() -> None:
    """The POST was on the wire until it timed out: its endpoint may appear a window after that."""
    bed = ShellBed()
    body = bed.resource()
    bed.together.takes["POST /endpoints"] = 40.0
    bed.together.fail("POST /endpoints", timed_out())
    await bed.reconcile(body)
    bed.watch_event(body)

    bed.clock.advance(seconds=CREATE_OUTCOME_WINDOW.total_seconds() - 10)
    await bed.reconcile(body)

    assert bed.calls().count("POST /endpoints") == 1


async def test_a_listed_endpoint_that_answers_404_is_not_a_candidate() -> None:
    """Deleted meanwhile (by another resource's deletion, say): skipped, not a failed look."""
    bed = ShellBed(endpoint(id="endpoint-gone", created_at=NOW))
    bed.together.fail("GET /endpoints/endpoint-gone", _not_found("endpoint-gone"))
    body = bed.resource(status=_interrupted_create_status())
    bed.clock.advance(seconds=5)

    await bed.reconcile(body)

    ready = bed.status.writes[-1].condition(ConditionType.READY)
    assert ready is not None
    assert (ready.reason, "waiting for the outcome" in ready.message) == ("Creating", True)


def _interrupted_create_status() -> dict[str, object]:
    return {
        "createRequestedAt": NOW.isoformat(),
        "createIntent": {"model": MODEL, "hardware": HARDWARE, "displayName": DEFAULT_DISPLAY_NAME},
    }


def _not_found(endpoint_id: str) -> NotFoundError:
    return NotFoundError("not found", method="GET", path=f"endpoints/{endpoint_id}", status_code=404)


async def test_an_endpoint_another_open_create_may_have_made_is_not_adopted() -> None:
    """team-b/mixtral sent the same create and has no endpoint id either (the kopf index says so)."""
    bed = ShellBed(endpoint(id="endpoint-one", created_at=NOW))
    rival = {
        "metadata": {"uid": "uid-b", "namespace": "team-b", "name": "mixtral"},
        "status": _interrupted_create_status(),
    }
    bed.others = OtherResources(open_creates=kopf_index(open_creates, rival))
    body = bed.resource(status=_interrupted_create_status())
    bed.clock.advance(seconds=20)

    await bed.reconcile(body)

    assert bed.status.writes[-1].endpoint_id is None
    stalled = bed.status.writes[-1].condition(ConditionType.STALLED)
    assert stalled is not None
    assert (stalled.reason, "team-b/mixtral" in stalled.message) == ("CreateIncomplete", True)


# --- deletion -----------------------------------------------------------------------------------------


async def test_deleting_after_an_interrupted_create_deletes_the_endpoint_it_made() -> None:
    made = endpoint(id="endpoint-made", display_name=DEFAULT_DISPLAY_NAME, created_at=NOW, state="PENDING")
    bed = ShellBed(made)
    body = bed.resource(status={"createRequestedAt": NOW.isoformat()})
    bed.clock.advance(minutes=5)

    outcome = await bed.reconciler.delete(body, bed.others)

    assert bed.calls() == [
        "GET /endpoints",
        "GET /endpoints/endpoint-made",
        "GET /endpoints/endpoint-made",
        "DELETE /endpoints/endpoint-made",
        "GET /endpoints/endpoint-made",
    ]
    assert outcome == Released("endpoint endpoint-made deleted")


async def test_deleting_skips_a_candidate_that_answers_404_and_deletes_the_one_that_matches() -> None:
    """Two resources whose creates were interrupted are deleted: one's endpoint going away must not
    release the other while its endpoint runs on."""
    gone = endpoint(id="endpoint-gone", created_at=NOW)
    made = endpoint(id="endpoint-made", created_at=NOW)
    bed = ShellBed(gone, made)
    bed.together.fail("GET /endpoints/endpoint-gone", _not_found("endpoint-gone"))
    body = bed.resource(status=_interrupted_create_status())
    bed.clock.advance(minutes=5)

    outcome = await bed.reconciler.delete(body, bed.others)

    assert "DELETE /endpoints/endpoint-made" in bed.calls()
    assert outcome == Released("endpoint endpoint-made deleted")


async def test_a_recorded_endpoint_is_deleted_once_and_the_finalizer_kept_until_it_is_gone() -> None:
    bed = ShellBed(endpoint())
    body = bed.resource(status={"endpointId": ENDPOINT_ID})
    bed.together.deletes_take_effect = False

    first = await bed.reconciler.delete(body, bed.others)
    second = await bed.reconciler.delete(body, bed.others)

    assert isinstance(first, KeepFinalizer)
    assert isinstance(second, KeepFinalizer)
    assert bed.calls().count(f"DELETE /endpoints/{ENDPOINT_ID}") == 1

    del bed.together.endpoints[ENDPOINT_ID]
    assert await bed.reconciler.delete(body, bed.others) == Released(f"endpoint {ENDPOINT_ID} deleted")


async def test_releasing_a_resource_withdraws_its_connection_config_map() -> None:
    bed = ShellBed()
    body = bed.resource(status={"endpointId": ENDPOINT_ID, "connectionConfigMap": "chat"})

    outcome = await bed.reconciler.delete(body, bed.others)

    assert outcome == Released(f"endpoint {ENDPOINT_ID} deleted", withdraw_connection="chat")
    assert bed.log[-1] == "withdraw ConfigMap chat"


async def test_nothing_is_sent_once_deletion_has_started() -> None:
    bed = ShellBed(endpoint())
    body = bed.resource(spec={"model": MODEL, "hardware": HARDWARE, "displayName": "Chat"})
    body["metadata"]["deletionTimestamp"] = NOW.isoformat()

    await bed.reconcile(body)

    assert bed.log == []


async def test_deletion_starting_during_a_reconcile_stops_its_actions() -> None:
    bed = ShellBed()
    body = bed.resource()

    def delete_requested() -> None:
        body["metadata"]["deletionTimestamp"] = NOW.isoformat()

    bed.together.meanwhile[f"GET /hardware?model={MODEL}"] = delete_requested

    await bed.reconcile(body)

    assert "POST /endpoints" not in bed.calls()
    assert bed.status.writes == []


async def test_a_delete_that_did_not_take_is_sent_again_later() -> None:
    bed = ShellBed(endpoint())
    body = bed.resource(status={"endpointId": ENDPOINT_ID})
    bed.together.deletes_take_effect = False
    await bed.reconciler.delete(body, bed.others)

    bed.clock.advance(minutes=3)
    outcome = await bed.reconciler.delete(body, bed.others)

    assert isinstance(outcome, KeepFinalizer)
    assert bed.calls().count(f"DELETE /endpoints/{ENDPOINT_ID}") == 2


async def test_a_404_to_a_changed_api_key_does_not_release_the_resource() -> None:
    """The endpoint was created with another key: to this one it is invisible, not deleted."""
    bed = ShellBed()
    body = bed.resource(status={"endpointId": ENDPOINT_ID, "apiKeyFingerprint": "0123456789ab"})

    outcome = await bed.reconciler.delete(body, bed.others)

    assert isinstance(outcome, KeepFinalizer)
    assert "another API key" in outcome.message


# --- caches -------------------------------------------------------------------------------------------


async def steady_bed() -> tuple[ShellBed, dict[str, Any]]:
    """An endpoint in sync with its resource, reconciled once (one GET, and its hardware's price), the
    list showing it; the log starts empty after that."""
    bed = ShellBed(endpoint())
    bed.lists.show(endpoint())
    body = bed.resource(
        spec={"model": endpoint().model, "hardware": endpoint().hardware, "endpointId": ENDPOINT_ID}
    )
    await bed.reconcile(body)
    bed.watch_event(body)
    assert bed.calls() == [f"GET /endpoints/{ENDPOINT_ID}", f"GET /hardware?model={endpoint().model}"]
    bed.log.clear()
    return bed, body


async def test_a_steady_endpoint_is_not_read_again_while_the_list_agrees() -> None:
    bed, body = await steady_bed()
    bed.clock.advance(minutes=5)

    await bed.reconcile(body)

    assert bed.calls() == []


async def test_a_steady_endpoint_is_read_again_once_at_its_resync_turn() -> None:
    bed, body = await steady_bed()
    bed.lists.resync_turns.add(ENDPOINT_ID)

    await bed.reconcile(body)
    await bed.reconcile(body)

    assert bed.calls().count(f"GET /endpoints/{ENDPOINT_ID}") == 1
    assert bed.lists.resync_turns == set()


async def test_a_steady_endpoint_is_not_read_again_without_a_resync_turn_however_long_it_waits() -> None:
    bed, body = await steady_bed()
    bed.clock.advance(hours=24)

    await bed.reconcile(body)

    assert f"GET /endpoints/{ENDPOINT_ID}" not in bed.calls()


async def test_a_change_the_list_shows_is_read_in_full() -> None:
    bed, body = await steady_bed()
    bed.together.endpoints[ENDPOINT_ID] = endpoint(state="STOPPED")
    bed.lists.show(endpoint(state="STOPPED"))

    await bed.reconcile(body)

    assert bed.calls()[0] == f"GET /endpoints/{ENDPOINT_ID}"


async def test_the_answer_to_our_own_patch_is_read_again_next_time() -> None:
    bed, body = await steady_bed()
    body["spec"]["displayName"] = "Chat"
    body["metadata"]["generation"] = 2

    await bed.reconcile(body)
    bed.watch_event(body)
    bed.lists.show(bed.together.endpoints[ENDPOINT_ID])
    await bed.reconcile(body)

    assert bed.calls() == [f"PATCH /endpoints/{ENDPOINT_ID}", f"GET /endpoints/{ENDPOINT_ID}"]


async def test_two_creates_of_one_model_share_one_hardware_look_up() -> None:
    bed = ShellBed()

    await bed.reconcile(bed.resource(uid="uid-1"))
    await bed.reconcile(bed.resource(uid="uid-2"))

    assert sum(call.startswith("GET /hardware") for call in bed.calls()) == 1


# --- failures -----------------------------------------------------------------------------------------


async def test_consecutive_failures_back_off_by_one_policy() -> None:
    """API failures and unexpected errors count together, doubling from the error's own wait."""
    bed = ShellBed(endpoint())
    body = bed.resource(status={"endpointId": ENDPOINT_ID})
    limited = RateLimitedError("slow down", method="GET", path="endpoints/x", status_code=429)
    bed.together.fail(f"GET /endpoints/{ENDPOINT_ID}", limited, limited)

    waits = [await bed.reconcile(body), await bed.reconcile(body)]
    bed.together.fail(f"GET /endpoints/{ENDPOINT_ID}", RuntimeError("a bug"))
    waits.append(await bed.reconcile(body))

    assert waits == [10.0, 20.0, 40.0]


async def test_a_reconcile_without_failure_resets_the_backoff() -> None:
    bed = ShellBed(endpoint())
    body = bed.resource(status={"endpointId": ENDPOINT_ID})
    limited = RateLimitedError("slow down", method="GET", path="endpoints/x", status_code=429)
    bed.together.fail(f"GET /endpoints/{ENDPOINT_ID}", limited)
    await bed.reconcile(body)
    await bed.reconcile(body)
    bed.together.fail(f"GET /endpoints/{ENDPOINT_ID}", limited)

    assert await bed.reconcile(body) == 10.0
