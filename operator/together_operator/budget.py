"""TogetherBudget: what a namespace may commit, and whether one create, start or scale-up fits.

Pure: the shell serialises the decisions of one namespace (so two resources cannot both take the last
dollar), counts what the others commit, and sends only what `decide` allows. Scale-downs and stops are
never asked about: they only lower what is committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fnmatch import fnmatchcase

from pydantic import Field

from together_operator.core import Action, CreateEndpoint, UpdateEndpoint
from together_operator.pricing import BILLED_STATES, KnownPrice, committed_hourly, dollars
from together_operator.resource import (
    Condition,
    ConditionStatus,
    ConditionType,
    TogetherEndpointStatus,
    _CamelModel,
)

GROUP = "together.ai"
VERSION = "v1alpha1"
PLURAL = "togetherbudgets"
KIND = "TogetherBudget"


class TogetherBudgetSpec(_CamelModel):
    max_hourly_cost: Decimal | None = None
    """USD per hour the namespace's endpoints may commit (each that is or is about to be running, at
    its maximum replicas)."""
    max_endpoints: int | None = Field(default=None, ge=0)
    """Endpoints that may be running (or about to be) at once."""
    allowed_hardware: tuple[str, ...] | None = None
    """Hardware ids, exact or `*`-globs; None: any."""


class TogetherBudgetStatus(_CamelModel):
    committed_hourly_cost: str
    endpoints: int
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Budget:
    name: str
    spec: TogetherBudgetSpec


@dataclass(frozen=True)
class Ask:
    """What a create, start or scale-up would commit once sent."""

    hardware: str | None
    hourly: Decimal | None
    """USD per hour at the maximum replicas asked for; None: the price is not known."""
    now_hourly: Decimal
    """What the resource commits before the change (a scale-up adds the difference)."""
    adds_endpoint: bool
    """A create or start: one more endpoint running."""


@dataclass(frozen=True)
class Committed:
    """What the other resources of the namespace commit (or were just allowed to)."""

    hourly: Decimal
    endpoints: int


@dataclass(frozen=True)
class Allowed:
    pass


@dataclass(frozen=True)
class Exceeded:
    message: str


def decide(budgets: Sequence[Budget], ask: Ask, others: Committed) -> Allowed | Exceeded:
    """Whether `ask` fits every budget of the namespace; none: nothing is limited."""
    for budget in sorted(budgets, key=lambda b: b.name):
        verdict = _decide_one(budget, ask, others)
        if isinstance(verdict, Exceeded):
            return verdict
    return Allowed()


def _decide_one(budget: Budget, ask: Ask, others: Committed) -> Allowed | Exceeded:
    spec, which = budget.spec, f"TogetherBudget {budget.name}"
    allowed = spec.allowed_hardware
    if allowed is not None and not any(fnmatchcase(ask.hardware or "", pattern) for pattern in allowed):
        return Exceeded(f"hardware {ask.hardware} is not allowed by {which} (allowed: {', '.join(allowed)})")
    if spec.max_endpoints is not None and ask.adds_endpoint and others.endpoints + 1 > spec.max_endpoints:
        return Exceeded(
            f"one more running endpoint would make {others.endpoints + 1}; {which} allows "
            f"{spec.max_endpoints}"
        )
    limit = spec.max_hourly_cost
    if limit is None:
        return Allowed()
    if ask.hourly is None:
        return Exceeded(f"the hardware's price is not known yet, so {which} cannot be checked")
    if others.hourly + ask.hourly > limit:
        return Exceeded(
            f"would cost {dollars(ask.hourly)} USD/h (from {dollars(ask.now_hourly)}); "
            f"{dollars(others.hourly)} USD/h is committed by the namespace's other endpoints; "
            f"the limit of {which} is {dollars(limit)} USD/h"
        )
    return Allowed()


def decide_all(budgets: Sequence[Budget], asks: Sequence[Ask], others: Committed) -> Allowed | Exceeded:
    """Whether every ask of one plan fits every budget; the first that does not is the refusal."""
    for ask in asks:
        verdict = decide(budgets, ask, others)
        if isinstance(verdict, Exceeded):
            return verdict
    return Allowed()


def reservation(asks: Sequence[Ask]) -> Decimal:
    """What to hold for an allowed plan until its status shows it: the most any of its asks commits (each
    is what the whole resource commits once its action is sent)."""
    return max(ask.hourly or Decimal(0) for ask in asks)


def committed(amounts: Iterable[tuple[Decimal, bool]]) -> Committed:
    """From (hourly, running) of each other resource."""
    hourly, endpoints = Decimal(0), 0
    for amount, running in amounts:
        hourly += amount
        endpoints += running
    return Committed(hourly, endpoints)


def ask_for(action: Action, status: TogetherEndpointStatus, per_replica_hour: Decimal | None) -> Ask | None:
    """What `action` would commit, if it is a create, a start or a scale-up of a running endpoint; None
    for anything else (a stop, a scale-down, a rename), which always passes. `status` is the one the plan
    decided (the endpoint as observed)."""

    def hourly(replicas: int) -> Decimal | None:
        return None if per_replica_hour is None else per_replica_hour * replicas

    if isinstance(action, CreateEndpoint):
        request = action.request
        starts = request.state != "STOPPED"
        return Ask(
            hardware=request.hardware,
            hourly=hourly(request.autoscaling.max_replicas) if starts else Decimal(0),
            now_hourly=Decimal(0),
            adds_endpoint=starts,
        )
    if not isinstance(action, UpdateEndpoint):
        return None
    update, observed = action.request, status.autoscaling
    before = observed.max_replicas if observed is not None else 0
    after = update.autoscaling.max_replicas if update.autoscaling is not None else before
    running = status.state in BILLED_STATES
    now = (hourly(before) or Decimal(0)) if running else Decimal(0)
    if update.state == "STARTED":
        return Ask(status.hardware, hourly(after), now_hourly=now, adds_endpoint=not running)
    if update.state is None and running and after > before:
        return Ask(status.hardware, hourly(after), now_hourly=now, adds_endpoint=False)
    return None


def asks(actions: Sequence[Action], status: TogetherEndpointStatus, price: KnownPrice | None) -> list[Ask]:
    """What each create, start or scale-up among `actions` would commit, at `price` where it is the price
    of the hardware the action runs on (what a create sends, else what is observed); unknown otherwise."""
    found = []
    for action in actions:
        hardware = action.request.hardware if isinstance(action, CreateEndpoint) else status.hardware
        per_hour = price.per_replica_hour if price is not None and price.hardware == hardware else None
        ask = ask_for(action, status, per_hour)
        if ask is not None:
            found.append(ask)
    return found


def frees_budget(before: TogetherEndpointStatus | None, after: TogetherEndpointStatus | None) -> bool:
    """Whether a resource's status going from `before` to `after` (None: the resource is gone) lowers
    what its namespace commits, so that a resource waiting for budget may proceed."""
    if before is None:
        return False
    return committed_hourly(after or TogetherEndpointStatus()) < committed_hourly(before)


def reservation_settled(reserved: Decimal, status: TogetherEndpointStatus) -> bool:
    """Whether what a budget allowed no longer needs holding: the status shows it committed, or no
    create, start or update is in flight any more (it failed, stalled or was stopped)."""
    reconciling = status.condition(ConditionType.RECONCILING)
    in_flight = (
        reconciling is not None
        and reconciling.status == "True"
        and reconciling.reason in ("Creating", "Starting", "Updating")
    )
    return not in_flight or committed_hourly(status) >= reserved


@dataclass(frozen=True)
class BudgetRecord:
    """A TogetherBudget as the watch last showed it."""

    budget: Budget
    generation: int
    status: TogetherBudgetStatus | None


class BudgetBook:
    """The TogetherBudgets of every namespace, as the watch last showed them."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, BudgetRecord]] = {}

    def put(self, namespace: str, name: str, record: BudgetRecord | None) -> bool:
        """Record a budget (None: it was deleted); whether its limits changed (not only its status)."""
        records = self._records.setdefault(namespace, {})
        before = records.pop(name, None)
        if record is not None:
            records[name] = record
        return (before.budget if before else None) != (record.budget if record else None)

    def in_namespace(self, namespace: str) -> list[Budget]:
        return [record.budget for _, record in sorted(self._records.get(namespace, {}).items())]

    def hourly_limits(self) -> list[tuple[str, str, Decimal]]:
        """(namespace, budget name, maxHourlyCost) of every budget with a cost limit."""
        return [
            (namespace, record.budget.name, record.budget.spec.max_hourly_cost)
            for namespace, record in self.records()
            if record.budget.spec.max_hourly_cost is not None
        ]

    def records(self) -> list[tuple[str, BudgetRecord]]:
        return [
            (namespace, record) for namespace, records in self._records.items() for record in records.values()
        ]


def budget_status(
    budget: Budget,
    previous: TogetherBudgetStatus | None,
    committed_now: Committed,
    generation: int,
    now: datetime,
) -> TogetherBudgetStatus:
    """The budget's status: what the namespace commits, and Ready while that is within every limit
    (a budget lowered below what runs is OverBudget: running endpoints are not stopped for it)."""
    spec = budget.spec
    over = []
    if spec.max_hourly_cost is not None and committed_now.hourly > spec.max_hourly_cost:
        hourly, most = dollars(committed_now.hourly), dollars(spec.max_hourly_cost)
        over.append(f"{hourly} USD/h committed, over the limit of {most}")
    if spec.max_endpoints is not None and committed_now.endpoints > spec.max_endpoints:
        over.append(f"{committed_now.endpoints} endpoints running, over the limit of {spec.max_endpoints}")
    limit = f" of {dollars(spec.max_hourly_cost)}" if spec.max_hourly_cost is not None else ""
    message = "; ".join(over) or f"{dollars(committed_now.hourly)} USD/h committed{limit}"
    status: ConditionStatus = "False" if over else "True"
    before = (
        next((c for c in previous.conditions if c.type == ConditionType.READY), None) if previous else None
    )
    ready = Condition(
        type=ConditionType.READY,
        status=status,
        reason="OverBudget" if over else "WithinBudget",
        message=message,
        observed_generation=generation,
        last_transition_time=before.last_transition_time if before and before.status == status else now,
    )
    return TogetherBudgetStatus(
        committed_hourly_cost=dollars(committed_now.hourly),
        endpoints=committed_now.endpoints,
        observed_generation=generation,
        conditions=(ready,),
    )
