"""Fixtures of the chart, manifest and GitOps tests."""

from __future__ import annotations

import pytest

from tests.chart.tooling import CHART, Tools
from tests.support.controlplane import ControlPlane


@pytest.fixture(scope="session")
def tools(control_plane: ControlPlane) -> Tools:
    """helm, kubectl and kstatus from hack/build-testbins.sh. Through `control_plane`, so that a cold
    build happens once after collection (controlplane_fixtures), not inside a test's timeout."""
    return Tools(control_plane.bin_dir)


@pytest.fixture(scope="session")
def chart_crd(control_plane: ControlPlane) -> str:
    """The chart's CRD (byte-identical to crds/, a test proves it), installed once per session as
    `helm install` would on a cluster without it; returns its name."""
    name = "togetherendpoints.together.ai"
    control_plane.kubectl(
        "apply", "--server-side", "--field-manager=chart-tests", "-f", str(CHART / "crds" / f"{name}.yaml")
    )
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    return name
