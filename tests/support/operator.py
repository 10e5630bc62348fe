"""The operator under test as a process: `together-operator run` in a subprocess, the environment it
reads, and the wait for its health endpoint.

- `OperatorProcess`: a test may start it, SIGKILL it and start it again; every run appends to one log
  file, which is what tests grep (tracebacks, keys) and what failure reports show.
- `operator_environment`: this process's environment with the cluster and the Together API to use.
- `wait_healthy`: until a /healthz answers 200, failing early if the process exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.controlplane import free_port

RUN_OPERATOR = (sys.executable, "-m", "together_operator.cli", "run")


def operator_environment(
    kubeconfig: Path, base_url: str, api_key: str | None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """`base` (default: this process's environment) with the kubeconfig, the Together base URL and the
    operator-wide API key (None: no operator-wide key, even if `base` has one)."""
    env = {
        **(os.environ if base is None else base),
        "KUBECONFIG": str(kubeconfig),
        "TOGETHER_BASE_URL": base_url,
    }
    env.pop("TOGETHER_API_KEY", None)
    if api_key is not None:
        env["TOGETHER_API_KEY"] = api_key
    return env


def wait_healthy(health_url: str, check_alive: Callable[[], None], timeout: float = 60.0) -> None:
    """Until `health_url` answers 200; `check_alive` raises if the process serving it has exited."""
    deadline = time.monotonic() + timeout
    while True:
        check_alive()
        try:
            with urllib.request.urlopen(health_url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"no answer from {health_url} within {timeout} s")
        time.sleep(0.1)


@dataclass
class Incarnation:
    """One run of the operator process."""

    pid: int
    started: float
    health_url: str
    metrics_url: str | None
    ended: float | None = None
    killed: bool = False


class OperatorProcess:
    """`together-operator run ARGS`, started by `start()`, every run appending to `log_path`.

    Each start serves /healthz and /metrics on fresh free loopback ports (`current.health_url`,
    `current.metrics_url`), unless `health_port` says the args already choose the health port (as the
    chart's Deployment does); then metrics are whatever the args say.
    """

    def __init__(
        self,
        log_path: Path,
        env: Mapping[str, str],
        args: Sequence[str],
        *,
        health_port: int | None = None,
    ) -> None:
        self.log_path = log_path
        self._env = dict(env)
        self._args = list(args)
        self._health_port = health_port
        self._proc: subprocess.Popen[bytes] | None = None
        self.incarnations: list[Incarnation] = []

    def start(self) -> None:
        if self.running():
            raise RuntimeError("the operator is already running")
        args = list(self._args)
        if self._health_port is None:
            health_port, metrics_port = free_port(), free_port()
            args += [
                "--health-host=127.0.0.1",
                f"--health-port={health_port}",
                "--metrics-host=127.0.0.1",
                f"--metrics-port={metrics_port}",
            ]
            metrics_url: str | None = f"http://127.0.0.1:{metrics_port}/metrics"
        else:
            health_port, metrics_url = self._health_port, None
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{len(self.incarnations) + 1} at {time.time():.3f} =====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [*RUN_OPERATOR, *args], env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        self.incarnations.append(
            Incarnation(
                pid=self._proc.pid,
                started=time.time(),
                health_url=f"http://127.0.0.1:{health_port}/healthz",
                metrics_url=metrics_url,
            )
        )

    @property
    def current(self) -> Incarnation:
        return self.incarnations[-1]

    @property
    def kills(self) -> int:
        return sum(1 for i in self.incarnations if i.killed)

    def kill(self) -> float:
        """SIGKILL: no cleanup, no status write, no goodbye. Returns when it happened."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        self._proc.wait(timeout=30)
        self.current.ended, self.current.killed = killed_at, True
        with self.log_path.open("ab") as log:
            log.write(f"\n===== SIGKILL at {killed_at:.3f} =====\n".encode())
        return killed_at

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s. Idempotent."""
        if not self.running():
            return
        assert self._proc is not None
        terminate(self._proc, grace=30)
        self.current.ended = time.time()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def assert_running(self) -> None:
        assert self._proc is not None, "the operator was never started"
        assert self._proc.poll() is None, (
            f"operator exited with {self._proc.returncode}:\n{self.logs()[-4000:]}"
        )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until /healthz of the current run answers 200 (kopf is up)."""
        try:
            wait_healthy(self.current.health_url, self.assert_running, timeout)
        except AssertionError as error:
            if not self.running():
                raise  # assert_running's message has the log already
            raise AssertionError(f"{error}; the operator's log:\n{self.logs()[-3000:]}") from None

    def metrics_text(self) -> str:
        assert self.current.metrics_url is not None, "metrics are served where the args say"
        with urllib.request.urlopen(self.current.metrics_url, timeout=10) as response:
            text: str = response.read().decode()
            return text

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def terminate(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM `proc`, and SIGKILL it if it has not exited `grace` seconds later; returns once it is gone."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
