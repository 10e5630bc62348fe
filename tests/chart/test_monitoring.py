"""Metrics in the chart: the container port and Service always there unless turned off, the
ServiceMonitor and the Grafana dashboard only on request; the dashboard's queries name only metrics the
operator really exports (checked against a scrape of `OperatorMetrics`); the objects on the API server.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.chart.tooling import (
    DASHBOARD,
    METRIC_NAME,
    Tools,
    apply_server_side,
    assert_schema_rejects,
    by_kind,
    container,
    dashboard_queries,
    documents,
    env_of,
    exported_names,
    json_nodes,
    load_dashboard,
    one,
    operator_scrape,
)
from tests.support.controlplane import ControlPlane
from together_operator.resource import ConditionType
from together_operator.settings import add_run_arguments, config_from_args

MONITORING = {
    "serviceMonitor": {
        "enabled": True,
        "interval": "15s",
        "scrapeTimeout": "5s",
        "labels": {"release": "kube-prometheus-stack"},
    },
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Operators"}},
}


def _metrics_service(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (service,) = [o for o in by_kind(objects, "Service") if o["metadata"]["name"].endswith("-metrics")]
    return service


def _ports(objects: list[dict[str, Any]]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(objects)["ports"]}


# --------------------------------------------------------------------------------------------------
# rendered


@pytest.mark.controlplane
def test_defaults_serve_metrics_on_a_port_and_a_service_but_no_servicemonitor_or_dashboard(
    tools: Tools,
) -> None:
    objects = tools.render()
    service = _metrics_service(objects)
    deployment = one(objects, "Deployment")

    assert env_of(objects)["TOGETHER_OPERATOR_METRICS_PORT"] == "9090"
    assert _ports(objects)["metrics"] == 9090
    assert service["metadata"]["name"] == "together-operator-metrics"
    assert service["metadata"]["namespace"] == "together-operator"
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "metrics"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert by_kind(objects, "ServiceMonitor") == []
    assert by_kind(objects, "ConfigMap") == []


@pytest.mark.controlplane
def test_metrics_turned_off_mean_port_zero_and_no_port_nor_service(tools: Tools) -> None:
    objects = tools.render({"metrics": {"enabled": False}, "grafanaDashboard": {"enabled": True}})

    assert env_of(objects)["TOGETHER_OPERATOR_METRICS_PORT"] == "0"
    assert "metrics" not in _ports(objects)
    assert by_kind(objects, "Service") == []
    assert len(by_kind(objects, "ConfigMap")) == 1, "the dashboard does not depend on this release's scrape"


@pytest.mark.controlplane
def test_the_metrics_port_reaches_container_service_and_the_operator(
    tools: Tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = tools.render({"metrics": {"port": 9191}})
    for name, value in env_of(objects).items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)

    config = config_from_args(parser.parse_args([]))

    assert (config.metrics_host, config.metrics_port) == ("0.0.0.0", 9191)
    assert _ports(objects)["metrics"] == 9191
    assert _metrics_service(objects)["spec"]["ports"][0]["port"] == 9191


@pytest.mark.controlplane
def test_the_servicemonitor_scrapes_the_metrics_service_with_its_labels_and_interval(tools: Tools) -> None:
    objects = tools.render(MONITORING, namespace="ops")
    monitor = one(objects, "ServiceMonitor")
    service = _metrics_service(objects)

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "ops"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["metadata"]["labels"]["app.kubernetes.io/instance"] == "together-operator"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "15s", "scrapeTimeout": "5s"}
    ]
    assert service["spec"]["ports"][0]["name"] == "metrics"


@pytest.mark.controlplane
def test_the_servicemonitor_may_live_elsewhere_and_leave_timing_to_prometheus(tools: Tools) -> None:
    values = {
        "serviceMonitor": {"enabled": True, "namespace": "monitoring", "interval": "", "scrapeTimeout": ""}
    }
    monitor = one(tools.render(values, namespace="ops"), "ServiceMonitor")

    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}, "still this release's Service"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "scheme": "http"}]


@pytest.mark.controlplane
def test_a_servicemonitor_without_metrics_is_refused(tools: Tools) -> None:
    proc = tools.helm_template(
        {"metrics": {"enabled": False}, "serviceMonitor": {"enabled": True}}, check=False
    )

    assert proc.returncode != 0
    assert "serviceMonitor.enabled needs metrics.enabled" in proc.stderr


@pytest.mark.controlplane
def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_chart_json(tools: Tools) -> None:
    default = one(tools.render({"grafanaDashboard": {"enabled": True}}), "ConfigMap")
    placed = one(
        tools.render(
            {
                "grafanaDashboard": {
                    "enabled": True,
                    "labels": {"grafana_dashboard": "yes", "team": "ml"},
                    "annotations": {"grafana_folder": "Operators"},
                    "namespace": "grafana",
                }
            }
        ),
        "ConfigMap",
    )

    assert default["metadata"]["name"] == "together-operator-dashboard"
    assert default["metadata"]["namespace"] == "together-operator"
    assert default["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in default["metadata"]
    assert list(default["data"]) == ["together-operator.json"]
    assert default["data"]["together-operator.json"] == DASHBOARD.read_text().rstrip("\n")
    assert placed["metadata"]["namespace"] == "grafana"
    assert placed["metadata"]["labels"]["grafana_dashboard"] == "yes"
    assert placed["metadata"]["labels"]["team"] == "ml"
    assert placed["metadata"]["annotations"] == {"grafana_folder": "Operators"}


@pytest.mark.controlplane
@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"metrics": {"enabled": "yes"}}, "/metrics/enabled"),
        ({"metrics": {"port": "9090"}}, "/metrics/port"),
        ({"metrics": {"port": 0}}, "/metrics/port"),
        ({"operator": {"metricsPort": 9090}}, "metricsPort"),
        ({"serviceMonitor": {"enabled": "true"}}, "/serviceMonitor/enabled"),
        ({"serviceMonitor": {"interval": 30}}, "/serviceMonitor/interval"),
        ({"serviceMonitor": {"scrapeTimeout": "10 seconds"}}, "/serviceMonitor/scrapeTimeout"),
        ({"serviceMonitor": {"labels": ["release"]}}, "/serviceMonitor/labels"),
        ({"serviceMonitor": {"namespace": 7}}, "/serviceMonitor/namespace"),
        ({"grafanaDashboard": {"enabled": 1}}, "/grafanaDashboard/enabled"),
        ({"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}}, "/grafanaDashboard/labels"),
        ({"grafanaDashboard": {"namespace": "Grafana"}}, "/grafanaDashboard/namespace"),
        ({"grafanaDashboard": {"folder": "Operators"}}, "folder"),
    ],
    ids=lambda v: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else None,
)
def test_the_schema_rejects_wrong_monitoring_values(
    tools: Tools, values: dict[str, Any], complaint: str
) -> None:
    assert_schema_rejects(tools, values, complaint)


# --------------------------------------------------------------------------------------------------
# the dashboard against what the operator exports


def test_the_dashboard_queries_only_metrics_the_operator_exports() -> None:
    scrape = operator_scrape()
    exported = exported_names(scrape)
    queries = dashboard_queries(load_dashboard())
    used = {name for query in queries for name in METRIC_NAME.findall(query)}

    assert "together_operator_api_calls_total" in exported  # the scrape is what Prometheus stores
    assert queries
    assert all(METRIC_NAME.search(q) for q in queries), "a query that reads no metric"
    assert used - exported == set(), f"not exported by the operator: {sorted(used - exported)}"
    # ... and every metric the operator exports has a panel (its _created timestamps aside).
    families = {f.name for f in text_string_to_metric_families(scrape) if not f.name.endswith("_created")}
    assert len(families) == 10
    unshown = {f for f in families if not any(name.startswith(f) for name in used)}
    assert unshown == set()


def test_the_dashboard_filters_on_label_values_the_operator_writes() -> None:
    """Label matchers of the condition panel name real condition types and statuses, and the error
    ratio the codes the transport records (0: no response)."""
    queries = " ".join(dashboard_queries(load_dashboard()))

    conditions = set(re.findall(r'condition="([^"]*)"', queries))
    statuses = set(re.findall(r'status="([^"]*)"', queries))
    assert conditions
    assert conditions <= {c.value for c in ConditionType}
    assert statuses
    assert statuses <= {"True", "False", "Unknown"}
    assert 'code=~"0|429|5.."' in queries


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_datasource_variable() -> None:
    dashboard = load_dashboard()
    (datasource,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    panels = dashboard["panels"]
    graphs = [p for p in panels if p["type"] != "row"]
    titles = " | ".join(p["title"] for p in graphs)

    assert (dashboard["uid"], dashboard["title"]) == ("together-operator", "together-operator")
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    assert len({p["id"] for p in panels}) == len(panels)
    for part in ("calls", "error ratio", "latency", "Rate-limit", "remote state", "Stalled", "Reconcile"):
        assert part in titles
    for part in ("Poller cycle", "Status patches"):
        assert part in titles
    for node in json_nodes(dashboard):
        if "datasource" in node and isinstance(node["datasource"], dict):
            assert node["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    for panel in graphs:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), expr
            assert expr.count("{") == expr.count("}"), expr
            assert "$__rate_interval" in expr or "rate(" not in expr, expr
    # No two panels on the same cells of Grafana's 24-column grid.
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24
        mine = {
            (x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


# --------------------------------------------------------------------------------------------------
# on the real API server


@pytest.mark.controlplane
@pytest.mark.usefixtures("servicemonitor_crd_installed")
def test_servicemonitor_dashboard_and_service_are_stored_and_the_monitor_finds_the_service(
    tools: Tools, control_plane: ControlPlane
) -> None:
    cp = control_plane
    namespace, elsewhere = (f"{p}-{secrets.token_hex(4)}" for p in ("mon", "grafana"))
    for name in (namespace, elsewhere):
        cp.kubectl("create", "namespace", name)
    values = json.loads(json.dumps(MONITORING))
    values["grafanaDashboard"]["namespace"] = elsewhere
    manifests = "\n---\n".join(
        json.dumps(o)
        for o in tools.render(values, release=f"m{secrets.token_hex(3)}", namespace=namespace)
        if o["kind"] in ("Service", "ServiceMonitor", "ConfigMap")
    )

    apply_server_side(cp, manifests, dry_run=True)
    assert not cp.kubectl("get", "servicemonitors,services", "-n", namespace, "-o", "name").stdout.strip()
    apply_server_side(cp, manifests, dry_run=False)

    rendered = documents(manifests)
    monitor = one(rendered, "ServiceMonitor")
    stored = json.loads(
        cp.kubectl("get", "servicemonitor", monitor["metadata"]["name"], "-n", namespace, "-o", "json").stdout
    )
    assert stored["spec"] == monitor["spec"]
    selector = ",".join(f"{k}={v}" for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    (scraped_namespace,) = monitor["spec"]["namespaceSelector"]["matchNames"]
    found = cp.kubectl(
        "get", "services", "-n", scraped_namespace, "-l", selector, "-o", "name"
    ).stdout.split()
    assert found == [f"service/{_metrics_service(rendered)['metadata']['name']}"]
    configmap = one(rendered, "ConfigMap")
    stored_dashboard = json.loads(
        cp.kubectl("get", "configmap", configmap["metadata"]["name"], "-n", elsewhere, "-o", "json").stdout
    )
    assert json.loads(stored_dashboard["data"]["together-operator.json"]) == load_dashboard()
    assert stored_dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
