"""The operator under test: `together-operator run` as a subprocess against the local control plane
and an in-thread simulator, with short intervals so scenarios finish in seconds.

- `together_crd` (session): the TogetherEndpoint CRD installed and served.
- `operator_env` (module): the simulator and the running operator, shared by a module's tests; each
  test works in its own namespace, so resources of earlier tests never interfere.
- `kube` (function): kubectl helpers bound to the test's namespace.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.kube import Kube, install_crd
from tests.support.operator import OperatorProcess, operator_environment
from together_simulator import RunningSimulator, SimulatorConfig, run_simulator_in_thread

# Each test operator watches only namespaces of its own prefix, so resources that other tests and
# modules leave behind never reach it.
WATCHED_PREFIX = "op-"
SECOND_KEY = "sim-key-second-account"


@dataclass
class OperatorEnv:
    control_plane: ControlPlane
    simulator: RunningSimulator
    operator: OperatorProcess
    namespace_prefix: str
    """Namespaces named with this prefix are the ones this operator watches."""

    @property
    def health_url(self) -> str:
        return self.operator.current.health_url

    @property
    def metrics_url(self) -> str:
        url = self.operator.current.metrics_url
        assert url is not None
        return url


@pytest.fixture(scope="session")
def together_crd(control_plane: ControlPlane) -> str:
    """crds/togetherendpoints.together.ai.yaml, installed once per session; returns the CRD's name."""
    return install_crd(control_plane.kubectl)


@pytest.fixture(scope="module")
def operator_env(
    control_plane: ControlPlane, together_crd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorEnv]:
    prefix = f"{WATCHED_PREFIX}{secrets.token_hex(2)}-"
    config = SimulatorConfig(
        accounts={"sim-key": "devuser", SECOND_KEY: "otheruser"},
        transition_seconds=0.3,
        minute_seconds=1.0,
        seed=1,
    )
    with run_simulator_in_thread(config) as simulator:
        args = [
            f"--namespace={prefix}*",
            "--poll-interval=1",
            "--transition-poll-interval=0.3",
            "--resync-interval=5",
            "--stalled-retry-interval=2",
            "--transient-retry-interval=1",
            # v2 connection ConfigMaps point applications at the simulator, which serves both APIs.
            f"--v2-inference-url={simulator.base_url}",
        ]
        operator = OperatorProcess(
            tmp_path_factory.mktemp("operator") / "operator.log",
            operator_environment(control_plane.kubeconfig, simulator.base_url, simulator.api_key),
            args,
        )
        operator.start()
        try:
            yield OperatorEnv(control_plane, simulator, operator, namespace_prefix=prefix)
        finally:
            operator.stop()


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
