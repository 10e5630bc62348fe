"""The chart's Grafana dashboard and alerts, run by a real Prometheus (hack/build-testbins.sh builds it
from its Go module) that scrapes this module's operator every second, its series labelled as the chart's
ServiceMonitor labels them and the chart's alert rules loaded. While one TogetherEndpoint becomes Ready,
another stalls on a model Together does not offer and a few endpoint lists fail, every dashboard query
returns series and every alert expression evaluates through Prometheus' HTTP API: the Stalled alert's
to the stalled resource's reason, the operator-down and not-syncing ones to nothing, as the operator is
up and listing.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.chart.tooling import Tools, dashboard_queries, load_dashboard, one
from tests.integration.test_operator_lifecycle import TEP
from tests.support.controlplane import ControlPlane, free_port
from tests.support.kube import Kube, condition, has_condition
from tests.support.manifests import endpoint_manifest
from tests.support.operator import terminate
from tests.support.operator_fixtures import OperatorEnv

pytestmark = pytest.mark.controlplane

# The job and namespace labels the Prometheus Operator gives the series the chart's ServiceMonitor
# scrapes (release together-operator in namespace together-operator), which the alerts select.
SCRAPE_JOB = "together-operator-metrics"
OPERATOR_NAMESPACE = "together-operator"
# Grafana's $__rate_interval is at least four scrape intervals.
RATE_INTERVAL = "10s"


class Prometheus:
    """`prometheus` on 127.0.0.1 with a config file; its log goes to a file for failure reports."""

    def __init__(self, binary: Path, workdir: Path, config: dict[str, Any]) -> None:
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [
                str(binary),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={urlsplit(self.url).netloc}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc.poll() is None, f"prometheus exited:\n{self.log_path.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"prometheus not ready in {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now; fails if Prometheus cannot parse or evaluate it."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", f"{expr}: {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        terminate(self._proc)
        self._log.close()


@pytest.fixture(scope="module")
def alert_rules(control_plane: ControlPlane) -> list[dict[str, Any]]:
    """The chart's alert rules as `helm install together-operator -n together-operator` renders them."""
    rule = one(Tools(control_plane.bin_dir).render({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


@pytest.fixture(scope="module")
def prometheus(
    control_plane: ControlPlane,
    operator_env: OperatorEnv,
    alert_rules: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Prometheus]:
    workdir = tmp_path_factory.mktemp("prometheus")
    (workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": alert_rules}))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(workdir / "rules.yaml")],
        "scrape_configs": [
            {
                "job_name": SCRAPE_JOB,
                "static_configs": [
                    {
                        "targets": [urlsplit(operator_env.metrics_url).netloc],
                        "labels": {"namespace": OPERATOR_NAMESPACE},
                    }
                ],
            }
        ],
    }
    server = Prometheus(control_plane.bin_dir / "prometheus", workdir, config)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _panel_query(expr: str) -> str:
    """A dashboard query as Grafana sends it with the job variable on the scraped job."""
    return expr.replace("$job", SCRAPE_JOB).replace("$__rate_interval", RATE_INTERVAL)


def _variable_query(expr: str) -> str:
    """`label_values(metric, label)` (a Grafana function) as the series query it stands for."""
    call = re.fullmatch(r"label_values\((?P<metric>[^,]+),\s*\w+\)", expr)
    assert call is not None, expr
    return call["metric"]


def _until_all_return_series(
    prometheus: Prometheus, queries: list[str], timeout: float = 90.0
) -> dict[str, list[dict[str, Any]]]:
    """Each query's result once every one returns series; fail naming those that never did."""
    deadline = time.monotonic() + timeout
    while True:
        results = {q: prometheus.query(q) for q in queries}
        empty = [q for q, result in results.items() if not result]
        if not empty:
            return results
        assert time.monotonic() < deadline, f"no series within {timeout}s from:\n" + "\n".join(empty)
        time.sleep(1)


def test_every_dashboard_query_and_alert_expression_runs_on_a_real_prometheus(
    operator_env: OperatorEnv, kube: Kube, prometheus: Prometheus, alert_rules: list[dict[str, Any]]
) -> None:
    operator_env.simulator.set_faults(
        [{"fault": "server_error", "status": 503, "method": "GET", "path": "/v1/endpoints$", "times": 3}]
    )
    try:
        # A budget the served endpoint (6.72 USD/h) fills to 96%: the budget alert has a case.
        budget = {
            "apiVersion": "together.ai/v1alpha1",
            "kind": "TogetherBudget",
            "metadata": {"name": "team"},
        }
        kube.apply({**budget, "spec": {"maxHourlyCost": "7"}})
        kube.apply(endpoint_manifest("served"))
        kube.apply(endpoint_manifest("unofferable", model="no-such-org/no-such-model"))
        kube.wait_for(TEP, "served", has_condition("Ready"))
        stalled = kube.wait_for(TEP, "unofferable", has_condition("Stalled"))
    finally:
        operator_env.simulator.clear_faults()
    stalled_condition = condition(stalled, "Stalled")
    assert stalled_condition is not None
    reason = stalled_condition["reason"]
    dashboard = load_dashboard()
    variables = [q for q in dashboard_queries(dashboard) if q.startswith("label_values(")]
    panels = [_panel_query(q) for q in dashboard_queries(dashboard) if q not in variables]
    alerts = {rule["alert"]: rule["expr"] for group in alert_rules for rule in group["rules"]}
    stalled_alert = alerts["TogetherEndpointStalled"]
    budget_alert = alerts["TogetherBudgetNearlySpent"]

    # The job variable offers the scraped job; the panels, on it, all show series, the error ratio too
    # (the failed lists); the Stalled alert's expression counts the stalled resource under its reason.
    # Waiting also until Prometheus has seen a successful list counted up (an increase needs two
    # samples), after which the operator is in sync in its eyes.
    lists = f'together_operator_api_calls_total{{job="{SCRAPE_JOB}", operation="list_endpoints", code="200"}}'
    listed = f"increase({lists}[1m]) > 0"
    results = _until_all_return_series(
        prometheus, [*(_variable_query(q) for q in variables), *panels, stalled_alert, budget_alert, listed]
    )
    for variable in variables:
        assert {s["metric"]["job"] for s in results[_variable_query(variable)]} == {SCRAPE_JOB}
    assert [(s["metric"]["reason"], s["value"][1]) for s in results[stalled_alert]] == [(reason, "1")]
    spent = [
        (s["metric"]["exported_namespace"], s["metric"]["budget"], s["value"][1])
        for s in results[budget_alert]
    ]
    assert spent == [(kube.namespace, "team", "0.96")]
    # Every alert expression parses and evaluates; a running operator that lists is neither down nor
    # out of sync (and `absent(up{...})` being empty shows the alerts select the scraped series).
    for expr in alerts.values():
        prometheus.query(expr)
    assert prometheus.query(alerts["TogetherOperatorDown"]) == []
    assert prometheus.query(alerts["TogetherOperatorNotSyncing"]) == []
    # Prometheus' own rule manager evaluates them all without error.
    loaded = prometheus.rules()
    assert {rule["name"] for rule in loaded} == set(alerts)
    assert all(rule["health"] == "ok" for rule in loaded), loaded
