"""What a TogetherEndpoint costs: `status.pricing` from the hardware's price, and what a namespace has
committed. Pure functions of typed inputs; the shell reads the prices (`GET /hardware?model=`, through
the shared hardware cache) and writes what these return.

Prices are exact decimals (Together quotes cents per minute per replica): a sum over many endpoints
must not drift, and a budget compares against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from together_operator.core import HardwareResolved, resolve_hardware
from together_operator.resource import (
    ManagementPolicy,
    Pricing,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)
from together_operator.together.models import EndpointState, HardwareWithStatus

BILLED_STATES = frozenset(
    {EndpointState.PENDING, EndpointState.STARTING, EndpointState.STARTED, EndpointState.STOPPING}
)
"""Remote states of an endpoint that is, or is about to be, running: it counts against what its
namespace has committed. STOPPED and ERROR endpoints, and none at all, cost nothing."""


@dataclass(frozen=True)
class KnownPrice:
    """The price of one hardware id, as last read from `GET /hardware?model=`."""

    hardware: str
    per_replica_hour: Decimal
    read_at: datetime


def dollars(amount: Decimal) -> str:
    """A USD amount as the decimal string status and the CLI show: exact, no exponent, no trailing zeros."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def per_replica_hour(option: HardwareWithStatus) -> Decimal:
    """USD per replica-hour of a hardware offer quoted in cents per minute."""
    return Decimal(str(option.pricing.cents_per_minute)) * 60 / 100


def priced_hardware(
    spec: TogetherEndpointSpec, status: TogetherEndpointStatus, options: Sequence[HardwareWithStatus]
) -> str | None:
    """The hardware to price: what the endpoint runs on once observed, else what a create would send."""
    if status.hardware is not None:
        return status.hardware
    resolution = resolve_hardware(spec, options)
    return resolution.hardware if isinstance(resolution, HardwareResolved) else None


def known_price(
    hardware: str | None, options: Sequence[HardwareWithStatus], now: datetime
) -> KnownPrice | None:
    """The price of `hardware` among the offers read at `now`; None when it is not offered (any more)."""
    option = next((o for o in options if o.id == hardware), None)
    if hardware is None or option is None:
        return None
    return KnownPrice(hardware, per_replica_hour(option), now)


def price_look_up_due(
    known: KnownPrice | None, hardware: str | None, now: datetime, refresh: timedelta
) -> bool:
    """Whether to read the hardware's price again: unknown, for other hardware, or older than `refresh`."""
    return known is None or known.hardware != hardware or now - known.read_at >= refresh


@dataclass(frozen=True)
class ReadPrice:
    """Read the hardware offered again for the price of `hardware`."""

    hardware: str


def next_price(
    known: KnownPrice | None,
    spec: TogetherEndpointSpec,
    status: TogetherEndpointStatus,
    offered: Sequence[HardwareWithStatus] | None,
    now: datetime,
    refresh: timedelta,
) -> KnownPrice | ReadPrice | None:
    """The price to keep for the hardware `status` is priced on: from the offers just read for a create
    (`offered`), else the one known until a look-up is due (`price_look_up_due`), then `ReadPrice`."""
    hardware = priced_hardware(spec, status, offered or ())
    if offered is not None:
        return known_price(hardware, offered, now)
    if hardware is not None and price_look_up_due(known, hardware, now, refresh):
        return ReadPrice(hardware)
    return known


def pricing(known: KnownPrice, spec: TogetherEndpointSpec, status: TogetherEndpointStatus) -> Pricing:
    """The hourly range of the replicas the endpoint may run: the spec's (what the user declares), or
    what is observed when the operator only observes it."""
    bounds = spec.autoscaling
    if spec.management_policy == ManagementPolicy.OBSERVE_ONLY and status.autoscaling is not None:
        low, high = status.autoscaling.min_replicas, status.autoscaling.max_replicas
    else:
        low, high = bounds.min_replicas, bounds.max_replicas
    each = known.per_replica_hour
    return Pricing(
        per_replica_hour=dollars(each),
        min_hourly=dollars(each * low),
        max_hourly=dollars(each * high),
        hourly_range=f"{dollars(each * low)}-{dollars(each * high)}",
    )


def with_pricing(
    status: TogetherEndpointStatus, spec: TogetherEndpointSpec, known: KnownPrice | None
) -> TogetherEndpointStatus:
    """`status` with its pricing for the hardware it is priced on; kept as it was while the price of
    that hardware is unknown (not read yet, or a look-up failed)."""
    if known is None or status.hardware not in (None, known.hardware):
        return status
    return status.model_copy(update={"pricing": pricing(known, spec, status)})


def committed_hourly(status: TogetherEndpointStatus) -> Decimal:
    """What an endpoint commits its namespace to per hour: its maximum, while it is or is about to be
    running."""
    if status.pricing is None or status.state not in BILLED_STATES:
        return Decimal(0)
    return Decimal(status.pricing.max_hourly)


@dataclass(frozen=True)
class NamespaceCost:
    namespace: str
    endpoints: int
    running: int
    """Endpoints in a billed state (see `BILLED_STATES`)."""
    committed_hourly: Decimal


def namespace_costs(resources: Iterable[tuple[str, TogetherEndpointStatus]]) -> list[NamespaceCost]:
    """Per namespace (sorted), from (namespace, status) of every TogetherEndpoint."""
    totals: dict[str, tuple[int, int, Decimal]] = {}
    for namespace, status in resources:
        endpoints, running, committed = totals.get(namespace, (0, 0, Decimal(0)))
        billed = status.state in BILLED_STATES
        totals[namespace] = (endpoints + 1, running + billed, committed + committed_hourly(status))
    return [NamespaceCost(ns, *totals[ns]) for ns in sorted(totals)]
