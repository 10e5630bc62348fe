"""Prometheus metrics of the operator, served on `--metrics-port`.

Together calls are counted at the HTTP transport, so every attempt (retries included) shows with the
status code the API answered (0: no response). Labels never carry an API key, a resource name or an
endpoint id: cardinality stays fixed however many endpoints there are.
"""

from __future__ import annotations

import re
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from together_operator.pricing import NamespaceCost
from together_operator.resource import TogetherEndpointStatus

_OPERATIONS = (
    ("GET", re.compile(r".*/endpoints$"), "list_endpoints"),
    ("POST", re.compile(r".*/endpoints$"), "create_endpoint"),
    ("GET", re.compile(r".*/endpoints/[^/]+$"), "get_endpoint"),
    ("PATCH", re.compile(r".*/endpoints/[^/]+$"), "update_endpoint"),
    ("DELETE", re.compile(r".*/endpoints/[^/]+$"), "delete_endpoint"),
    ("GET", re.compile(r".*/hardware$"), "list_hardware"),
    ("GET", re.compile(r".*/clusters/availability-zones$"), "list_availability_zones"),
)


def operation_of(method: str, path: str) -> str:
    """The API operation a request is, named as in the OpenAPI file (a fixed set of label values)."""
    for op_method, pattern, name in _OPERATIONS:
        if method == op_method and pattern.match(path):
            return name
    return "other"


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.api_calls = Counter(
            "together_operator_api_calls",
            "Together API calls by operation and HTTP status code (0: no response).",
            ["operation", "code"],
            registry=self.registry,
        )
        self.api_call_seconds = Histogram(
            "together_operator_api_call_duration_seconds",
            "Latency of Together API calls by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.reconciles = Counter(
            "together_operator_reconciles",
            "Reconciles by outcome reason (the Stalled, Reconciling or Ready reason they ended with).",
            ["reason"],
            registry=self.registry,
        )
        self.poll_seconds = Histogram(
            "together_operator_poll_duration_seconds",
            "Duration of one shared poller cycle (one endpoint list for one credential).",
            registry=self.registry,
        )
        self.status_patches = Counter(
            "together_operator_status_patches",
            "Status subresource patches sent to Kubernetes.",
            registry=self.registry,
        )

    def watch_resources(
        self, statuses: Callable[[], Iterable[TogetherEndpointStatus]], rate_limit_waited: Callable[[], float]
    ) -> None:
        """Register the gauges read at scrape time from the running resources."""
        self.registry.register(_ResourceCollector(statuses, rate_limit_waited))

    def watch_costs(self, costs: Callable[[], Iterable[NamespaceCost]]) -> None:
        """Register the per-namespace cost gauge, read at scrape time."""
        self.registry.register(_CostCollector(costs))

    def watch_budget_limits(self, limits: Callable[[], Iterable[tuple[str, str, Decimal]]]) -> None:
        """Register the budgets' cost limit gauge, read at scrape time: (namespace, budget, USD/h)."""
        self.registry.register(_BudgetLimitCollector(limits))

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def transport(self) -> httpx.AsyncBaseTransport:
        """An HTTP transport for one Together client that counts and times its calls."""
        return _CountingTransport(httpx.AsyncHTTPTransport(), self)


class _CountingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, metrics: OperatorMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        operation = operation_of(request.method, request.url.path)
        started = time.perf_counter()
        code = "0"
        try:
            response = await self._inner.handle_async_request(request)
            code = str(response.status_code)
            return response
        finally:
            self._metrics.api_calls.labels(operation, code).inc()
            self._metrics.api_call_seconds.labels(operation).observe(time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _ResourceCollector(Collector):
    def __init__(
        self, statuses: Callable[[], Iterable[TogetherEndpointStatus]], rate_limit_waited: Callable[[], float]
    ) -> None:
        self._statuses = statuses
        self._rate_limit_waited = rate_limit_waited

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        by_state: Tally[str] = Tally()
        by_condition: Tally[tuple[str, str, str]] = Tally()
        for status in self._statuses():
            by_state[status.state or "NONE"] += 1
            for condition in status.conditions:
                by_condition[(condition.type.value, condition.status, condition.reason)] += 1
        endpoints = GaugeMetricFamily(
            "together_operator_endpoints",
            "TogetherEndpoints by remote state (NONE: no endpoint observed).",
            labels=["state"],
        )
        for state, count in sorted(by_state.items()):
            endpoints.add_metric([state], count)
        conditions = GaugeMetricFamily(
            "together_operator_endpoint_conditions",
            "TogetherEndpoints by condition type, status and reason.",
            labels=["condition", "status", "reason"],
        )
        for labels, count in sorted(by_condition.items()):
            conditions.add_metric(list(labels), count)
        waited = CounterMetricFamily(
            "together_operator_rate_limit_wait_seconds",
            "Time Together calls spent waiting for the process-wide rate limiter.",
        )
        waited.add_metric([], self._rate_limit_waited())
        yield endpoints
        yield conditions
        yield waited


class _CostCollector(Collector):
    def __init__(self, costs: Callable[[], Iterable[NamespaceCost]]) -> None:
        self._costs = costs

    def collect(self) -> Iterator[GaugeMetricFamily]:
        hourly = GaugeMetricFamily(
            "together_operator_hourly_cost_dollars",
            "USD per hour committed by the TogetherEndpoints of a namespace: each endpoint that is or is "
            "about to be running, at its maximum replicas.",
            labels=["namespace"],
        )
        for cost in self._costs():
            hourly.add_metric([cost.namespace], float(cost.committed_hourly))
        yield hourly


class _BudgetLimitCollector(Collector):
    def __init__(self, limits: Callable[[], Iterable[tuple[str, str, Decimal]]]) -> None:
        self._limits = limits

    def collect(self) -> Iterator[GaugeMetricFamily]:
        limit = GaugeMetricFamily(
            "together_operator_budget_hourly_cost_limit_dollars",
            "spec.maxHourlyCost of each TogetherBudget that sets one, in USD per hour.",
            labels=["namespace", "budget"],
        )
        for namespace, name, dollars in self._limits():
            limit.add_metric([namespace, name], float(dollars))
        yield limit
