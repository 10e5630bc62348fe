"""Fixtures of the chart, manifest and GitOps tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.tooling import PROMETHEUSRULE_CRD_STUB, SERVICEMONITOR_CRD_STUB, Tools
from tests.support.controlplane import ControlPlane


@pytest.fixture(scope="session")
def tools(control_plane: ControlPlane) -> Tools:
    """helm, kubectl and kstatus from hack/build-testbins.sh. Through `control_plane`, so that a cold
    build happens once after collection (controlplane_fixtures), not inside a test's timeout."""
    return Tools(control_plane.bin_dir)


@pytest.fixture(scope="session")
def servicemonitor_crd_installed(control_plane: ControlPlane) -> str:
    """The stub of the Prometheus Operator's ServiceMonitor CRD (tests/chart/data; kind and group only,
    any spec), so that the chart's ServiceMonitor can be applied; returns its name."""
    return _install_crd_stub(control_plane, SERVICEMONITOR_CRD_STUB, "servicemonitors.monitoring.coreos.com")


@pytest.fixture(scope="session")
def prometheusrule_crd_installed(control_plane: ControlPlane) -> str:
    """The stub of the Prometheus Operator's PrometheusRule CRD, likewise; returns its name."""
    return _install_crd_stub(control_plane, PROMETHEUSRULE_CRD_STUB, "prometheusrules.monitoring.coreos.com")


def _install_crd_stub(control_plane: ControlPlane, stub: Path, name: str) -> str:
    control_plane.kubectl("apply", "--server-side", "--field-manager=chart-tests", "-f", str(stub))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    return name
