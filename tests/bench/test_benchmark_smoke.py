"""The scale benchmark (bench/, docs/performance.md) still works: a quick run at N = 50.

Runs the harness against the session's control plane with short intervals, once with our operator,
once with the per-object baseline, and once with our operator on Together v2 (mode ours-v2, at a
smaller N), and checks what it counted: one remote create per resource, at most two Together calls
per poll interval plus the resync budget for our operator in a quiet window (the baseline needs about
one per resource), no Kubernetes write while nothing changes, every out-of-band change shown and every
out-of-band rescale put back. On v2 the quiet window holds only the project's endpoint list and no
write. No wall-clock thresholds: timing goals are measured by the full benchmark, not asserted here.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from bench.harness import BenchConfig, run_one
from bench.report import markdown, summary
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane

N = 50
N_V2 = 20
CONFIG = BenchConfig(
    poll_interval=1.0,
    transition_poll_interval=0.3,
    resync_interval=1.0,
    resync_budget=5.0,
    rate_limit=0.0,
    transition_seconds=0.3,
    namespaces=3,
    quiet_seconds=5.0,
    settle_seconds=3.0,
    latency_samples=5,
    drift_samples=5,
    drift_spread_seconds=2.0,
    ready_timeout=120.0,
)


@pytest.fixture(scope="module")
def runs(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for mode, n in (("ours", N), ("baseline", N), ("ours-v2", N_V2)):
        workdir: Path = tmp_path_factory.mktemp(f"bench-{mode}")
        prefix = f"bench-{secrets.token_hex(3)}"
        results[mode] = run_one(
            n, mode, CONFIG, workdir, control_plane=control_plane, namespace_prefix=prefix
        )
    return results


@pytest.mark.timeout(280)
def test_each_resource_is_created_remotely_once(runs: dict[str, dict[str, Any]]) -> None:
    for mode, run in runs.items():
        assert run["create"]["remote_creates"] == run["n"], mode
    # On v2 a resource is an endpoint and its deployment: one create of each.
    v2 = runs["ours-v2"]
    assert v2["create"]["deployments"]["remote_creates"] == N_V2
    assert v2["create"]["together_calls"].get("create_deployment") == N_V2


@pytest.mark.timeout(280)
def test_steady_state_needs_at_most_two_together_calls_per_poll_interval(
    runs: dict[str, dict[str, Any]],
) -> None:
    steady = runs["ours"]["steady"]
    assert steady["together_calls"].get("list", 0) >= 1, steady
    drift_reads_per_interval = CONFIG.resync_budget * CONFIG.poll_interval
    assert steady["calls_per_interval_per_credential"] <= 2 + drift_reads_per_interval, steady
    # The comparison is meaningful: the per-object baseline pays for every resource.
    assert runs["baseline"]["steady"]["calls_per_interval_per_credential"] > 10, runs["baseline"]["steady"]


@pytest.mark.timeout(280)
def test_on_v2_only_the_project_endpoint_list_is_called_and_nothing_written_while_nothing_changes(
    runs: dict[str, dict[str, Any]],
) -> None:
    steady = runs["ours-v2"]["steady"]
    calls = steady["together_calls"]
    assert calls.get("list", 0) >= 1, steady
    assert calls["total"] == calls.get("list", 0) + calls.get("list_page", 0), steady
    assert steady["calls_per_interval_per_credential"] <= 2, steady
    assert steady["kubernetes_writes"] == {"status_patches": 0, "other_patches": 0, "event_writes": 0}


@pytest.mark.timeout(280)
def test_no_status_patch_while_nothing_changes(runs: dict[str, dict[str, Any]]) -> None:
    for mode in ("ours", "baseline"):
        steady = runs[mode]["steady"]
        assert steady["kubernetes_writes"]["status_patches"] == 0, (mode, steady)
    # Nor does kopf write anything for ours (the baseline has no finalizer of its own to keep).
    assert runs["ours"]["steady"]["kubernetes_writes"] == {
        "status_patches": 0,
        "other_patches": 0,
        "event_writes": 0,
    }


@pytest.mark.timeout(280)
def test_every_out_of_band_rescale_is_put_back(runs: dict[str, dict[str, Any]]) -> None:
    for mode, run in runs.items():
        drift = run["drift"]
        assert drift["samples"] == CONFIG.drift_samples, (mode, drift)
        assert drift["uncorrected"] == 0, (mode, drift)


@pytest.mark.timeout(280)
def test_remote_changes_reach_the_status_and_the_report_renders(runs: dict[str, dict[str, Any]]) -> None:
    for mode in ("ours", "ours-v2"):
        latency = runs[mode]["latency"]
        assert latency["samples"] == CONFIG.latency_samples, mode
        assert latency["missed"] == 0, (mode, latency)
    table = summary(list(runs.values())) + markdown(list(runs.values()))
    assert f"### N = {N}" in table
    assert f"### N = {N_V2}" in table
    assert "| 50 | ours |" in table
    assert "| 50 | baseline |" in table
    assert "| 20 | ours-v2 |" in table
    assert "v2: endpoint list walks / pages" in table
