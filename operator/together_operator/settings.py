"""Operator settings: each `together-operator run` flag has an environment variable of the same meaning."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass

from together_operator.resource import TogetherAPI

DEFAULT_BASE_URL = "https://api.together.ai/v1"
DEFAULT_V2_INFERENCE_URL = "https://api-inference.together.ai/v1"


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...]
    """Namespaces (or globs) to watch; empty means all."""
    base_url: str
    api_key: str | None
    poll_interval: float
    transition_poll_interval: float
    resync_interval: float
    """Shortest time between two drift reads of one endpoint (seconds)."""
    resync_budget: float
    """Drift reads (single GETs) per second per credential."""
    stalled_retry_interval: float
    """Seconds before a resource stalled on credentials (missing Secret, 401/403) tries again."""
    transient_retry_interval: float
    rate_limit: float
    """Together calls per second, process-wide (0: unlimited)."""
    max_concurrent_calls: int
    health_host: str
    health_port: int
    metrics_host: str
    metrics_port: int
    log_format: str
    verbose: bool
    default_api: TogetherAPI = TogetherAPI.V1
    """The API of a TogetherEndpoint without spec.api (recorded in its status.api at first create)."""
    v2_inference_url: str = DEFAULT_V2_INFERENCE_URL
    """TOGETHER_BASE_URL in the connection ConfigMap of a v2 endpoint."""
    claims_namespace: str = "default"
    """Where the claims of adopted endpoints are kept: the operator's own namespace."""

    @property
    def creates_under_way(self) -> int:
        """Creates between their intent and their answer at once, process-wide: twice the calls in flight,
        to keep every call slot busy while intents are written, and no more than 10 s of the rate limit,
        so that no POST waits for its turn anywhere near core.CREATE_SEND_DEADLINE."""
        by_slots = 2 * self.max_concurrent_calls or 32
        by_rate = max(1, int(10 * self.rate_limit)) if self.rate_limit > 0 else by_slots
        return min(by_slots, by_rate)

    def __repr__(self) -> str:  # the key must never reach a log line
        key = "set" if self.api_key else "unset"
        return f"OperatorConfig(namespaces={self.namespaces}, base_url={self.base_url!r}, api_key={key})"


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


@dataclass(frozen=True)
class _Flag:
    name: str
    parse: Callable[[str], object]
    default: str
    help: str

    @property
    def env(self) -> str:
        return "TOGETHER_OPERATOR_" + self.name.upper().replace("-", "_")


_FLAGS = (
    _Flag("poll-interval", float, "30", "seconds between endpoint lists per credential"),
    _Flag(
        "transition-poll-interval", float, "5", "poll interval while an endpoint is PENDING/STARTING/STOPPING"
    ),
    _Flag(
        "resync-interval",
        float,
        "60",
        "shortest time between two drift reads of one endpoint; each is read at least every "
        "max(this, endpoints / resync-budget) seconds",
    ),
    _Flag(
        "resync-budget",
        _positive_float,
        "1",
        "drift reads (single GETs of an endpoint, for the fields the list lacks) per second per "
        "credential, round-robin over its endpoints",
    ),
    _Flag(
        "stalled-retry-interval",
        float,
        "60",
        "seconds before a resource stalled on a missing Secret or a rejected key tries again",
    ),
    _Flag(
        "transient-retry-interval",
        float,
        "10",
        "first wait after a 5xx, timeout or 429 without Retry-After; doubles per repeat up to 300 s",
    ),
    _Flag("rate-limit", float, "10", "Together API calls per second for the whole process; 0: unlimited"),
    _Flag("max-concurrent-calls", int, "16", "Together API calls in flight at once, process-wide; 0: no cap"),
    _Flag(
        "default-api", TogetherAPI, "v1", "v1 or v2: the Together API of a TogetherEndpoint without spec.api"
    ),
    _Flag(
        "v2-inference-url",
        str,
        DEFAULT_V2_INFERENCE_URL,
        "inference base URL published as TOGETHER_BASE_URL for v2 endpoints",
    ),
    _Flag("health-host", str, "0.0.0.0", "address of the /healthz endpoint for probes"),
    _Flag("health-port", int, "8080", "port of the /healthz endpoint; 0 turns it off"),
    _Flag("metrics-host", str, "0.0.0.0", "address of the Prometheus /metrics endpoint"),
    _Flag("metrics-port", int, "9090", "port of the Prometheus /metrics endpoint; 0 turns it off"),
    _Flag(
        "claims-namespace",
        str,
        "default",
        "namespace of the claims (Leases) that let one TogetherEndpoint adopt an endpoint: the operator's",
    ),
)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=None,
        help="namespace or glob to watch (repeatable); default all "
        "(env TOGETHER_OPERATOR_NAMESPACES, comma-separated)",
    )
    for flag in _FLAGS:
        parser.add_argument(
            f"--{flag.name}",
            type=flag.parse,
            default=flag.parse(os.environ.get(flag.env, flag.default)),
            help=f"{flag.help} (env {flag.env}; default {flag.default})",
        )
    parser.add_argument(
        "--log-format",
        choices=("plain", "full", "json"),
        default=os.environ.get("TOGETHER_OPERATOR_LOG_FORMAT", "full"),
        help="log format (env TOGETHER_OPERATOR_LOG_FORMAT; default full)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def config_from_args(args: argparse.Namespace) -> OperatorConfig:
    namespaces = args.namespaces
    if namespaces is None:
        namespaces = os.environ.get("TOGETHER_OPERATOR_NAMESPACES", "").split(",")
    return OperatorConfig(
        namespaces=tuple(n.strip() for n in namespaces if n.strip()),
        base_url=os.environ.get("TOGETHER_BASE_URL", DEFAULT_BASE_URL),
        api_key=os.environ.get("TOGETHER_API_KEY") or None,
        poll_interval=args.poll_interval,
        transition_poll_interval=args.transition_poll_interval,
        resync_interval=args.resync_interval,
        resync_budget=args.resync_budget,
        stalled_retry_interval=args.stalled_retry_interval,
        transient_retry_interval=args.transient_retry_interval,
        rate_limit=args.rate_limit,
        max_concurrent_calls=args.max_concurrent_calls,
        health_host=args.health_host,
        health_port=args.health_port,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        verbose=args.verbose,
        default_api=args.default_api,
        v2_inference_url=args.v2_inference_url,
        claims_namespace=args.claims_namespace,
    )
