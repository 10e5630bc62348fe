"""What every fault scenario is built from: an operator process the test owns (SIGKILL and restart at
will), a simulator of its own, namespaces only that operator watches, and the checks scenarios end with.

- `FaultOperator`: `together-operator run` as a subprocess; every incarnation appends to one log file,
  which is what the scenarios grep (tracebacks, keys).
- `FaultStack`: the simulator + operator + Kubernetes clients of one scenario. Its namespaces are named
  `fault-<hex>-<suffix>` and its operator watches `fault-<hex>-*`, so resources of other tests (and of
  other scenarios) never reach it.
- `CallStats`: the simulator's call log, grouped the way the guarantees are stated (per endpoint id,
  per account, faults by kind).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from tests.support.controlplane import ControlPlane
from tests.support.operator_fixtures import Kube, condition, free_port
from together_simulator import AdminEndpoint, Call, RunningSimulator

GROUP, VERSION, PLURAL = "together.ai", "v1alpha1", "togetherendpoints"
TEP = "togetherendpoint"
MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
HARDWARE = "2x_nvidia_h100_80gb_sxm"

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

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "togetherendpoints.together.ai.yaml"
ENDPOINT_PATH = re.compile(r"^/v1/endpoints/(?P<id>[^/]+)$")
TRACEBACK = "Traceback (most recent call last)"


def make_key(label: str) -> str:
    """An API key that cannot occur anywhere by chance, so finding it means it leaked."""
    return f"tk-{label}-{secrets.token_hex(16)}"


def endpoint_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TogetherEndpoint",
        "metadata": {"name": name},
        "spec": {"model": MODEL, "hardware": HARDWARE, **spec},
    }


def secret_manifest(name: str, api_key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"api-key": base64.b64encode(api_key.encode()).decode()},
    }


def is_ready(obj: Mapping[str, Any], reason: str | None = None) -> bool:
    """Ready=True for the resource's current generation (and with `reason`, that reason)."""
    ready = condition(dict(obj), "Ready")
    return (
        ready is not None
        and ready["status"] == "True"
        and (reason is None or ready["reason"] == reason)
        and ready.get("observedGeneration") == obj["metadata"].get("generation")
    )


def stalled_reason(obj: Mapping[str, Any]) -> str | None:
    stalled = condition(dict(obj), "Stalled")
    if stalled is None or stalled["status"] != "True":
        return None
    reason: str = stalled["reason"]
    return reason


# --- the operator process ---------------------------------------------------------------------------


@dataclass
class Incarnation:
    pid: int
    started: float
    health_url: str
    metrics_url: str
    ended: float | None = None
    killed: bool = False


class FaultOperator:
    """`together-operator run` that a scenario may SIGKILL and start again; one log for all its runs."""

    def __init__(self, log_path: Path, env: Mapping[str, str], args: Sequence[str]) -> None:
        self.log_path = log_path
        self._env = dict(env)
        self._args = list(args)
        self._proc: subprocess.Popen[bytes] | None = None
        self.incarnations: list[Incarnation] = []

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("the operator is already running")
        health_port, metrics_port = free_port(), free_port()
        args = [
            *self._args,
            "--health-host=127.0.0.1",
            f"--health-port={health_port}",
            "--metrics-host=127.0.0.1",
            f"--metrics-port={metrics_port}",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{len(self.incarnations) + 1} at {time.time():.3f} =====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "together_operator.cli", "run", *args],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.incarnations.append(
            Incarnation(
                pid=self._proc.pid,
                started=time.time(),
                health_url=f"http://127.0.0.1:{health_port}/healthz",
                metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
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
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self.current.ended = time.time()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def assert_running(self) -> None:
        assert self._proc is not None
        assert self._proc.poll() is None, (
            f"operator exited with {self._proc.returncode}:\n{self.logs()[-4000:]}"
        )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until /healthz of the current incarnation answers 200 (kopf is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_running()
            try:
                with urllib.request.urlopen(self.current.health_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the operator was not healthy within {timeout}s:\n{self.logs()[-3000:]}")

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.current.metrics_url, timeout=10) as response:
            text: str = response.read().decode()
            return text

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


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
    operator: FaultOperator
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
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.resource(namespace, name)
            if last is not None and predicate(last):
                return last
            time.sleep(0.3)
        raise AssertionError(
            f"{namespace}/{name} never got {what or 'there'} within {timeout}s; last seen:\n"
            + json.dumps(last, indent=1)
        )

    def wait_gone(self, namespace: str, name: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.resource(namespace, name) is None:
                return
            time.sleep(0.3)
        raise AssertionError(
            f"{namespace}/{name} still exists after {timeout}s: "
            + json.dumps(self.resource(namespace, name), indent=1)
        )

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


def install_crd(control_plane: ControlPlane) -> None:
    """Install the TogetherEndpoint CRD (server-side apply, as tests/integration does) and wait until
    it is served."""
    control_plane.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=together-operator-tests",
        "-f",
        str(CRD_PATH),
    )
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{PLURAL}.{GROUP}")


def operator_env(
    control_plane: ControlPlane, simulator: RunningSimulator, api_key: str | None
) -> dict[str, str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(control_plane.kubeconfig),
        "TOGETHER_BASE_URL": simulator.base_url,
    }
    env.pop("TOGETHER_API_KEY", None)
    if api_key is not None:
        env["TOGETHER_API_KEY"] = api_key
    return env


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
