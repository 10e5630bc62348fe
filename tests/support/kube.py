"""Kubernetes objects as tests see them: kubectl bound to one namespace, the waits every layer polls
with, and the condition look-ups their predicates are made of.

- `wait_for(read, predicate, ...)` / `wait_gone(read, ...)`: poll any read (kubectl, the `kubernetes`
  client) until the object matches or is absent; fail with the last object seen.
- `Kube`: kubectl as admin in one namespace, returning decoded objects, with `wait_for`/`wait_gone`.
- `condition`, `has_condition`: the conditions of a TogetherEndpoint's status.
- `install_crd(kubectl)`: the TogetherEndpoint CRD, installed and served.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from tests.support.controlplane import REPO_ROOT, ControlPlane
from together_operator.resource import GROUP, PLURAL

T = TypeVar("T")
POLL_SECONDS = 0.3


def wait_for(
    read: Callable[[], T | None],
    predicate: Callable[[T], bool] = lambda _: True,
    *,
    timeout: float = 60.0,
    what: str = "the object",
    interval: float = POLL_SECONDS,
) -> T:
    """Call `read` until it returns something (not None) that satisfies `predicate`; return that.
    Fail after `timeout` seconds, showing the last thing read."""
    deadline = time.monotonic() + timeout
    while True:
        last = read()
        if last is not None and predicate(last):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} never matched within {timeout} s; last seen:\n{_shown(last)}")
        time.sleep(interval)


def wait_gone(
    read: Callable[[], object | None],
    *,
    timeout: float = 60.0,
    what: str = "the object",
    interval: float = POLL_SECONDS,
) -> None:
    """Call `read` until it returns None (the object is gone); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (last := read()) is not None:
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} still exists after {timeout} s:\n{_shown(last)}")
        time.sleep(interval)


def _shown(obj: object) -> str:
    return json.dumps(obj, indent=1, default=str)[:8000]


class Kube:
    """kubectl as admin in one namespace, returning decoded objects."""

    def __init__(self, control_plane: ControlPlane, namespace: str) -> None:
        self.cp = control_plane
        self.namespace = namespace

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl("-n", self.namespace, *args, input=input, check=check)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object, or None if there is none of that name."""
        out = self.kubectl("get", kind, name, "--ignore-not-found", "-o", "json").stdout
        found: dict[str, Any] | None = json.loads(out) if out.strip() else None
        return found

    def get(self, kind: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.kubectl("get", kind, name, "-o", "json").stdout)
        return result

    def exists(self, kind: str, name: str) -> bool:
        return self.find(kind, name) is not None

    def patch(self, kind: str, name: str, patch: dict[str, Any]) -> None:
        self.kubectl("patch", kind, name, "--type=merge", "-p", json.dumps(patch))

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The namespace's events; with `name`, only those about objects of that name."""
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", "events", "-o", "json").stdout)["items"]
        return [e for e in items if name is None or e["involvedObject"]["name"] == name]

    def wait_for(
        self, kind: str, name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll the object until `predicate` holds; fail with the last seen object otherwise."""
        return wait_for(lambda: self.find(kind, name), predicate, timeout=timeout, what=f"{kind}/{name}")

    def wait_gone(self, kind: str, name: str, timeout: float = 60.0) -> None:
        wait_gone(lambda: self.find(kind, name), timeout=timeout, what=f"{kind}/{name}")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in obj.get("status", {}).get("conditions", []):
        if item["type"] == kind:
            result: dict[str, Any] = item
            return result
    return None


def has_condition(
    kind: str, status: str = "True", reason: str | None = None
) -> Callable[[dict[str, Any]], bool]:
    """True for the resource's current generation (and with `reason`, that reason)."""

    def check(obj: dict[str, Any]) -> bool:
        found = condition(obj, kind)
        return (
            found is not None
            and found["status"] == status
            and (reason is None or found["reason"] == reason)
            and found.get("observedGeneration") == obj["metadata"]["generation"]
        )

    return check


CRD_NAME = f"{PLURAL}.{GROUP}"
BUDGET_CRD_NAME = f"togetherbudgets.{GROUP}"


def install_crd(kubectl: Callable[..., object], field_manager: str = "together-operator-tests") -> str:
    """Install the operator's CRDs (crds/: TogetherEndpoint and TogetherBudget, server-side apply) with
    `kubectl` (e.g. `ControlPlane.kubectl`) and wait until the API server serves them. Returns the
    TogetherEndpoint CRD's name."""
    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={field_manager}",
        *(f"--filename={REPO_ROOT / 'crds' / f'{name}.yaml'}" for name in (CRD_NAME, BUDGET_CRD_NAME)),
    )
    for name in (CRD_NAME, BUDGET_CRD_NAME):
        kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    return CRD_NAME
