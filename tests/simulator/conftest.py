"""The simulator for these tests, and an authenticated HTTP client on its API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.simulator.api_helpers import STEADY, api_client
from tests.support.simulator_fixtures import SimulatorFactory
from together_simulator import RunningSimulator


@pytest.fixture
def simulator(simulator_factory: SimulatorFactory) -> RunningSimulator:
    """Overrides the shared fixture: here states change only when a test advances the clock, so what a
    test observes does not depend on how fast the machine is."""
    return simulator_factory(**STEADY)


@pytest.fixture
def api(simulator: RunningSimulator) -> Iterator[httpx.Client]:
    """The simulator's v1 API, authenticated with its first key."""
    with api_client(simulator) as client:
        yield client
