"""Fixtures of the chart, manifest and GitOps tests."""

from __future__ import annotations

import pytest

from tests.chart.tooling import Tools
from tests.support.controlplane import ControlPlane


@pytest.fixture(scope="session")
def tools(control_plane: ControlPlane) -> Tools:
    """helm, kubectl and kstatus from hack/build-testbins.sh. Through `control_plane`, so that a cold
    build happens once after collection (controlplane_fixtures), not inside a test's timeout."""
    return Tools(control_plane.bin_dir)
