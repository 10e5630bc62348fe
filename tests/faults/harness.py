"""What every fault scenario is built from: an operator process the test owns (tests/support/operator.py:
SIGKILL and restart at will), a simulator of its own, namespaces only that operator watches, and the
checks scenarios end with.

- `FaultStack`: the simulator + operator + Kubernetes clients of one scenario. Its namespaces are named
  `fault-<hex>-<suffix>` and its operator watches `fault-<hex>-*`, so resources of other tests (and of
  other scenarios) never reach it.
- `CallStats`: the simulator's call log, grouped the way the guarantees are stated (per endpoint id,
  per account, faults by kind).
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kubernetes

from tests.support.controlplane import ControlPlane
from tests.support.kube import Kube, condition, has_condition, wait_for, wait_gone
from tests.support.operator import OperatorProcess
from together_operator.resource import GROUP, PLURAL, VERSION
from together_simulator import AdminEndpoint, Call, RunningSimulator

TEP = "togetherendpoint"

# Short intervals, so that a scenario's every wait is seconds, not minutes. Scenarios add their own.
FAST_OPERATOR_ARGS = (
    "--poll-interval=1",
    "--transition-poll-interval=0.3",
    "--resync-interval=5",
    "--stalled-retry-interval=1",
    "--transient-retry-interval=0.5",
    "--rate-limit=50",
    "--log-format=full",
)

ENDPOINT_PATH = re.compile(r"^/v1/endpoints/(?P<id>[^/]+)$")
TRACEBACK = "Traceback (most recent call last)"


def make_key(label: str) -> str:
    """An API key that cannot occur anywhere by chance, so finding it means it leaked."""
    return f"tk-{label}-{secrets.token_hex(16)}"


def fault_seed() -> int:
    """The seed of a randomised scenario: FAULT_SEED when set (to repeat a run), else a fresh random one.
    Scenarios print it, and pass for every seed."""
    return int(os.environ.get("FAULT_SEED") or secrets.randbelow(2**32))


def is_ready(obj: Mapping[str, Any], reason: str | None = None) -> bool:
    """Ready=True for the resource's current generation (and with `reason`, that reason)."""
    return has_condition("Ready", reason=reason)(dict(obj))


def stalled_reason(obj: Mapping[str, Any]) -> str | None:
    stalled = condition(dict(obj), "Stalled")
    if stalled is None or stalled["status"] != "True":
        return None
    reason: str = stalled["reason"]
    return reason


# --- the call log -----------------------------------------------------------------------------------


class _AnyAccount:
    """Calls of every account (the default of the account filters below)."""


ANY_ACCOUNT = _AnyAccount()


@dataclass
class CallStats:
    """The simulator's call log, grouped the way the guarantees are stated."""

    calls: list[Call]

    def endpoint_calls(self) -> Counter[str]:
        """Calls naming one endpoint (GET/PATCH/DELETE /v1/endpoints/{id}), by endpoint id."""
        counted: Counter[str] = Counter()
        for call in self.calls:
            match = ENDPOINT_PATH.match(call.path)
            if match:
                counted[match["id"]] += 1
        return counted

    def count(self, method: str, path: str, *, account: str | _AnyAccount | None = ANY_ACCOUNT) -> int:
        """Calls of `method` whose whole path matches `path` (a regex); optionally of one account
        (None: the key was unknown)."""
        return sum(
            1
            for call in self.calls
            if call.method == method
            and re.fullmatch(path, call.path)
            and (account is ANY_ACCOUNT or call.account == account)
        )

    def posts(self, account: str | _AnyAccount | None = ANY_ACCOUNT) -> list[Call]:
        """Creates (POST /v1/endpoints), oldest first."""
        return [
            c
            for c in self.calls
            if (c.method, c.path) == ("POST", "/v1/endpoints")
            and (account is ANY_ACCOUNT or c.account == account)
        ]

    def faults_by_kind(self) -> Counter[str]:
        return Counter(kind for call in self.calls for kind in call.faults)


# --- a scenario's world -----------------------------------------------------------------------------


@dataclass
class FaultStack:
    control_plane: ControlPlane
    simulator: RunningSimulator
    operator: OperatorProcess
    prefix: str
    """Namespaces of this scenario are `<prefix><suffix>`; the operator watches `<prefix>*`."""
    keys: list[str]
    """Every API key of the scenario, valid or not: none may ever show up in output."""
    api: kubernetes.client.ApiClient
    namespaces: list[str] = field(default_factory=list)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    def namespace(self, suffix: str) -> Kube:
        name = f"{self.prefix}{suffix}"
        self.control_plane.kubectl("create", "namespace", name)
        self.namespaces.append(name)
        return Kube(self.control_plane, name)

    def resources(self, namespace: str) -> list[dict[str, Any]]:
        listed: dict[str, Any] = self.custom.list_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, namespace, PLURAL
        )
        items: list[dict[str, Any]] = listed["items"]
        return items

    def resource(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, namespace, PLURAL, name
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return obj

    def wait_for(
        self,
        namespace: str,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 90.0,
        what: str = "",
    ) -> dict[str, Any]:
        return wait_for(
            lambda: self.resource(namespace, name),
            predicate,
            timeout=timeout,
            what=f"{namespace}/{name} ({what or 'there'})",
        )

    def wait_gone(self, namespace: str, name: str, timeout: float = 90.0) -> None:
        wait_gone(lambda: self.resource(namespace, name), timeout=timeout, what=f"{namespace}/{name}")

    def wait_all(
        self,
        namespace: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 120.0,
        what: str = "",
    ) -> list[dict[str, Any]]:
        """Until every resource of the namespace satisfies `predicate`; fail naming those that do not."""
        deadline = time.monotonic() + timeout
        pending: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            items = self.resources(namespace)
            pending = [obj for obj in items if not predicate(obj)]
            if not pending:
                return items
            time.sleep(0.5)
        summary = [
            {"name": o["metadata"]["name"], "status": o.get("status"), "spec": o.get("spec")} for o in pending
        ]
        raise AssertionError(
            f"{len(pending)} resources in {namespace} never got {what or 'there'} within {timeout}s:\n"
            + json.dumps(summary, indent=1)[:8000]
        )

    def stats(self) -> CallStats:
        return CallStats(self.simulator.calls())

    def dedicated_endpoints(self, owner: str | None = None) -> list[AdminEndpoint]:
        """The endpoints at Together (every account's, or one's); Together's serverless ones are not
        among them."""
        return [e for e in self.simulator.endpoints() if owner is None or e.owner == owner]

    def assert_no_key_leaks(self) -> None:
        """No API key of the scenario in the operator's output, any event, any TogetherEndpoint, any
        ConfigMap of its namespaces, or the metrics."""
        places: dict[str, str] = {
            "operator log": self.operator.logs(),
            "events (all namespaces)": self.control_plane.kubectl("get", "events", "-A", "-o", "yaml").stdout,
            "TogetherEndpoints (all namespaces)": self.control_plane.kubectl(
                "get", PLURAL, "-A", "-o", "yaml"
            ).stdout,
        }
        for namespace in self.namespaces:
            places[f"ConfigMaps of {namespace}"] = self.control_plane.kubectl(
                "get", "configmaps", "-n", namespace, "-o", "yaml"
            ).stdout
        if self.operator.running():
            places["metrics"] = self.operator.metrics_text()
        # A key's first 16 characters count too: servers echo keys cut short (make_key's keys have 7
        # random characters among them).
        needles = {*self.keys, *(key[:16] for key in self.keys if len(key) >= 24)}
        leaks = [(where, key) for where, text in places.items() for key in needles if key in text]
        assert not leaks, f"API keys leaked: {[(where, key[:12] + '...') for where, key in leaks]}"

    def tracebacks(self) -> int:
        return self.operator.logs().count(TRACEBACK)

    def warning_events(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(
            self.control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        )["items"]
        return [e for e in items if e["type"] == "Warning"]


@dataclass
class KillRun:
    """What a SIGKILL scenario's killer and its lanes share."""

    stack: FaultStack
    kube: Kube
    done: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    violations: list[dict[str, int]] = field(default_factory=list)
    """What the scenario's check found after a kill: e.g. a duplicate create, a third deployment."""
    kill_times: list[float] = field(default_factory=list)
    cycles_done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def kill_repeatedly(
    operator: OperatorProcess,
    rng: random.Random,
    lifetime: tuple[float, float],
    done: threading.Event,
    kill_times: list[float],
    after_kill: Callable[[], None],
) -> None:
    """SIGKILL the operator once it has lived a random `lifetime` (uniform) after getting healthy, call
    `after_kill` while it is down, start it again; until `done`. Raises if it exited by itself."""
    while not done.is_set():
        operator.wait_healthy(timeout=120)
        if done.wait(rng.uniform(*lifetime)):
            return
        kill_times.append(operator.kill())
        after_kill()
        time.sleep(rng.uniform(0.0, 0.5))
        operator.start()


def sum_events(events: Iterable[dict[str, Any]]) -> int:
    """Events as Kubernetes counts them: a repeated event is one object with `count` > 1."""
    return sum(int(e.get("count") or 1) for e in events)


def report(scenario: str, **numbers: Any) -> None:
    """Record what a scenario measured: printed (pytest -s shows it) and, with FAULT_REPORT=path, appended
    to that file as one JSON line; docs/reliability.md quotes these numbers."""
    line = json.dumps({"scenario": scenario, **numbers}, sort_keys=True)
    print(f"\nFAULT-REPORT {line}")
    path = os.environ.get("FAULT_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")
