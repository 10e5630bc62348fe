"""Fixtures for tests on the real API server that need the TogetherEndpoint CRD installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.controlplane import ControlPlane

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = REPO_ROOT / "crds" / "togetherendpoints.together.ai.yaml"
CRD_NAME = "togetherendpoints.together.ai"
BUDGET_CRD_PATH = REPO_ROOT / "crds" / "togetherbudgets.together.ai.yaml"


@pytest.fixture(scope="session")
def together_crd(control_plane: ControlPlane) -> str:
    """Install crds/togetherendpoints.together.ai.yaml and the TogetherBudget CRD (server-side apply)
    once per session and wait until the API server serves them. Returns the TogetherEndpoint CRD's
    name."""
    for path in (CRD_PATH, BUDGET_CRD_PATH):
        control_plane.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=together-operator-tests",
            "-f",
            str(path),
        )
    for name in (CRD_NAME, "togetherbudgets.together.ai"):
        control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    return CRD_NAME
