"""Cost guardrails with the real operator, apiserver and simulator (issue 15): the price in status and
the cost gauge, running schedules on the real clock, and what admission refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_operator_lifecycle import TEP, calls, create_ready, scrape
from tests.support.controlplane import ControlPlane, KubectlError
from tests.support.kube import Kube, condition, has_condition
from tests.support.manifests import endpoint_manifest
from tests.support.operator_fixtures import OperatorEnv

pytestmark = pytest.mark.controlplane


def test_status_shows_the_price_and_the_namespace_s_committed_cost_is_exported(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    # 2x H100 costs 11.2 cents a minute in the simulator's catalogue: 6.72 USD per replica-hour.
    obj = create_ready(operator_env, kube, "priced", autoscaling={"minReplicas": 1, "maxReplicas": 2})

    assert obj["status"]["pricing"] == {
        "perReplicaHour": "6.72",
        "minHourly": "6.72",
        "maxHourly": "13.44",
        "hourlyRange": "6.72-13.44",
    }
    columns = kube.kubectl("get", TEP, "priced").stdout.splitlines()
    assert "$/H" in columns[0].split()  # kubectl upper-cases column names
    assert "6.72-13.44" in columns[1].split()
    assert (
        scrape(operator_env)[("together_operator_hourly_cost_dollars", (("namespace", kube.namespace),))]
        == 13.44
    )


def _minute(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def _window(start: datetime, end: datetime) -> str:
    return f"{start.strftime('%a')} {_minute(start)}-{_minute(end)}"


def test_a_window_ending_stops_the_endpoint_and_the_next_one_starts_it(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    """Windows from the test's clock: one running now and closing at the next-but-one minute, the
    next opening a minute later."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    closes, opens = now + timedelta(minutes=2), now + timedelta(minutes=3)
    running = [_window(now, closes), _window(opens, opens + timedelta(minutes=10))]
    obj = create_ready(operator_env, kube, "office", schedule={"timeZone": "UTC", "running": running})
    endpoint_id = obj["status"]["endpointId"]
    assert obj["status"]["state"] == "STARTED"
    assert obj["status"]["schedule"] == {
        "active": True,
        "nextTransition": closes.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }

    stopped = kube.wait_for(TEP, "office", has_condition("Ready", reason="Scheduled"), timeout=240)
    assert stopped["status"]["state"] == "STOPPED"
    assert stopped["status"]["schedule"]["active"] is False
    started = kube.wait_for(
        TEP,
        "office",
        lambda o: (
            (o["status"].get("schedule") or {}).get("active") is True
            and o["status"].get("state") == "STARTED"
        ),
        timeout=240,
    )
    ready = condition(started, "Ready")
    assert ready is not None
    assert ready["reason"] == "Started"
    reasons = [e["reason"] for e in kube.events("office")]
    assert "RunningWindowClosed" in reasons
    assert "RunningWindowOpened" in reasons
    assert calls(operator_env, "PATCH", endpoint_id) == 2


@pytest.mark.parametrize("window", ["Mon-Fri 8:00-20:00", "weekdays 08:00-20:00", "Mon-Fri 08:00-20:00 UTC"])
def test_admission_refuses_a_malformed_window(
    control_plane: ControlPlane, together_crd: str, namespace: str, window: str
) -> None:
    manifest = endpoint_manifest("refused", schedule={"running": [window]})
    manifest["metadata"]["namespace"] = namespace

    with pytest.raises(KubectlError) as refused:
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    assert "spec.schedule.running[0]" in str(refused.value)


def _budget(kube: Kube, **spec: object) -> None:
    kube.apply(
        {
            "apiVersion": "together.ai/v1alpha1",
            "kind": "TogetherBudget",
            "metadata": {"name": "team"},
            "spec": spec,
        }
    )


def test_a_budget_blocks_the_endpoint_that_would_exceed_it_until_it_is_raised(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    _budget(kube, maxHourlyCost="10")
    create_ready(operator_env, kube, "first")  # 6.72 USD/h
    posts = calls(operator_env, "POST")

    kube.apply(endpoint_manifest("second"))
    blocked = kube.wait_for(TEP, "second", has_condition("Stalled", reason="BudgetExceeded"))

    stalled = condition(blocked, "Stalled")
    assert stalled is not None
    assert stalled["message"] == (
        "would cost 6.72 USD/h (from 0); 6.72 USD/h is committed by the namespace's other endpoints; "
        "the limit of TogetherBudget team is 10 USD/h"
    )
    assert calls(operator_env, "POST") == posts  # nothing was sent
    budget = kube.wait_for(
        "tbudget", "team", lambda b: (b.get("status") or {}).get("committedHourlyCost") == "6.72"
    )
    assert budget["status"]["endpoints"] == 1

    _budget(kube, maxHourlyCost="20")
    kube.wait_for(TEP, "second", has_condition("Ready", reason="Started"), timeout=30)
    assert calls(operator_env, "POST") == posts + 1


def test_a_scale_up_over_budget_is_refused_while_a_scale_down_passes(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    _budget(kube, maxHourlyCost="15")
    obj = create_ready(operator_env, kube, "scaled", autoscaling={"minReplicas": 1, "maxReplicas": 2})
    endpoint_id = obj["status"]["endpointId"]
    patches = calls(operator_env, "PATCH", endpoint_id)

    kube.patch(TEP, "scaled", {"spec": {"autoscaling": {"maxReplicas": 3}}})
    kube.wait_for(TEP, "scaled", has_condition("Stalled", reason="BudgetExceeded"))
    assert calls(operator_env, "PATCH", endpoint_id) == patches
    kube.patch(TEP, "scaled", {"spec": {"autoscaling": {"maxReplicas": 1}}})
    scaled = kube.wait_for(TEP, "scaled", has_condition("Ready", reason="Started"))

    assert scaled["status"]["autoscaling"]["maxReplicas"] == 1
    assert calls(operator_env, "PATCH", endpoint_id) == patches + 1


@pytest.mark.parametrize("max_hourly_cost", ["12,50", "-5", "$10", "1e3"])
def test_admission_refuses_a_budget_that_is_not_a_decimal_string(
    control_plane: ControlPlane, together_crd: str, namespace: str, max_hourly_cost: str
) -> None:
    manifest = {
        "apiVersion": "together.ai/v1alpha1",
        "kind": "TogetherBudget",
        "metadata": {"name": "refused", "namespace": namespace},
        "spec": {"maxHourlyCost": max_hourly_cost},
    }

    with pytest.raises(KubectlError) as refused:
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    assert "spec.maxHourlyCost" in str(refused.value)


def test_many_endpoints_applied_at_once_cannot_overspend_a_budget(
    operator_env: OperatorEnv, kube: Kube
) -> None:
    """Room for two 2x H100 endpoints (6.72 USD/h each) and six applied in one kubectl call: exactly
    two are created, the other four wait with BudgetExceeded."""
    _budget(kube, maxHourlyCost="14")
    posts = calls(operator_env, "POST")
    names = [f"burst-{i}" for i in range(6)]
    items = [
        {**endpoint_manifest(name), "metadata": {"name": name, "namespace": kube.namespace}} for name in names
    ]
    kube.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def settled(obj: dict[str, object]) -> bool:
        return has_condition("Ready", reason="Started")(obj) or has_condition(
            "Stalled", reason="BudgetExceeded"
        )(obj)

    outcomes = [condition(kube.wait_for(TEP, name, settled), "Ready") for name in names]

    started = [o for o in outcomes if o is not None and o["reason"] == "Started"]
    assert len(started) == 2
    assert calls(operator_env, "POST") == posts + 2
