"""The budget gate of the shell (`shell.Reconciler`): what each resource this process reconciles commits,
and whether a plan's creates, starts and scale-ups fit its namespace's TogetherBudgets.

It keeps the status last written of each resource with its namespace (what the namespace commits; the
metrics read them too), and what a budget allowed a resource to commit until its status shows that.
Every decision is `budget`'s; `check` awaits nothing, so the event loop serialises the decisions of
every namespace: two resources cannot both take the last dollar.
"""

from __future__ import annotations

from decimal import Decimal

from together_operator import budget, core, pricing
from together_operator.budget import BudgetBook, Committed
from together_operator.core import Inputs, Plan
from together_operator.pricing import KnownPrice, NamespaceCost
from together_operator.resource import TogetherEndpointStatus


class BudgetGate:
    def __init__(self, budgets: BudgetBook) -> None:
        self._budgets = budgets
        self._latest: dict[str, TogetherEndpointStatus] = {}
        """uid -> the status last written"""
        self._namespaces: dict[str, str] = {}
        """uid -> namespace, of the resources in `_latest` or `_reserved`"""
        self._reserved: dict[str, Decimal] = {}
        """uid -> USD per hour a budget allowed it to commit, until its status shows that"""

    def check(self, inputs: Inputs, plan: Plan, price: KnownPrice | None, uid: str) -> Plan:
        """`plan`, or its refusal when a create, start or scale-up would exceed a budget of the namespace
        (priced at `price`). An allowed plan's commitment is reserved until `settle` sees it written."""
        budgets = self._budgets.in_namespace(inputs.namespace)
        asks = budget.asks(plan.actions, plan.status, price)
        if not budgets or not asks:
            return plan
        verdict = budget.decide_all(budgets, asks, self.committed(inputs.namespace, excluding=uid))
        if isinstance(verdict, budget.Exceeded):
            return core.refused_by_budget(inputs, plan, verdict.message)
        self._reserved[uid] = budget.reservation(asks)
        self._namespaces[uid] = inputs.namespace
        return plan

    def record(self, uid: str, namespace: str, status: TogetherEndpointStatus) -> bool:
        """The resource's status was written; whether that freed budget of its namespace."""
        before = self._latest.get(uid)
        self._latest[uid] = status
        self._namespaces[uid] = namespace
        return budget.frees_budget(before, status)

    def settle(self, uid: str, status: TogetherEndpointStatus) -> None:
        """The reconcile's status was written: only now does the namespace's count see it, so only now
        may the reservation go."""
        reserved = self._reserved.get(uid)
        if reserved is not None and budget.reservation_settled(reserved, status):
            del self._reserved[uid]

    def forget(self, uid: str) -> str | None:
        """The resource is no longer reconciled here; the namespace whose budget that freed, if any."""
        released = self._latest.pop(uid, None)
        namespace = self._namespaces.pop(uid, None)
        self._reserved.pop(uid, None)
        return namespace if budget.frees_budget(released, None) else None

    def resources_in(self, namespace: str) -> list[str]:
        """The uids of the namespace's resources."""
        return [uid for uid, where in self._namespaces.items() if where == namespace]

    def committed(self, namespace: str, excluding: str | None = None) -> Committed:
        """What the namespace's resources (but `excluding`) commit, or were just allowed to."""
        return budget.committed(
            (max(self._reserved.get(uid, Decimal(0)), pricing.committed_hourly(status)), running)
            for uid, status, running in self._namespace_statuses(namespace)
            if uid != excluding
        )

    def statuses(self) -> list[TogetherEndpointStatus]:
        return list(self._latest.values())

    def hourly_costs(self) -> list[NamespaceCost]:
        return pricing.namespace_costs((self._namespaces[uid], s) for uid, s in self._latest.items())

    def _namespace_statuses(self, namespace: str) -> list[tuple[str, TogetherEndpointStatus, bool]]:
        """(uid, last status, whether it runs or was allowed to) of the namespace's resources."""
        found = []
        for uid in self.resources_in(namespace):
            status = self._latest.get(uid, TogetherEndpointStatus())
            found.append((uid, status, uid in self._reserved or status.state in pricing.BILLED_STATES))
        return found
