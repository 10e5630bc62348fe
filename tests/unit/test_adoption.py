"""Adoption of an existing endpoint through spec.endpointId (contract section 2, "Ownership and
adoption"): only with the claim, only of the spec's model, and with the operator-wide key only where the
namespace allows it or ObserveOnly. A refused adoption records nothing of the endpoint, so it is never
PATCHed, and never DELETEd with the resource."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from together_operator.core import (
    AdoptionClaim,
    Found,
    ReadNamespace,
    Released,
    ResolveKey,
    UpdateEndpoint,
    claim_to_make,
    plan,
    plan_deletion,
    what_to_observe,
)
from together_operator.handlers import endpoint_owners
from together_operator.resource import ConditionType

from .builders import CLAIMED, ENDPOINT_ID, condition, deletion, endpoint, inputs, verdict
from .fakes import ShellBed, kopf_index

OWN_KEY: dict[str, Any] = {"api_key_secret_ref": {"name": "team-key"}}
OBSERVE_ONLY: dict[str, Any] = {"management_policy": "ObserveOnly"}
ADOPTING: dict[str, Any] = {
    "model": endpoint().model,
    "hardware": endpoint().hardware,
    "endpointId": ENDPOINT_ID,
}
OTHER_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


@pytest.mark.parametrize(
    ("spec_fields", "namespace_allows", "remote_model", "expected"),
    [
        pytest.param(OWN_KEY, False, None, "claim", id="own-key"),
        pytest.param({}, True, None, "claim", id="operator-key-namespace-allows"),
        pytest.param(
            {"management_policy": "ObserveOnly"}, False, None, "claim", id="operator-key-observe-only"
        ),
        pytest.param({}, False, None, "refused: apiKeySecretRef", id="operator-key-namespace-silent"),
        pytest.param(OWN_KEY, False, OTHER_MODEL, "refused: spec.model", id="other-model"),
        pytest.param(
            {"management_policy": "ObserveOnly"},
            True,
            OTHER_MODEL,
            "refused: spec.model",
            id="other-model-observed",
        ),
    ],
)
def test_adoption_rules(
    spec_fields: dict[str, Any], namespace_allows: bool, remote_model: str | None, expected: str
) -> None:
    """(b) the endpoint's model is spec.model; (c) own key, or a namespace that allows it, or ObserveOnly.
    Only then is the claim made; a refusal names the rule and what to do."""
    remote = endpoint(model=remote_model) if remote_model else endpoint()
    step = replace(
        inputs(endpoint_id=ENDPOINT_ID, remote=Found(remote), **spec_fields),
        namespace_allows_adoption=namespace_allows,
    )

    to_claim = claim_to_make(step)
    result = plan(step if to_claim is None else replace(step, adoption_claim=CLAIMED))

    if expected == "claim":
        assert to_claim == ENDPOINT_ID
        assert result.status.endpoint_id == ENDPOINT_ID
        assert verdict(result)["Stalled"][0] == "False"
    else:
        assert to_claim is None
        assert result.actions == ()
        assert result.status.endpoint_id is None
        assert verdict(result)["Stalled"] == ("True", "AdoptionRefused")
        assert expected.removeprefix("refused: ") in condition(result, "Stalled").message
        assert [e.reason for e in result.events] == ["AdoptionRefused"]


def test_a_claim_held_by_another_resource_stalls_naming_it() -> None:
    step = inputs(endpoint_id=ENDPOINT_ID, **OWN_KEY)

    result = plan(replace(step, adoption_claim=AdoptionClaim(holder="team-b/bot", ours=False)))

    assert result.actions == ()
    assert result.status.endpoint_id is None
    assert verdict(result)["Stalled"] == ("True", "EndpointOwnedElsewhere")
    assert "team-b/bot" in condition(result, "Stalled").message


def test_with_the_claim_an_adopted_endpoint_is_brought_to_the_spec() -> None:
    step = replace(
        inputs(endpoint_id=ENDPOINT_ID, autoscaling={"min_replicas": 1, "max_replicas": 2}, **OWN_KEY),
        adoption_claim=CLAIMED,
    )

    result = plan(step)

    assert [type(a) for a in result.actions] == [UpdateEndpoint]
    assert result.status.endpoint_id == ENDPOINT_ID


def test_an_adopted_endpoint_is_not_claimed_or_checked_again() -> None:
    adopted = plan(replace(inputs(endpoint_id=ENDPOINT_ID, **OWN_KEY), adoption_claim=CLAIMED)).status
    later_step = inputs(endpoint_id=ENDPOINT_ID, previous=adopted, **OWN_KEY)

    assert claim_to_make(later_step) is None
    assert verdict(plan(later_step))["Ready"] == ("True", "Started")


@pytest.mark.parametrize(
    ("spec_fields", "reads_label"),
    [
        pytest.param({}, True, id="operator-key"),
        pytest.param(OWN_KEY, False, id="own-key"),
        pytest.param(OBSERVE_ONLY, False, id="observe-only"),
    ],
)
def test_the_namespace_label_is_read_only_when_it_decides(
    spec_fields: dict[str, Any], reads_label: bool
) -> None:
    assert what_to_observe(inputs(endpoint_id=ENDPOINT_ID, **spec_fields)).namespace_label is reads_label


def test_deleting_a_resource_whose_adoption_was_refused_sends_nothing_and_gives_up_no_claim_of_others() -> (
    None
):
    refused = plan(inputs(endpoint_id=ENDPOINT_ID)).status
    deleting = deletion(recorded=refused, spec_=inputs(endpoint_id=ENDPOINT_ID).spec)

    step = plan_deletion(deleting)

    assert isinstance(step, Released)
    assert step.release_claim == ENDPOINT_ID  # released only if this resource holds it (the shell checks)


async def test_two_resources_naming_one_endpoint_one_wins_the_claim_and_the_other_never_patches() -> None:
    bed = ShellBed(endpoint(min_replicas=3, max_replicas=3))
    spec = {**ADOPTING, "apiKeySecretRef": {"name": "team-key"}}
    first = bed.resource(spec=spec, uid="uid-1")
    second = bed.resource(spec={**spec, "autoscaling": {"minReplicas": 2, "maxReplicas": 2}}, uid="uid-2")
    second["metadata"]["name"] = "rival"

    await bed.reconcile(first)
    await bed.reconcile(second)

    patches = [c for c in bed.calls() if c.startswith("PATCH")]
    assert patches == [f"PATCH /endpoints/{ENDPOINT_ID}"]  # the winner's, to its own spec
    assert bed.ownership.claims[ENDPOINT_ID][0] == "uid-1"
    assert [e.reason for e in bed.events if e.type == "Warning"] == ["EndpointOwnedElsewhere"]


async def test_the_claim_goes_with_the_resource_that_holds_it() -> None:
    bed = ShellBed(endpoint())
    spec = {**ADOPTING, "apiKeySecretRef": {"name": "team-key"}}
    body = bed.resource(spec=spec)
    await bed.reconcile(body)
    bed.watch_event(body)

    await bed.reconciler.delete(body, bed.others)

    assert ENDPOINT_ID not in bed.ownership.claims
    assert "release claim " + ENDPOINT_ID in bed.log


def test_an_observed_endpoint_switched_to_full_with_the_operator_key_is_not_changed() -> None:
    """ObserveOnly may adopt with the operator-wide key; switching to Full later does not get round (c)."""
    observed = plan(replace(inputs(endpoint_id=ENDPOINT_ID, **OBSERVE_ONLY), adoption_claim=CLAIMED)).status
    switched = inputs(
        endpoint_id=ENDPOINT_ID, previous=observed, autoscaling={"min_replicas": 2, "max_replicas": 2}
    )

    assert what_to_observe(switched).namespace_label
    refused = plan(switched)
    allowed = plan(replace(switched, namespace_allows_adoption=True))

    assert refused.actions == ()
    assert verdict(refused)["Stalled"] == ("True", "AdoptionRefused")
    assert [type(a) for a in allowed.actions] == [UpdateEndpoint]


@pytest.mark.parametrize("namespace_allows", [False, True])
def test_an_adopted_endpoint_is_deleted_with_the_operator_key_only_where_the_namespace_allows(
    namespace_allows: bool,
) -> None:
    adopting_step = replace(
        inputs(endpoint_id=ENDPOINT_ID), namespace_allows_adoption=True, adoption_claim=CLAIMED
    )
    adopted = deletion(recorded=plan(adopting_step).status, spec_=adopting_step.spec)

    first = plan_deletion(adopted)
    then = plan_deletion(replace(adopted, namespace_allows_adoption=namespace_allows))

    assert isinstance(first, ReadNamespace)
    if namespace_allows:
        assert isinstance(then, ResolveKey)  # on to the DELETE
    else:
        assert isinstance(then, Released)
        assert "left running" in then.message


async def test_with_the_operator_key_in_a_namespace_that_does_not_allow_it_nothing_is_claimed_or_sent() -> (
    None
):
    bed = ShellBed(endpoint(min_replicas=3, max_replicas=3))
    bed.ownership.allowing.clear()
    body = bed.resource(spec=ADOPTING)

    await bed.reconcile(body)
    bed.watch_event(body)
    await bed.reconciler.delete(body, bed.others)

    assert bed.calls() == [f"GET /endpoints/{ENDPOINT_ID}"]
    assert bed.ownership.claims == {}
    assert [e.reason for e in bed.events] == ["AdoptionRefused"]


async def test_the_v1_endpoint_a_migration_replaces_is_not_adopted_by_another_resource() -> None:
    """team-b/migrating moves from v1 to v2: its status names the v1 endpoint only in rollout.from (its
    endpointId is the v2 one, or none yet) until the v1 endpoint is deleted. It still owns it."""
    bed = ShellBed(endpoint(min_replicas=3, max_replicas=3))
    migrating = {
        "metadata": {"uid": "uid-b", "namespace": "team-b", "name": "migrating"},
        "status": {
            "api": "v2",
            "endpointId": "ep_new",
            "rollout": {"from": ENDPOINT_ID, "to": "team-b-migrating", "phase": "WaitingReady"},
        },
    }
    bed.others = replace(bed.others, owners=kopf_index(endpoint_owners, migrating))
    body = bed.resource(spec={**ADOPTING, "apiKeySecretRef": {"name": "team-key"}})

    await bed.reconcile(body)

    assert [c for c in bed.calls() if not c.startswith("GET")] == []
    assert bed.ownership.claims == {}
    assert bed.status.writes[-1].endpoint_id is None
    stalled = bed.status.writes[-1].condition(ConditionType.STALLED)
    assert stalled is not None
    assert (stalled.reason, "team-b/migrating" in stalled.message) == ("EndpointOwnedElsewhere", True)
