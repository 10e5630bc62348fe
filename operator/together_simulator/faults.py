"""Which fault rules a call triggers; rules with `times` are used up as they fire."""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from together_simulator.config import FaultKind, FaultRule


@dataclass
class _ActiveRule:
    rule: FaultRule
    remaining: int | None


class FaultInjector:
    def __init__(self, rules: Iterable[FaultRule], rng: random.Random) -> None:
        self._rng = rng
        self._active: list[_ActiveRule] = []
        self.replace(rules)

    def replace(self, rules: Iterable[FaultRule]) -> None:
        self._active = [_ActiveRule(rule, rule.times) for rule in rules]

    def rules(self) -> list[FaultRule]:
        """The rules still in force, each `times` showing how many calls it has left."""
        return [
            entry.rule
            if entry.remaining is None
            else entry.rule.model_copy(update={"times": entry.remaining})
            for entry in self._active
        ]

    def latency(self, method: str, path: str) -> float:
        """Seconds to wait before handling this call: every matching latency rule adds its delay."""
        fired = self._fire({"latency"}, method, path, first_only=False)
        return sum((entry.rule.seconds for entry in fired), 0.0)

    def take(self, method: str, path: str, *kinds: FaultKind) -> FaultRule | None:
        """The first rule of one of `kinds` that fires for this call, if any."""
        fired = self._fire(kinds, method, path, first_only=True)
        return fired[0].rule if fired else None

    def _fire(
        self, kinds: Collection[FaultKind], method: str, path: str, *, first_only: bool
    ) -> list[_ActiveRule]:
        fired: list[_ActiveRule] = []
        for entry in self._active:
            if not self._matches(entry.rule, kinds, method, path):
                continue
            # Draw only when needed, so seeded runs without probabilistic rules use no randomness.
            if entry.rule.probability < 1.0 and self._rng.random() >= entry.rule.probability:
                continue
            fired.append(entry)
            if first_only:
                break
        for entry in fired:
            if entry.remaining is not None:
                entry.remaining -= 1
        self._active = [entry for entry in self._active if entry.remaining != 0]
        return fired

    @staticmethod
    def _matches(rule: FaultRule, kinds: Collection[FaultKind], method: str, path: str) -> bool:
        return (
            rule.fault in kinds
            and (rule.method is None or rule.method.upper() == method)
            and (rule.path is None or re.match(rule.path, path) is not None)
        )
