"""pytest fixtures for the local control plane (plugin listed in tests/conftest.py).

- `control_plane` (session): a started `ControlPlane`; use `control_plane.kubeconfig` with kopf or the
  `kubernetes` client. Nothing global (KUBECONFIG, ~/.kube) is touched.
- `namespace` (function): a fresh namespace `t-<random>`, left in place when the test ends (the control
  plane goes with the session).
- `kube_api` (function): a `kubernetes.client.ApiClient` for the admin kubeconfig.

When a test that used the control plane fails, the end of the apiserver log is added to its report.
If any collected test uses the control plane, `hack/build-testbins.sh` runs once after collection, with
its output shown, so that a cold build (minutes) does not count against the first test's timeout.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.support.controlplane import ControlPlane, ControlPlaneError, find_bin_dir

_bin_dir_key = pytest.StashKey[Path | ControlPlaneError]()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if not any("control_plane" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        try:
            session.config.stash[_bin_dir_key] = find_bin_dir(show_build_log=True)
        except ControlPlaneError as e:  # reported by the fixture, so the tests error instead of the run
            session.config.stash[_bin_dir_key] = e


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver and kube-controller-manager for the whole session (per xdist worker),
    stopped and removed afterwards."""
    bin_dir = request.config.stash.get(_bin_dir_key, None)
    if isinstance(bin_dir, ControlPlaneError):
        raise bin_dir
    with ControlPlane(bin_dir=bin_dir) as cp:
        yield cp


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    """Name of a new, empty namespace for this test."""
    name = f"t-{secrets.token_hex(4)}"
    control_plane.kubectl("create", "namespace", name)
    return name


@pytest.fixture
def kube_api(control_plane: ControlPlane) -> Iterator[kubernetes.client.ApiClient]:
    """`kubernetes.client.ApiClient` authenticated as the admin (system:masters)."""
    config: Any = kubernetes.config  # partly untyped
    client: kubernetes.client.ApiClient = config.new_client_from_config(
        config_file=str(control_plane.kubeconfig)
    )
    with client:
        yield client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed and call.when in ("setup", "call"):
        cp = getattr(item, "funcargs", {}).get("control_plane")
        if isinstance(cp, ControlPlane):
            try:
                report.sections.append(
                    (f"kube-apiserver log tail ({cp.apiserver_log})", cp.log_tail("kube-apiserver", 30))
                )
            except Exception as e:  # a report section must never mask the real failure
                report.sections.append(("kube-apiserver log tail", f"<unavailable: {e}>"))
    return report
