"""status.pricing, what a namespace commits per hour, and the cost gauge (issue 15, item 1)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import generate_latest

from together_operator import pricing
from together_operator.credentials import ApiKey
from together_operator.hardware import HardwareCatalogue
from together_operator.metrics import OperatorMetrics
from together_operator.pricing import KnownPrice, NamespaceCost, ReadPrice
from together_operator.pricing_shell import PriceLookUp
from together_operator.resource import ObservedAutoscaling, Pricing, TogetherEndpointStatus
from together_operator.shell import ReconcilerSettings
from together_operator.together.errors import TransientError
from together_operator.together.models import EndpointPricing, HardwareWithStatus

from .builders import ENDPOINT_ID, HARDWARE, MODEL, NOW, endpoint, hardware, inputs, later, spec
from .fakes import FakeTogether, ShellBed


def priced(hardware_id: str, cents_per_minute: float) -> HardwareWithStatus:
    return hardware(hardware_id).model_copy(
        update={"pricing": EndpointPricing(cents_per_minute=cents_per_minute)}
    )


# --- arithmetic -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents_per_minute", "per_hour"),
    [
        (11.2, "6.72"),  # 2x H100 in the simulator's catalogue
        (5.42, "3.252"),  # exact: no rounding to cents
        (100, "60"),
        (0.01, "0.006"),
        (0, "0"),
    ],
)
def test_cents_per_minute_become_exact_dollars_per_replica_hour(
    cents_per_minute: float, per_hour: str
) -> None:
    assert pricing.dollars(pricing.per_replica_hour(priced(HARDWARE, cents_per_minute))) == per_hour


@pytest.mark.parametrize(
    ("min_replicas", "max_replicas", "expected"),
    [
        (
            1,
            1,
            Pricing(per_replica_hour="6.72", min_hourly="6.72", max_hourly="6.72", hourly_range="6.72-6.72"),
        ),
        (
            1,
            4,
            Pricing(
                per_replica_hour="6.72", min_hourly="6.72", max_hourly="26.88", hourly_range="6.72-26.88"
            ),
        ),
        (
            3,
            3,
            Pricing(
                per_replica_hour="6.72", min_hourly="20.16", max_hourly="20.16", hourly_range="20.16-20.16"
            ),
        ),
    ],
)
def test_the_hourly_range_spans_the_declared_replicas(
    min_replicas: int, max_replicas: int, expected: Pricing
) -> None:
    known = KnownPrice(HARDWARE, Decimal("6.72"), NOW)
    declared = spec(autoscaling={"min_replicas": min_replicas, "max_replicas": max_replicas})

    assert pricing.pricing(known, declared, TogetherEndpointStatus()) == expected


def test_an_observed_only_endpoint_is_priced_at_its_observed_replicas() -> None:
    known = KnownPrice(HARDWARE, Decimal("2"), NOW)
    observed = TogetherEndpointStatus(autoscaling=ObservedAutoscaling(min_replicas=2, max_replicas=5))

    found = pricing.pricing(known, spec(management_policy="ObserveOnly", endpoint_id=ENDPOINT_ID), observed)

    assert (found.min_hourly, found.max_hourly) == ("4", "10")


def test_before_a_create_the_hardware_the_create_would_send_is_priced() -> None:
    offered = (priced("1x_nvidia_h100_80gb_sxm", 5.6), priced(HARDWARE, 11.2))

    hardware_id = pricing.priced_hardware(
        spec(hardware=None, gpu={"type": "h100", "count": 2}), TogetherEndpointStatus(), offered
    )

    assert hardware_id == HARDWARE
    assert pricing.known_price(hardware_id, offered, NOW) == KnownPrice(HARDWARE, Decimal("6.72"), NOW)


def test_hardware_no_longer_offered_has_no_price_and_keeps_the_last_pricing() -> None:
    before = TogetherEndpointStatus(
        hardware=HARDWARE,
        pricing=Pricing(per_replica_hour="1", min_hourly="1", max_hourly="1", hourly_range="1-1"),
    )

    known = pricing.known_price(HARDWARE, (priced("1x_nvidia_h100_80gb_sxm", 5.6),), NOW)

    assert known is None
    assert pricing.with_pricing(before, spec(), known) == before


@pytest.mark.parametrize(
    ("known", "hardware_id", "now", "due"),
    [
        (None, HARDWARE, NOW, True),
        (KnownPrice(HARDWARE, Decimal(1), NOW), HARDWARE, later(minutes=9), False),
        (KnownPrice(HARDWARE, Decimal(1), NOW), HARDWARE, later(minutes=10), True),
        (KnownPrice("1x_nvidia_h100_80gb_sxm", Decimal(1), NOW), HARDWARE, NOW, True),
    ],
    ids=["unknown", "fresh", "as-old-as-the-resync", "other-hardware"],
)
def test_a_price_is_read_again_when_unknown_stale_or_for_other_hardware(
    known: KnownPrice | None, hardware_id: str, now: Any, due: bool
) -> None:
    assert pricing.price_look_up_due(known, hardware_id, now, timedelta(minutes=10)) is due


FRESH = KnownPrice(HARDWARE, Decimal(1), NOW)
ON_HARDWARE = TogetherEndpointStatus(hardware=HARDWARE)


@pytest.mark.parametrize(
    ("known", "status", "offered", "now", "expected"),
    [
        pytest.param(
            FRESH,
            TogetherEndpointStatus(),
            [priced(HARDWARE, 11.2)],
            NOW,
            KnownPrice(HARDWARE, Decimal("6.72"), NOW),
            id="offers-just-read-for-a-create",
        ),
        pytest.param(FRESH, ON_HARDWARE, [], NOW, None, id="no-longer-offered"),
        pytest.param(FRESH, ON_HARDWARE, None, later(minutes=9), FRESH, id="fresh-kept"),
        pytest.param(FRESH, ON_HARDWARE, None, later(minutes=10), ReadPrice(HARDWARE), id="due"),
        pytest.param(None, ON_HARDWARE, None, NOW, ReadPrice(HARDWARE), id="unknown"),
    ],
)
def test_the_next_price_comes_from_offers_just_read_else_the_known_one_until_a_read_is_due(
    known: KnownPrice | None,
    status: TogetherEndpointStatus,
    offered: list[HardwareWithStatus] | None,
    now: Any,
    expected: KnownPrice | ReadPrice | None,
) -> None:
    found = pricing.next_price(known, spec(), status, offered, now, timedelta(minutes=10))

    assert found == expected


async def test_a_due_price_is_read_and_a_failed_read_keeps_the_known_price() -> None:
    together = FakeTogether()
    together.hardware = [priced(HARDWARE, 11.2)]
    look_up = PriceLookUp(HardwareCatalogue(ttl_seconds=0), refresh=timedelta(minutes=10))
    key, first = ApiKey("test-key-0123456789"), inputs(hardware_options=None)

    read = await look_up.current(together, key, first, ON_HARDWARE, None)
    not_due = await look_up.current(together, key, replace(first, now=later(minutes=9)), ON_HARDWARE, read)
    together.fail(f"GET /hardware?model={MODEL}", TransientError("503", method="GET", path="hardware"))
    failed = await look_up.current(together, key, replace(first, now=later(minutes=10)), ON_HARDWARE, read)

    assert read == not_due == failed == KnownPrice(HARDWARE, Decimal("6.72"), NOW)
    assert together.log == [f"GET /hardware?model={MODEL}"] * 2


def _status(state: str | None, max_hourly: str | None) -> TogetherEndpointStatus:
    priced_at = (
        None
        if max_hourly is None
        else Pricing(
            per_replica_hour=max_hourly, min_hourly=max_hourly, max_hourly=max_hourly, hourly_range=""
        )
    )
    return TogetherEndpointStatus(state=state, pricing=priced_at)


@pytest.mark.parametrize(
    ("state", "committed"),
    [
        ("PENDING", "6.72"),
        ("STARTING", "6.72"),
        ("STARTED", "6.72"),
        ("STOPPING", "6.72"),
        ("STOPPED", "0"),
        ("ERROR", "0"),
        (None, "0"),
    ],
)
def test_an_endpoint_commits_its_maximum_while_it_is_or_is_about_to_be_running(
    state: str | None, committed: str
) -> None:
    assert pricing.committed_hourly(_status(state, "6.72")) == Decimal(committed)


def test_namespace_costs_sum_exactly_per_namespace() -> None:
    resources = [
        ("team-b", _status("STARTED", "0.1")),
        ("team-a", _status("STARTED", "0.1")),
        ("team-a", _status("STARTING", "0.2")),
        ("team-a", _status("STOPPED", "100")),
        ("team-a", _status("STARTED", None)),  # no price known yet
    ]

    assert pricing.namespace_costs(resources) == [
        NamespaceCost("team-a", endpoints=4, running=3, committed_hourly=Decimal("0.3")),
        NamespaceCost("team-b", endpoints=1, running=1, committed_hourly=Decimal("0.1")),
    ]


# --- the shell: status.pricing and the gauge ---------------------------------------------------------


async def test_a_create_records_the_price_of_the_hardware_it_sent() -> None:
    bed = ShellBed()
    bed.together.hardware = [priced(HARDWARE, 11.2)]
    body = bed.resource(
        spec={"model": MODEL, "hardware": HARDWARE, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}
    )

    await bed.reconcile(body)

    assert bed.status.writes[-1].pricing == Pricing(
        per_replica_hour="6.72", min_hourly="6.72", max_hourly="13.44", hourly_range="6.72-13.44"
    )
    assert sum(call.startswith("GET /hardware") for call in bed.calls()) == 1


async def test_an_existing_endpoint_is_priced_and_its_price_read_again_at_the_resync() -> None:
    bed = ShellBed(endpoint(state="STARTED"))
    bed.together.hardware = [priced(HARDWARE, 11.2)]
    body = bed.resource(spec={"model": MODEL, "hardware": HARDWARE, "endpointId": ENDPOINT_ID})
    await bed.reconcile(body)
    bed.watch_event(body)
    assert bed.status.writes[-1].pricing is not None
    assert bed.status.writes[-1].pricing.per_replica_hour == "6.72"

    bed.together.hardware = [priced(HARDWARE, 12.0)]
    bed.clock.advance(seconds=ReconcilerSettings(base_url="u").steady_look_interval)
    await bed.reconcile(body)

    assert bed.status.writes[-1].pricing is not None
    assert bed.status.writes[-1].pricing.per_replica_hour == "7.2"
    assert sum(call.startswith("GET /hardware") for call in bed.calls()) == 2


async def test_a_failed_price_look_up_keeps_the_last_price_and_the_reconcile_goes_on() -> None:
    bed = ShellBed(endpoint(state="STARTED"))
    last = Pricing(per_replica_hour="1", min_hourly="1", max_hourly="1", hourly_range="1-1")
    body = bed.resource(
        spec={"model": MODEL, "hardware": HARDWARE, "endpointId": ENDPOINT_ID},
        status={"endpointId": ENDPOINT_ID, "pricing": last.model_dump(mode="json")},
    )
    bed.together.fail(
        f"GET /hardware?model={MODEL}",
        TransientError("503 Service Unavailable", method="GET", path="hardware"),
    )

    await bed.reconcile(body)

    written = bed.status.writes[-1]
    assert written.pricing == last
    assert written.state == "STARTED"


async def test_the_cost_gauge_sums_running_endpoints_at_max_replicas_by_namespace() -> None:
    bed = ShellBed(
        endpoint(state="STARTED", max_replicas=3), endpoint(id="endpoint-stopped", state="STOPPED")
    )
    bed.together.hardware = [priced(HARDWARE, 11.2)]
    running = bed.resource(
        spec={
            "model": MODEL,
            "hardware": HARDWARE,
            "endpointId": ENDPOINT_ID,
            "autoscaling": {"minReplicas": 1, "maxReplicas": 3},
        },
        uid="uid-running",
    )
    stopped = bed.resource(
        spec={"model": MODEL, "hardware": HARDWARE, "endpointId": "endpoint-stopped", "state": "Stopped"},
        uid="uid-stopped",
    )
    stopped["metadata"]["name"] = "stopped"
    await bed.reconcile(running)
    await bed.reconcile(stopped)
    metrics = OperatorMetrics()
    metrics.watch_costs(bed.reconciler.hourly_costs)

    scraped = generate_latest(metrics.registry).decode()

    assert 'together_operator_hourly_cost_dollars{namespace="team-a"} 20.16' in scraped
