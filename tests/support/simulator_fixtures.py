"""The Together API simulator as pytest fixtures: real HTTP on 127.0.0.1, one simulator per test.

- `simulator`: a simulator with test timings (lifecycle steps of 0.2 s, a one-second minute).
- `simulator_factory(**config_fields)`: start another one; the fields override those test defaults, e.g.
  `simulator_factory(accounts={"key-a": "alice"}, faults=[FaultRule(fault="rate_limit")])`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, Protocol

import pytest

from together_simulator import RunningSimulator, SimulatorConfig, run_simulator_in_thread

TEST_DEFAULTS: dict[str, Any] = {"transition_seconds": 0.2, "minute_seconds": 1.0, "seed": 0}


class SimulatorFactory(Protocol):
    def __call__(self, **config_fields: Any) -> RunningSimulator: ...


@pytest.fixture
def simulator_factory() -> Iterator[SimulatorFactory]:
    with ExitStack() as running:

        def start(**config_fields: Any) -> RunningSimulator:
            config = SimulatorConfig.model_validate({**TEST_DEFAULTS, **config_fields})
            return running.enter_context(run_simulator_in_thread(config))

        yield start


@pytest.fixture
def simulator(simulator_factory: SimulatorFactory) -> RunningSimulator:
    return simulator_factory()
