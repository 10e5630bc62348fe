"""`python -m together_simulator` (and `together-operator simulator`) flags and lifecycle."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.simulator.api_helpers import create_body
from together_simulator import FaultRule
from together_simulator.cli import build_parser, config_from_args, main


def test_flags_become_the_config() -> None:
    args = build_parser().parse_args(
        [
            "--api-key", "key-a=alice",
            "--api-key", "key-b",
            "--transition-seconds", "0.5",
            "--minute-seconds", "2",
            "--v2-ready-timeout-seconds", "60",
            "--seed", "3",
            "--latency", "0.25",
            "--rate-limit-probability", "0.1",
            "--retry-after", "4",
            "--server-error-probability", "0.2",
            "--server-error-status", "503",
            "--drop-probability", "0.05",
            "--lose-create-responses", "1",
            "--error-after-update", "2",
        ]
    )  # fmt: skip

    config = config_from_args(args)

    assert config.accounts == {"key-a": "alice", "key-b": "devuser"}
    assert (config.transition_seconds, config.minute_seconds, config.seed) == (0.5, 2.0, 3)
    assert config.v2_ready_timeout_seconds == 60
    assert config.faults == [
        FaultRule(fault="latency", seconds=0.25),
        FaultRule(fault="rate_limit", probability=0.1, retry_after=4),
        FaultRule(fault="server_error", probability=0.2, status=503),
        FaultRule(fault="drop_connection", probability=0.05),
        FaultRule(fault="lose_create_response", times=1),
        FaultRule(fault="error_after_update", times=2),
    ]


def test_without_flags_there_is_one_default_key_and_no_faults() -> None:
    config = config_from_args(build_parser().parse_args([]))

    assert (config.accounts, config.faults) == ({"sim-key": "devuser"}, [])


def test_an_invalid_setting_exits_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--drop-probability", "2"]) == 2
    assert "probability" in capsys.readouterr().err


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The simulator as a process on a free port, losing one create response; yields it and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "together_simulator", "--port", "0", "--api-key", "cli-key=carol",
         "--lose-create-responses", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None
    try:
        readable, _, _ = select.select([process.stdout], [], [], 60)
        assert readable, "the simulator printed nothing"
        banner = process.stdout.readline()
        assert "TOGETHER_BASE_URL=" in banner, banner
        yield process, banner.split("TOGETHER_BASE_URL=", 1)[1].strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_the_module_serves_the_api_with_the_flags_until_sigterm(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    process, base_url = served
    headers = {"Authorization": "Bearer cli-key"}

    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{base_url}/endpoints", json=create_body(), headers=headers)
    listed = httpx.get(f"{base_url}/endpoints", params={"mine": "true"}, headers=headers).json()["data"]
    process.send_signal(signal.SIGTERM)

    assert [item["owner"] for item in listed] == ["carol"]
    assert process.wait(timeout=30) == 0
