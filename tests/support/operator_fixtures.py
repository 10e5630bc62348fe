"""The operator under test: `together-operator run` as a subprocess against the local control plane
and an in-thread simulator, with short intervals so scenarios finish in seconds.

- `operator_env` (module): the simulator and the running operator, shared by a module's tests; each
  test works in its own namespace, so resources of earlier tests never interfere.
- `kube` (function): kubectl helpers bound to the test's namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.controlplane import ControlPlane
from together_simulator import RunningSimulator, SimulatorConfig, run_simulator_in_thread

REPO_ROOT = Path(__file__).resolve().parents[2]
# Each test operator watches only namespaces of its own prefix, so resources that other tests and
# modules leave behind (a bare API server deletes nothing) never reach it.
WATCHED_PREFIX = "op-"
SECOND_KEY = "sim-key-second-account"


class OperatorProcess:
    """`together-operator run` in a subprocess; its log goes to a file for assertions and reports."""

    def __init__(self, log_path: Path, env: dict[str, str], args: list[str]) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "together_operator.cli", "run", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        assert self._proc.poll() is None, (
            f"operator exited with {self._proc.returncode}:\n{self.logs()[-3000:]}"
        )

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()


@dataclass
class OperatorEnv:
    control_plane: ControlPlane
    simulator: RunningSimulator
    operator: OperatorProcess
    health_url: str
    metrics_url: str
    namespace_prefix: str
    """Namespaces named with this prefix are the ones this operator watches."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def operator_env(
    control_plane: ControlPlane, together_crd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorEnv]:
    health_port, metrics_port = free_port(), free_port()
    prefix = f"{WATCHED_PREFIX}{secrets.token_hex(2)}-"
    config = SimulatorConfig(
        accounts={"sim-key": "devuser", SECOND_KEY: "otheruser"},
        transition_seconds=0.3,
        minute_seconds=1.0,
        seed=1,
    )
    with run_simulator_in_thread(config) as simulator:
        env = {
            **os.environ,
            "KUBECONFIG": str(control_plane.kubeconfig),
            "TOGETHER_BASE_URL": simulator.base_url,
            "TOGETHER_API_KEY": simulator.api_key,
        }
        args = [
            f"--namespace={prefix}*",
            "--health-host=127.0.0.1",
            f"--health-port={health_port}",
            "--metrics-host=127.0.0.1",
            f"--metrics-port={metrics_port}",
            "--poll-interval=1",
            "--transition-poll-interval=0.3",
            "--resync-interval=5",
            "--stalled-retry-interval=2",
            "--transient-retry-interval=1",
            # v2 connection ConfigMaps point applications at the simulator, which serves both APIs.
            f"--v2-inference-url={simulator.base_url}",
        ]
        log_path = tmp_path_factory.mktemp("operator") / "operator.log"
        operator = OperatorProcess(log_path, env, args)
        try:
            yield OperatorEnv(
                control_plane,
                simulator,
                operator,
                health_url=f"http://127.0.0.1:{health_port}/healthz",
                metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
                namespace_prefix=prefix,
            )
        finally:
            operator.stop()


class Kube:
    """kubectl against the test's namespace, returning decoded objects."""

    def __init__(self, control_plane: ControlPlane, namespace: str) -> None:
        self.cp = control_plane
        self.namespace = namespace

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl("-n", self.namespace, *args, input=input, check=check)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.kubectl("get", kind, name, "-o", "json").stdout)
        return result

    def exists(self, kind: str, name: str) -> bool:
        return self.kubectl("get", kind, name, "--ignore-not-found", "-o", "name").stdout.strip() != ""

    def patch(self, kind: str, name: str, patch: dict[str, Any]) -> None:
        self.kubectl("patch", kind, name, "--type=merge", "-p", json.dumps(patch))

    def events(self, name: str) -> list[dict[str, Any]]:
        items = json.loads(self.kubectl("get", "events", "-o", "json").stdout)["items"]
        return [e for e in items if e["involvedObject"]["name"] == name]

    def wait_for(
        self, kind: str, name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll the object until `predicate` holds; fail with the last seen object otherwise."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.exists(kind, name):
                last = self.get(kind, name)
                if predicate(last):
                    return last
            time.sleep(0.3)
        raise AssertionError(
            f"{kind}/{name} never matched within {timeout}s; last seen:\n{json.dumps(last, indent=1)}"
        )

    def wait_gone(self, kind: str, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.exists(kind, name):
                return
            time.sleep(0.3)
        raise AssertionError(f"{kind}/{name} still exists after {timeout}s: {self.get(kind, name)}")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in obj.get("status", {}).get("conditions", []):
        if item["type"] == kind:
            result: dict[str, Any] = item
            return result
    return None


def has_condition(
    kind: str, status: str = "True", reason: str | None = None
) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        found = condition(obj, kind)
        return (
            found is not None
            and found["status"] == status
            and (reason is None or found["reason"] == reason)
            and found.get("observedGeneration") == obj["metadata"]["generation"]
        )

    return check


@pytest.fixture
def kube(control_plane: ControlPlane, operator_env: OperatorEnv) -> Kube:
    """kubectl bound to a fresh namespace that this module's operator watches (and nothing else does)."""
    namespace = f"{operator_env.namespace_prefix}{secrets.token_hex(4)}"
    control_plane.kubectl("create", "namespace", namespace)
    return Kube(control_plane, namespace)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and call.when == "call":
        env = getattr(item, "funcargs", {}).get("operator_env")
        if isinstance(env, OperatorEnv):
            report.sections.append(("operator log tail", env.operator.logs()[-6000:]))
    return report
