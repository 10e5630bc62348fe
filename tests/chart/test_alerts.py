"""The chart's alerts (templates/prometheusrule.yaml): off by default, like the ServiceMonitor; on
request a PrometheusRule whose alerts read the series the chart's ServiceMonitor scrapes, use only
metrics the operator exports, each carry a severity, a summary, a description and a runbook in the
README; `promtool test rules` (tests/chart/data/alerts-test.yaml) proves when each fires and what it says.
test_chart.py applies the PrometheusRule to the API server with the other monitoring objects.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.tooling import (
    METRIC_NAME,
    Tools,
    assert_schema_rejects,
    by_kind,
    exported_names,
    one,
    operator_scrape,
)
from tests.support.controlplane import REPO_ROOT

RULE_TESTS = Path(__file__).parent / "data" / "alerts-test.yaml"
README = REPO_ROOT / "README.md"
ALERTS = {
    "TogetherEndpointStalled",
    "TogetherApiErrors",
    "TogetherOperatorNotSyncing",
    "TogetherOperatorDown",
    "TogetherBudgetNearlySpent",
}
ENABLED = {"prometheusRule": {"enabled": True}}


def _rules(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


# --------------------------------------------------------------------------------------------------
# rendered


@pytest.mark.controlplane
def test_defaults_render_no_prometheusrule(tools: Tools) -> None:
    assert by_kind(tools.render(), "PrometheusRule") == []


@pytest.mark.controlplane
def test_the_prometheusrule_has_its_labels_and_namespace_and_reads_the_servicemonitors_series(
    tools: Tools,
) -> None:
    values = {
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "serviceMonitor": {"enabled": True},
    }
    objects = tools.render(values, namespace="ops")
    rule = one(objects, "PrometheusRule")
    (service,) = [o for o in by_kind(objects, "Service") if o["metadata"]["name"].endswith("-metrics")]

    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "ops"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["metadata"]["labels"]["app.kubernetes.io/instance"] == "together-operator"
    # The Prometheus Operator names a ServiceMonitor's job after the Service it scrapes.
    series = f'job="{service["metadata"]["name"]}", namespace="ops"'
    for alert in _rules(rule):
        assert series in alert["expr"], alert["alert"]


@pytest.mark.controlplane
def test_the_prometheusrule_may_live_elsewhere_and_select_series_scraped_another_way(tools: Tools) -> None:
    values = {"prometheusRule": {"enabled": True, "namespace": "monitoring", "selector": 'job="operators"'}}
    rule = one(tools.render(values, namespace="ops"), "PrometheusRule")

    assert rule["metadata"]["namespace"] == "monitoring"
    for alert in _rules(rule):
        assert '{job="operators",' in alert["expr"] or '{job="operators"}' in alert["expr"], alert["alert"]
        assert "-metrics" not in alert["expr"], alert["alert"]


@pytest.mark.controlplane
def test_a_prometheusrule_without_metrics_is_refused(tools: Tools) -> None:
    proc = tools.helm_template({"metrics": {"enabled": False}, **ENABLED}, check=False)

    assert proc.returncode != 0
    assert "prometheusRule.enabled needs metrics.enabled" in proc.stderr


@pytest.mark.controlplane
@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"prometheusRule": {"enabled": "true"}}, "/prometheusRule/enabled"),
        ({"prometheusRule": {"labels": {"release": 1}}}, "/prometheusRule/labels"),
        ({"prometheusRule": {"namespace": "Monitoring"}}, "/prometheusRule/namespace"),
        ({"prometheusRule": {"selector": ["job"]}}, "/prometheusRule/selector"),
        ({"prometheusRule": {"severity": "page"}}, "severity"),
    ],
    ids=lambda v: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else None,
)
def test_the_schema_rejects_wrong_prometheusrule_values(
    tools: Tools, values: dict[str, Any], complaint: str
) -> None:
    assert_schema_rejects(tools, values, complaint)


@pytest.mark.controlplane
def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_in_the_readme(
    tools: Tools,
) -> None:
    alerts = _rules(one(tools.render(ENABLED), "PrometheusRule"))
    lines = README.read_text().splitlines()
    headings = {line.removeprefix("#### ") for line in lines if line.startswith("#### ")}

    assert {a["alert"] for a in alerts} == ALERTS
    for alert in alerts:
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert set(alert["annotations"]) == {"summary", "description", "runbook_url"}, alert["alert"]
        assert alert["annotations"]["runbook_url"].endswith(f"README.md#{alert['alert'].lower()}")
        assert alert["alert"] in headings, f"no runbook heading `#### {alert['alert']}` in the README"


@pytest.mark.controlplane
def test_the_alerts_read_only_metrics_the_operator_exports(tools: Tools) -> None:
    alerts = _rules(one(tools.render(ENABLED), "PrometheusRule"))
    exported = exported_names(operator_scrape())
    used = {name for alert in alerts for name in METRIC_NAME.findall(alert["expr"])}

    assert used
    assert used - exported == set(), f"not exported by the operator: {sorted(used - exported)}"
    assert all(METRIC_NAME.search(a["expr"]) or re.search(r"\bup\{", a["expr"]) for a in alerts)


# --------------------------------------------------------------------------------------------------
# promtool


@pytest.mark.controlplane
def test_promtool_checks_the_rules_and_passes_their_tests(tools: Tools, tmp_path: Path) -> None:
    """The rules as `helm template together-operator -n together-operator` renders them, beside the
    rule tests; every alert has a case where it fires."""
    rule = one(tools.render(ENABLED), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        check["alertname"] for case in cases for check in case["alert_rule_test"] if check.get("exp_alerts")
    }

    checked = tools.run("promtool", "check", "rules", str(tmp_path / "rules.yaml"))
    tested = tools.run("promtool", "test", "rules", str(tmp_path / RULE_TESTS.name))

    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    assert "SUCCESS" in tested.stdout
    assert fired == ALERTS
