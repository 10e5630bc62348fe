"""The README's first command, `make demo`, as a smoke test: its script end to end on a fresh cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.controlplane


def test_the_demo_brings_a_sample_endpoint_to_ready_and_cleans_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "demo.py")],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DEMO_")},
            "DEMO_LOG": str(tmp_path / "operator.log"),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("demo: applied", 1)[1]
    header, row = table.splitlines()[1:3]
    assert header.split()[:6] == ["NAME", "MODEL", "HARDWARE", "DESIRED", "STATE", "READY"]
    assert row.split()[4:6] == ["STARTED", "True"]
    assert "devuser/mistralai/Mixtral-8x7B-Instruct-v0.1-" in row
    assert '"model": "devuser/mistralai/Mixtral-8x7B-Instruct-v0.1-' in result.stdout
    assert result.stdout.rstrip().endswith("demo: done")
