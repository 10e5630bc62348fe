"""The official `together` SDK 3.x drives the simulator's v2 API through every operation the operator
will use (tests/simulator/sdk3/drive_v2.py, in the SDK's own virtualenv: .venv holds 2.x for the v1
tests, and the two cannot share one). The SDK validates every response strictly against its types.

`make test` builds the virtualenv (`make sdk3-venv`); without it the test fails in CI and skips elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.simulator.api_helpers import STEP_SECONDS
from together_simulator import RunningSimulator

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).parent / "sdk3" / "drive_v2.py"


def sdk3_python() -> str:
    found = subprocess.run(
        [str(REPO / "hack" / "build-sdk3-venv.sh"), "--path"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        reason = f"the together 3.x SDK virtualenv is not built (make sdk3-venv): {found.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found.stdout.strip()


def test_the_3x_sdk_drives_every_v2_operation_the_operator_uses(simulator: RunningSimulator) -> None:
    python = sdk3_python()

    run = subprocess.run(
        [
            python,
            str(DRIVER),
            simulator.management_url,
            simulator.admin_url,
            simulator.api_key,
            str(STEP_SECONDS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    sys.stderr.write(run.stderr)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [
        "whoami",
        "catalogue",
        "hardware",
        "create",
        "ready",
        "stale-etag",
        "update",
        "list",
        "inference",
        "delete",
    ]
    calls = {(call.method, call.status) for call in simulator.calls(path=r"/v2/projects/[^/]+/endpoints.*")}
    assert {
        ("POST", 200),
        ("POST", 409),
        ("PATCH", 200),
        ("PATCH", 409),
        ("DELETE", 400),
        ("DELETE", 200),
    } <= calls
    assert simulator.calls(path="/v3/whoami")
