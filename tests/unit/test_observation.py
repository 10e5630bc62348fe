"""What the shell reads before planning, decided by the core: which endpoint, whether an interrupted create
is looked for, whether the hardware catalogue is needed, when a cached read will do, who owns what, and
what follows a plan (the connection ConfigMap, the next look)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from together_operator.core import (
    CachedRead,
    ConnectionSteps,
    CreateEndpoint,
    Found,
    Hold,
    NotCreated,
    Observation,
    Plan,
    UpdateEndpoint,
    adoption_conflict,
    connection_steps,
    hold,
    interrupted_create_model,
    plan,
    plan_after_action,
    recovery_candidate_ids,
    seconds_until_next_look,
    usable_cached_read,
    what_to_observe,
    with_connection,
)
from together_operator.together.models import ListEndpoint, UpdateEndpointRequest

from .builders import (
    ENDPOINT_ID,
    ENDPOINT_NAME,
    MODEL,
    NOW,
    endpoint,
    inputs,
    spec,
    status,
    steady,
    verdict,
)

RESYNC = timedelta(minutes=10)


def listed(state: str = "STARTED", endpoint_id: str = ENDPOINT_ID, model: str = MODEL) -> ListEndpoint:
    return ListEndpoint(
        object="endpoint",
        id=endpoint_id,
        name=ENDPOINT_NAME,
        model=model,
        type="dedicated",
        owner="devuser",
        state=state,
        created_at=NOW,
    )


# --- what to read ----------------------------------------------------------------------------------


def test_a_recorded_endpoint_is_read_and_nothing_else() -> None:
    step = inputs(previous=status(endpoint_id=ENDPOINT_ID))

    assert what_to_observe(step) == Observation(ENDPOINT_ID, find_interrupted_create=False, hardware=False)


def test_an_endpoint_to_adopt_is_read() -> None:
    assert what_to_observe(inputs(endpoint_id="endpoint-adopt")).endpoint_id == "endpoint-adopt"


def test_before_a_create_the_hardware_offered_is_read() -> None:
    assert what_to_observe(inputs()) == Observation(None, find_interrupted_create=False, hardware=True)


def test_an_interrupted_create_is_looked_for() -> None:
    step = inputs(previous=status(create_requested_at=NOW))

    assert what_to_observe(step) == Observation(None, find_interrupted_create=True, hardware=True)


def test_a_create_known_to_have_made_nothing_is_not_looked_for() -> None:
    """Answered with a 4xx, or given up before it was sent: no list of every endpoint to find it."""
    step = replace(inputs(previous=status(create_requested_at=NOW)), create_answered=True)

    assert what_to_observe(step) == Observation(None, find_interrupted_create=False, hardware=True)


def test_observe_only_needs_no_hardware() -> None:
    assert not what_to_observe(inputs(management_policy="ObserveOnly")).hardware


def test_a_stall_of_this_generation_needs_no_hardware() -> None:
    stalled = plan(inputs(remote=NotCreated(), hardware_options=()))
    assert verdict(stalled)["Stalled"] == ("True", "ModelNotSupported")

    assert not what_to_observe(inputs(previous=stalled.status)).hardware


# --- when a cached read will do ----------------------------------------------------------------------


def cached(*, state: str = "STARTED", ours: bool = False) -> CachedRead:
    return CachedRead(endpoint(state=state), answers_our_change=ours)


def test_a_read_the_list_agrees_with_stands_in_for_a_get_until_its_resync_turn() -> None:
    assert usable_cached_read(cached(), ENDPOINT_ID, listed(), resync_due=False) == endpoint()


def test_a_read_in_transition_the_list_agrees_with_stands_in_for_a_get() -> None:
    """The poller lists at the transition interval while an endpoint moves and wakes the resource when its
    state changes: a burst of N endpoints starting costs no GET per resource per look."""
    starting = cached(state="STARTING")

    assert usable_cached_read(starting, ENDPOINT_ID, listed(state="STARTING"), resync_due=False) == (
        starting.endpoint
    )
    assert usable_cached_read(starting, ENDPOINT_ID, listed(state="STARTED"), resync_due=False) is None


@pytest.mark.parametrize(
    ("read", "item", "resync_due"),
    [
        pytest.param(None, listed(), False, id="nothing-cached"),
        pytest.param(cached(), listed(), True, id="its-resync-turn-came"),
        pytest.param(cached(), listed(state="STOPPING"), False, id="list-shows-another-state"),
        pytest.param(cached(), None, False, id="not-in-the-list"),
        pytest.param(cached(ours=True), listed(), False, id="answer-to-our-own-change"),
    ],
)
def test_a_cached_read_is_not_used(
    read: CachedRead | None, item: ListEndpoint | None, resync_due: bool
) -> None:
    assert usable_cached_read(read, ENDPOINT_ID, item, resync_due=resync_due) is None


def test_a_cached_read_of_another_endpoint_is_not_used() -> None:
    assert (
        usable_cached_read(cached(), "endpoint-other", listed(endpoint_id="endpoint-other"), resync_due=False)
        is None
    )


# --- ownership ----------------------------------------------------------------------------------------

OWNERS = {"endpoint-taken": [("uid-b", "team-b/bot")], "endpoint-mine": [("uid-a", "team-a/mixtral")]}


def test_an_endpoint_to_adopt_owned_by_another_resource_is_a_conflict() -> None:
    conflict = adoption_conflict(spec(endpoint_id="endpoint-taken"), status(), OWNERS, "uid-a")

    assert conflict == "team-b/bot"


def test_an_endpoint_already_adopted_is_no_conflict() -> None:
    previous = status(endpoint_id="endpoint-taken")

    assert adoption_conflict(spec(endpoint_id="endpoint-taken"), previous, OWNERS, "uid-a") is None


def test_recovery_candidates_are_of_the_model_and_owned_by_no_other_resource() -> None:
    items = [
        listed(endpoint_id="endpoint-free"),
        listed(endpoint_id="endpoint-taken"),
        listed(endpoint_id="endpoint-mine"),
        listed(endpoint_id="endpoint-llama", model="meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    ]

    assert recovery_candidate_ids(items, MODEL, OWNERS, "uid-a") == ["endpoint-free", "endpoint-mine"]


# --- after the plan ---------------------------------------------------------------------------------


def test_a_create_answer_records_the_endpoint_id_and_drops_the_events_posted_with_the_intent() -> None:
    step = inputs(remote=NotCreated())
    creating = plan(step)
    [action] = creating.actions
    assert isinstance(action, CreateEndpoint)
    assert creating.events

    after = plan_after_action(step, creating, action, endpoint(state="PENDING"))

    assert after.status.endpoint_id == ENDPOINT_ID
    assert after.status.create_requested_at == NOW
    assert all(event not in after.events for event in creating.events)


def test_an_update_answer_keeps_the_events_not_yet_posted() -> None:
    step = inputs(display_name="Chat")
    updating = plan(step)
    action = UpdateEndpoint(ENDPOINT_ID, UpdateEndpointRequest(display_name="Chat"))

    after = plan_after_action(step, updating, action, endpoint(display_name="Chat"))

    assert after.events[: len(updating.events)] == updating.events


def test_the_connection_config_map_is_published_once_there_is_an_endpoint() -> None:
    step = inputs(connection={"config_map_name": "chat"})
    decided = plan(step)

    steps = connection_steps(step, decided, "https://api.together.ai/v1")

    assert steps == ConnectionSteps(
        withdraw=None,
        publish="chat",
        data={
            "TOGETHER_MODEL": ENDPOINT_NAME,
            "TOGETHER_BASE_URL": "https://api.together.ai/v1",
            "TOGETHER_ENDPOINT_ID": ENDPOINT_ID,
        },
    )
    assert with_connection(step, decided, steps, None).status.connection_config_map == "chat"


def test_nothing_is_published_before_the_endpoint_exists() -> None:
    step = inputs(remote=NotCreated(), connection={"config_map_name": "chat"})

    assert connection_steps(step, plan(step), "u") == ConnectionSteps(withdraw=None, publish=None)


def test_a_renamed_config_map_withdraws_the_old_one() -> None:
    step = inputs(connection={"config_map_name": "new"}, previous=steady(connection_config_map="old"))
    decided = plan(step)

    steps = connection_steps(step, decided, "u")

    assert (steps.withdraw, steps.publish) == ("old", "new")


def test_a_config_map_no_longer_wanted_is_withdrawn_and_forgotten() -> None:
    step = inputs(previous=steady(connection_config_map="old"))
    decided = plan(step)

    steps = connection_steps(step, decided, "u")

    assert (steps.withdraw, steps.publish) == ("old", None)
    assert with_connection(step, decided, steps, None).status.connection_config_map is None


def test_a_config_map_taken_by_someone_else_stalls() -> None:
    step = inputs(connection={"config_map_name": "taken"})
    decided = plan(step)

    result = with_connection(step, decided, connection_steps(step, decided, "u"), "not ours")

    assert verdict(result)["Stalled"] == ("True", "ConnectionConfigMapConflict")
    assert result.status.connection_config_map is None


# --- when to look again -------------------------------------------------------------------------------


def test_nothing_is_touched_before_kopf_holds_its_finalizer() -> None:
    assert hold(finalizer_held=False, paused=False, deleting=False, resync_seconds=600) == Hold(
        0.5, "waiting for the finalizer"
    )


def test_a_paused_resource_is_looked_at_again_at_resync() -> None:
    held = hold(finalizer_held=True, paused=True, deleting=False, resync_seconds=600)

    assert held is not None
    assert held.seconds == 600


def test_a_resource_with_its_finalizer_and_not_paused_is_reconciled() -> None:
    assert hold(finalizer_held=True, paused=False, deleting=False, resync_seconds=600) is None


@pytest.mark.parametrize(
    ("decided", "seconds"),
    [
        pytest.param(plan(inputs()), 600, id="steady-waits-for-the-resync"),
        pytest.param(plan(inputs(remote=Found(endpoint(state="STARTING")))), 30, id="in-transition"),
        pytest.param(plan(inputs(remote=NotCreated())), 30, id="an-action-was-taken"),
        pytest.param(plan(inputs(remote=NotCreated(), hardware_options=())), 600, id="stalled"),
    ],
)
def test_the_next_look_is_sooner_only_while_something_moves(decided: Plan, seconds: float) -> None:
    assert seconds_until_next_look(decided, resync_seconds=600, transition_seconds=30) == seconds


def test_an_interrupted_create_is_looked_for_under_the_model_it_sent() -> None:
    sent = status(
        create_requested_at=NOW, create_intent={"model": "m-sent", "hardware": "h", "display_name": "d"}
    )

    assert interrupted_create_model(spec(), sent) == "m-sent"
    assert interrupted_create_model(spec(), status(create_requested_at=NOW)) == MODEL
