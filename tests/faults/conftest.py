"""Fixtures of the fault suite: each scenario gets its own simulator and operator process.

- `fault_stack(accounts=..., faults=..., operator_key=..., extra_args=...)`: start a simulator and an
  operator watching only the scenario's namespaces; both stop when the test ends. When the test fails,
  the end of the operator's log is added to the report.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

import kubernetes
import pytest

from tests.faults.harness import FAST_OPERATOR_ARGS, FaultStack
from tests.support.controlplane import ControlPlane
from tests.support.operator import OperatorProcess, operator_environment
from together_simulator import FaultRule, SimulatorConfig, run_simulator_in_thread


class StackFactory:
    """`fault_stack(...)`: starts one scenario's simulator and operator; all stop when the test ends."""

    def __init__(
        self, control_plane: ControlPlane, running: ExitStack, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        self._control_plane = control_plane
        self._running = running
        self._tmp_path_factory = tmp_path_factory
        self.stacks: list[FaultStack] = []

    def __call__(
        self,
        *,
        accounts: Mapping[str, str],
        operator_key: str | None = None,
        faults: Sequence[FaultRule | Mapping[str, Any]] = (),
        extra_args: Sequence[str] = (),
        seed: int = 0,
        control_plane: ControlPlane | None = None,
        transition_seconds: float = 0.3,
    ) -> FaultStack:
        control_plane = control_plane or self._control_plane
        config = SimulatorConfig(
            accounts=dict(accounts),
            transition_seconds=transition_seconds,
            minute_seconds=1.0,
            seed=seed,
            faults=[FaultRule.model_validate(rule) for rule in faults],
        )
        simulator = self._running.enter_context(run_simulator_in_thread(config))
        prefix = f"fault-{secrets.token_hex(3)}-"
        log_path = self._tmp_path_factory.mktemp("fault-operator") / "operator.log"
        operator = OperatorProcess(
            log_path,
            operator_environment(control_plane.kubeconfig, simulator.base_url, operator_key),
            [f"--namespace={prefix}*", *FAST_OPERATOR_ARGS, *extra_args],
        )
        api_client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(
            config_file=str(control_plane.kubeconfig)
        )
        self._running.callback(api_client.close)
        stack = FaultStack(
            control_plane=control_plane,
            simulator=simulator,
            operator=operator,
            prefix=prefix,
            keys=[*accounts, *([operator_key] if operator_key else [])],
            api=api_client,
        )
        self._running.callback(operator.stop)
        operator.start()
        self.stacks.append(stack)
        return stack


_stacks_key = pytest.StashKey[list[FaultStack]]()


@pytest.fixture
def fault_stack(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    together_crd: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StackFactory]:
    with ExitStack() as running:
        factory = StackFactory(control_plane, running, tmp_path_factory)
        request.node.stash[_stacks_key] = factory.stacks
        yield factory


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and call.when == "call":
        for stack in item.stash.get(_stacks_key, []):
            report.sections.append(
                (f"operator log tail ({stack.operator.log_path})", stack.operator.logs()[-8000:])
            )
    return report
