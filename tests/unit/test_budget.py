"""TogetherBudget (issue 15, item 3): the arithmetic of one decision, which actions are asked about,
the gate's bookkeeping (`budget_shell`), and the shell's gate: nothing over budget is sent, and many
resources at once cannot overspend."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from together_operator import budget
from together_operator.budget import (
    Allowed,
    Ask,
    Budget,
    BudgetBook,
    BudgetRecord,
    Committed,
    Exceeded,
    TogetherBudgetSpec,
)
from together_operator.budget_shell import BudgetGate
from together_operator.core import AdoptEndpoint, CreateEndpoint, NotCreated, UpdateEndpoint, plan
from together_operator.metrics import OperatorMetrics
from together_operator.pricing import KnownPrice, dollars
from together_operator.resource import ConditionType, ObservedAutoscaling, Pricing, TogetherEndpointStatus
from together_operator.together.models import (
    Autoscaling,
    CreateEndpointRequest,
    DedicatedEndpoint,
    UpdateEndpointRequest,
)

from .builders import ENDPOINT_ID, HARDWARE, MODEL, NAMESPACE, NOW, endpoint, inputs, later
from .fakes import ShellBed

REPO_ROOT = Path(__file__).resolve().parents[2]


def limit(**spec: object) -> list[Budget]:
    return [Budget("team", TogetherBudgetSpec.model_validate(spec))]


def ask(hourly: str | None = "10", *, adds: bool = True, hardware: str = HARDWARE, now: str = "0") -> Ask:
    return Ask(hardware, None if hourly is None else Decimal(hourly), Decimal(now), adds)


# --- one decision -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budgets", "asked", "others", "allowed"),
    [
        pytest.param([], ask("1000"), Committed(Decimal(0), 0), True, id="no-budget-no-limit"),
        pytest.param(
            limit(maxHourlyCost="20"), ask("10"), Committed(Decimal("10"), 1), True, id="exactly-the-limit"
        ),
        pytest.param(
            limit(maxHourlyCost="20"), ask("10"), Committed(Decimal("10.01"), 1), False, id="a-cent-over"
        ),
        pytest.param(
            limit(maxHourlyCost="0.3"), ask("0.1"), Committed(Decimal("0.2"), 2), True, id="exact-decimals"
        ),
        pytest.param(
            limit(maxHourlyCost="20"), ask(None), Committed(Decimal(0), 0), False, id="price-unknown"
        ),
        pytest.param(limit(maxEndpoints=2), ask("1"), Committed(Decimal(0), 1), True, id="second-endpoint"),
        pytest.param(limit(maxEndpoints=2), ask("1"), Committed(Decimal(0), 2), False, id="third-endpoint"),
        pytest.param(
            limit(maxEndpoints=2),
            ask("1", adds=False),
            Committed(Decimal(0), 2),
            True,
            id="scale-up-adds-none",
        ),
        pytest.param(
            limit(allowedHardware=["*_h100_*"]), ask("1"), Committed(Decimal(0), 0), True, id="glob-matches"
        ),
        pytest.param(
            limit(allowedHardware=["1x_*"]), ask("1"), Committed(Decimal(0), 0), False, id="glob-misses"
        ),
        pytest.param(
            limit(allowedHardware=[HARDWARE]), ask("1"), Committed(Decimal(0), 0), True, id="exact-id"
        ),
        pytest.param(
            [*limit(maxHourlyCost="100"), Budget("strict", TogetherBudgetSpec(max_endpoints=0))],
            ask("1"),
            Committed(Decimal(0), 0),
            False,
            id="every-budget-must-pass",
        ),
    ],
)
def test_a_decision_fits_every_budget_of_the_namespace(
    budgets: list[Budget], asked: Ask, others: Committed, allowed: bool
) -> None:
    assert isinstance(budget.decide(budgets, asked, others), Allowed) is allowed


def test_a_refusal_names_what_it_would_cost_what_is_committed_and_the_limit() -> None:
    verdict = budget.decide(
        limit(maxHourlyCost="20"), ask("13.44", adds=False, now="6.72"), Committed(Decimal("10"), 1)
    )

    assert verdict == Exceeded(
        "would cost 13.44 USD/h (from 6.72); 10 USD/h is committed by the namespace's other endpoints; "
        "the limit of TogetherBudget team is 20 USD/h"
    )


# --- which actions are asked about ----------------------------------------------------------------------

RUNNING = TogetherEndpointStatus(
    state="STARTED", hardware=HARDWARE, autoscaling=ObservedAutoscaling(min_replicas=1, max_replicas=2)
)
STOPPED = RUNNING.model_copy(update={"state": "STOPPED"})


def create(state: str = "STARTED", max_replicas: int = 2) -> CreateEndpoint:
    return CreateEndpoint(
        CreateEndpointRequest(
            model=MODEL,
            hardware=HARDWARE,
            autoscaling=Autoscaling(min_replicas=1, max_replicas=max_replicas),
            state=state,
        )
    )


def update(**fields: object) -> UpdateEndpoint:
    return UpdateEndpoint(ENDPOINT_ID, UpdateEndpointRequest.model_validate(fields))


@pytest.mark.parametrize(
    ("action", "status", "expected"),
    [
        pytest.param(create(), TogetherEndpointStatus(), ask("6", now="0"), id="create"),
        pytest.param(
            create(state="STOPPED"), TogetherEndpointStatus(), ask("0", adds=False), id="create-stopped"
        ),
        pytest.param(update(state="STARTED"), STOPPED, ask("6"), id="start"),
        pytest.param(
            update(state="STARTED", autoscaling={"min_replicas": 1, "max_replicas": 4}),
            STOPPED,
            ask("12"),
            id="start-larger",
        ),
        pytest.param(
            update(autoscaling={"min_replicas": 1, "max_replicas": 3}),
            RUNNING,
            ask("9", adds=False, now="6"),
            id="scale-up",
        ),
        pytest.param(
            update(autoscaling={"min_replicas": 1, "max_replicas": 1}), RUNNING, None, id="scale-down"
        ),
        pytest.param(
            update(autoscaling={"min_replicas": 1, "max_replicas": 3}),
            STOPPED,
            None,
            id="scale-while-stopped",
        ),
        pytest.param(update(state="STOPPED"), RUNNING, None, id="stop"),
        pytest.param(update(display_name="renamed"), RUNNING, None, id="rename"),
        pytest.param(AdoptEndpoint(ENDPOINT_ID), TogetherEndpointStatus(), None, id="adopt"),
    ],
)
def test_creates_starts_and_scale_ups_are_asked_about_and_nothing_else(
    action: object, status: TogetherEndpointStatus, expected: Ask | None
) -> None:
    assert budget.ask_for(action, status, Decimal(3)) == expected  # type: ignore[arg-type]


def test_an_action_is_asked_about_at_the_price_of_the_hardware_it_runs_on_only() -> None:
    price = KnownPrice(HARDWARE, Decimal(3), NOW)
    elsewhere = KnownPrice("1x_nvidia_h100_80gb_sxm", Decimal(3), NOW)

    assert budget.asks([create(), update(state="STOPPED")], TogetherEndpointStatus(), price) == [ask("6")]
    assert budget.asks([update(state="STARTED")], STOPPED, price) == [ask("6")]
    assert budget.asks([create()], TogetherEndpointStatus(), elsewhere) == [ask(None)]
    assert budget.asks([update(state="STARTED")], STOPPED, None) == [ask(None)]


# --- the gate's bookkeeping (budget_shell) ---------------------------------------------------------------

# What `plan` decides for a resource with no endpoint yet: one create of 2x H100 at one replica.
CREATE = inputs(remote=NotCreated())
H100X2 = KnownPrice(HARDWARE, Decimal("3.252"), NOW)


def billed(state: str, max_hourly: str) -> TogetherEndpointStatus:
    """A status whose pricing commits `max_hourly` while `state` is billed."""
    priced = Pricing(
        per_replica_hour=max_hourly, min_hourly=max_hourly, max_hourly=max_hourly, hourly_range=""
    )
    return TogetherEndpointStatus(state=state, pricing=priced)


def gate(**spec: object) -> BudgetGate:
    book = BudgetBook()
    book.put(NAMESPACE, "team", record(TogetherBudgetSpec.model_validate(spec)))
    return BudgetGate(book)


def test_what_the_gate_allowed_counts_until_a_status_written_and_published_shows_it() -> None:
    limited = gate(maxHourlyCost="4")
    creating = plan(CREATE)

    assert limited.check(CREATE, creating, H100X2, "uid-1") == creating
    assert limited.committed(NAMESPACE) == Committed(Decimal("3.252"), 1)
    limited.record("uid-1", NAMESPACE, creating.status)  # the create's intent: nothing billed yet
    limited.settle("uid-1", creating.status)
    assert limited.committed(NAMESPACE) == Committed(Decimal("3.252"), 1)
    refused = limited.check(CREATE, creating, H100X2, "uid-2")
    stalled = refused.status.condition(ConditionType.STALLED)
    assert stalled is not None
    assert stalled.reason == "BudgetExceeded"

    limited.record("uid-1", NAMESPACE, billed("PENDING", "3.252"))
    limited.settle("uid-1", billed("PENDING", "3.252"))

    assert limited.committed(NAMESPACE) == Committed(Decimal("3.252"), 1)
    assert limited.committed(NAMESPACE, excluding="uid-1") == Committed(Decimal(0), 0)


def test_a_plan_without_budgets_or_without_asks_passes_and_reserves_nothing() -> None:
    unlimited, nothing_left = BudgetGate(BudgetBook()), gate(maxHourlyCost="0")
    stopping = inputs(state="Stopped")

    assert unlimited.check(CREATE, plan(CREATE), H100X2, "uid-1") == plan(CREATE)
    assert nothing_left.check(stopping, plan(stopping), H100X2, "uid-1") == plan(stopping)
    assert unlimited.committed(NAMESPACE) == nothing_left.committed(NAMESPACE) == Committed(Decimal(0), 0)


def test_budget_is_freed_when_a_resource_commits_less_or_goes_away_having_committed_something() -> None:
    limited = gate(maxHourlyCost="10")
    limited.record("uid-running", NAMESPACE, billed("STARTED", "3.252"))
    limited.record("uid-stopped", NAMESPACE, billed("STOPPED", "3.252"))

    assert limited.record("uid-running", NAMESPACE, billed("STARTED", "3.252")) is False
    assert limited.record("uid-running", NAMESPACE, billed("STOPPING", "1")) is True
    assert limited.forget("uid-stopped") is None
    assert limited.forget("uid-running") == NAMESPACE
    assert limited.resources_in(NAMESPACE) == []


# --- the shell's gate ------------------------------------------------------------------------------


def record(spec: TogetherBudgetSpec) -> BudgetRecord:
    return BudgetRecord(Budget("team", spec), generation=1, status=None)


def many_resources(bed: ShellBed) -> None:
    """Let the bed's one status writer stand for many resources: each body's resourceVersion is its
    own, so one resource's write does not make another's guarded write a conflict. Each write is a
    round trip, as on a real apiserver: the other resources run while it is under way."""
    guarded_write = bed.status.write

    async def write_own_version(*args: Any, resource_version: str | None = None, **kwargs: Any) -> bool:
        await asyncio.sleep(0)
        return await guarded_write(*args, **kwargs)

    bed.status.write = write_own_version  # type: ignore[method-assign]


def budget_bed(*endpoints: DedicatedEndpoint, **spec: object) -> ShellBed:
    """A bed whose namespace has one budget; 2x H100 costs 3.252 USD per replica-hour (builders)."""
    bed = ShellBed(*endpoints)
    bed.budgets.put(NAMESPACE, "team", record(TogetherBudgetSpec.model_validate(spec)))
    return bed


async def test_a_create_over_budget_is_not_sent_and_stalls_with_the_numbers() -> None:
    bed = budget_bed(maxHourlyCost="3")

    await bed.reconcile(bed.resource())

    assert "POST /endpoints" not in bed.calls()
    written = bed.status.writes[-1]
    stalled = written.condition(ConditionType.STALLED)
    assert stalled is not None
    assert (stalled.status, stalled.reason) == ("True", "BudgetExceeded")
    assert "would cost 3.252 USD/h" in stalled.message
    assert "the limit of TogetherBudget team is 3 USD/h" in stalled.message
    assert written.create_requested_at is None  # no intent: nothing was sent
    assert [e.reason for e in bed.events] == ["BudgetExceeded"]


async def test_raising_the_budget_lets_the_waiting_resource_proceed() -> None:
    bed = budget_bed(maxHourlyCost="3")
    body = bed.resource()
    await bed.reconcile(body)
    bed.watch_event(body)

    bed.budgets.put(NAMESPACE, "team", record(TogetherBudgetSpec(max_hourly_cost=Decimal(4))))
    await bed.reconcile(body)

    assert bed.calls().count("POST /endpoints") == 1


async def test_a_scale_up_over_budget_is_refused_while_a_scale_down_passes() -> None:
    bed = budget_bed(endpoint(state="STARTED", max_replicas=2), maxHourlyCost="7")
    spec = {"model": MODEL, "hardware": HARDWARE, "endpointId": ENDPOINT_ID}
    body = bed.resource(spec={**spec, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}})
    await bed.reconcile(body)
    bed.watch_event(body)

    body["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 3}
    body["metadata"]["generation"] = 2
    await bed.reconcile(body)
    bed.watch_event(body)
    refused = bed.status.writes[-1].condition(ConditionType.STALLED)
    body["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 1}
    body["metadata"]["generation"] = 3
    await bed.reconcile(body)

    assert refused is not None
    assert refused.reason == "BudgetExceeded"
    assert "would cost 9.756 USD/h (from 6.504)" in refused.message
    assert bed.calls().count(f"PATCH /endpoints/{ENDPOINT_ID}") == 1
    assert bed.together.endpoints[ENDPOINT_ID].autoscaling.max_replicas == 1


async def test_many_resources_at_once_cannot_both_take_the_last_dollar() -> None:
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    shuffled = random.Random(seed)
    # Room for exactly three 2x H100 endpoints at one replica (3 x 3.252 = 9.756).
    bed = budget_bed(maxHourlyCost="10")
    bodies = [bed.resource(uid=f"uid-{i}") for i in range(12)]
    for i, body in enumerate(bodies):
        body["metadata"]["name"] = f"endpoint-{i}"
    shuffled.shuffle(bodies)
    many_resources(bed)

    await asyncio.gather(*(bed.reconcile(body) for body in bodies))

    assert bed.calls().count("POST /endpoints") == 3
    refused = [
        w
        for w in bed.status.writes
        if (c := w.condition(ConditionType.STALLED)) is not None and c.reason == "BudgetExceeded"
    ]
    assert len(refused) == 9


# --- the budget's own status and CRD -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "committed_now", "ready", "message"),
    [
        (
            {"maxHourlyCost": "20"},
            Committed(Decimal("13.44"), 2),
            ("True", "WithinBudget"),
            "13.44 USD/h committed of 20",
        ),
        (
            {"maxHourlyCost": "10"},
            Committed(Decimal("13.44"), 2),
            ("False", "OverBudget"),
            "13.44 USD/h committed, over the limit of 10",
        ),
        (
            {"maxEndpoints": 1},
            Committed(Decimal("1"), 2),
            ("False", "OverBudget"),
            "2 endpoints running, over the limit of 1",
        ),
        ({}, Committed(Decimal(0), 0), ("True", "WithinBudget"), "0 USD/h committed"),
    ],
)
def test_the_budget_status_shows_what_is_committed_against_the_limits(
    spec: dict[str, object], committed_now: Committed, ready: tuple[str, str], message: str
) -> None:
    written = budget.budget_status(
        Budget("team", TogetherBudgetSpec.model_validate(spec)), None, committed_now, 3, NOW
    )

    (condition,) = written.conditions
    assert (condition.status, condition.reason, condition.message) == (*ready, message)
    assert (written.committed_hourly_cost, written.endpoints, written.observed_generation) == (
        dollars(committed_now.hourly),
        committed_now.endpoints,
        3,
    )


def test_the_budget_status_keeps_its_transition_time_while_ready_does_not_change() -> None:
    team = Budget("team", TogetherBudgetSpec(max_hourly_cost=Decimal(20)))
    first = budget.budget_status(team, None, Committed(Decimal(1), 1), 1, NOW)

    again = budget.budget_status(team, first, Committed(Decimal(2), 1), 1, later(minutes=5))

    assert again.conditions[0].last_transition_time == NOW


def crd(folder: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (REPO_ROOT / folder / "togetherbudgets.together.ai.yaml").read_text()
    )
    return loaded


def test_the_budget_crd_agrees_with_the_model() -> None:
    (version,) = crd("crds")["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]["properties"]

    assert crd("crds")["spec"]["names"]["shortNames"] == ["tbudget"]
    assert (crd("crds")["spec"]["group"], version["name"]) == (budget.GROUP, budget.VERSION)
    assert sorted(schema["spec"]["properties"]) == sorted(
        str(f.alias) for f in TogetherBudgetSpec.model_fields.values()
    )
    assert sorted(schema["status"]["properties"]) == sorted(
        str(f.alias) for f in budget.TogetherBudgetStatus.model_fields.values()
    )
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Committed"] == ".status.committedHourlyCost"
    assert columns["Limit"] == ".spec.maxHourlyCost"


def test_only_a_change_of_limits_wakes_the_namespace_not_a_status_write() -> None:
    book = budget.BudgetBook()
    team = Budget("team", TogetherBudgetSpec(max_hourly_cost=Decimal(10)))
    written = budget.budget_status(team, None, Committed(Decimal(1), 1), 1, NOW)

    assert book.put(NAMESPACE, "team", BudgetRecord(team, 1, None)) is True
    assert book.put(NAMESPACE, "team", BudgetRecord(team, 1, written)) is False
    raised = Budget("team", TogetherBudgetSpec(max_hourly_cost=Decimal(20)))
    assert book.put(NAMESPACE, "team", BudgetRecord(raised, 2, written)) is True
    assert book.put(NAMESPACE, "team", None) is True
    assert book.in_namespace(NAMESPACE) == []


def test_the_cost_limit_of_each_budget_is_exported() -> None:
    book = budget.BudgetBook()
    book.put(NAMESPACE, "team", record(TogetherBudgetSpec(max_hourly_cost=Decimal("12.5"))))
    book.put(
        NAMESPACE,
        "count-only",
        BudgetRecord(Budget("count-only", TogetherBudgetSpec(max_endpoints=3)), 1, None),
    )
    metrics = OperatorMetrics()
    metrics.watch_budget_limits(book.hourly_limits)

    scraped = generate_latest(metrics.registry).decode()

    assert (
        'together_operator_budget_hourly_cost_limit_dollars{budget="team",namespace="team-a"} 12.5' in scraped
    )
    assert 'budget="count-only"' not in scraped


async def settle(condition: Callable[[], bool]) -> bool:
    """Let the event loop run until `condition` holds (False if it never does while anything runs)."""
    for _ in range(1000):
        if condition():
            return True
        await asyncio.sleep(0)
    return condition()


async def test_a_resource_waiting_for_budget_proceeds_by_itself_when_another_stops() -> None:
    bed = budget_bed(endpoint(state="STARTED"), maxHourlyCost="4")
    many_resources(bed)
    running = bed.resource(
        spec={"model": MODEL, "hardware": HARDWARE, "endpointId": ENDPOINT_ID}, uid="uid-1"
    )
    await bed.reconcile(running)
    bed.watch_event(running)
    waiting = bed.resource(uid="uid-waiting")
    waiting["metadata"]["name"] = "waiting"
    stop = asyncio.Event()
    loop = asyncio.create_task(bed.reconciler.run(waiting, stop.wait(), bed.others))
    assert await settle(lambda: "BudgetExceeded" in [e.reason for e in bed.events])

    running["spec"]["state"] = "Stopped"
    running["metadata"]["generation"] = 2
    await bed.reconcile(running)

    assert await settle(lambda: "POST /endpoints" in bed.calls())
    stop.set()
    await loop


async def test_what_a_budget_allowed_is_counted_until_the_status_showing_it_is_written() -> None:
    # Room for one 2x H100 endpoint (3.252 USD/h); the second resource decides while every status write
    # of the first after its POST is under way, as it may on a real apiserver.
    bed = budget_bed(maxHourlyCost="4")
    first, second = bed.resource(uid="uid-1"), bed.resource(uid="uid-2")
    second["metadata"]["name"] = "endpoint-2"
    many_resources(bed)
    write = bed.status.write

    async def write_while_the_second_decides(*args: Any, **kwargs: Any) -> bool:
        if "POST /endpoints" in bed.calls() and args[1] == first["metadata"]["name"]:
            await bed.reconcile(second)
        return await write(*args, **kwargs)

    bed.status.write = write_while_the_second_decides  # type: ignore[method-assign]

    await bed.reconcile(first)

    assert bed.calls().count("POST /endpoints") == 1
