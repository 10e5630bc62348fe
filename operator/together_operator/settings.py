"""Operator settings: each `together-operator run` flag has an environment variable of the same meaning."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

DEFAULT_BASE_URL = "https://api.together.ai/v1"


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...]
    """Namespaces to watch; empty means all."""
    base_url: str
    api_key: str | None
    poll_interval: float
    transition_poll_interval: float
    resync_interval: float
    stalled_retry_interval: float
    """Seconds before a resource stalled on credentials (missing Secret, 401/403) tries again."""
    rate_limit: float
    max_concurrent_calls: int
    transient_retry_interval: float
    """Together calls per second, process-wide (0: unlimited)."""
    health_host: str
    health_port: int
    metrics_host: str
    metrics_port: int
    log_format: str
    verbose: bool

    def __repr__(self) -> str:  # the key must never reach a log line
        key = "set" if self.api_key else "unset"
        return f"OperatorConfig(namespaces={self.namespaces}, base_url={self.base_url!r}, api_key={key})"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=None,
        help="namespace to watch (repeatable); default all "
        "(env TOGETHER_OPERATOR_NAMESPACES, comma-separated)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=float(_env("TOGETHER_OPERATOR_POLL_INTERVAL", "30")),
        help="seconds between endpoint lists per credential "
        "(env TOGETHER_OPERATOR_POLL_INTERVAL; default 30)",
    )
    parser.add_argument(
        "--transition-poll-interval",
        type=float,
        default=float(_env("TOGETHER_OPERATOR_TRANSITION_POLL_INTERVAL", "5")),
        help="poll interval while an endpoint is PENDING/STARTING/STOPPING "
        "(env TOGETHER_OPERATOR_TRANSITION_POLL_INTERVAL; default 5)",
    )
    parser.add_argument(
        "--resync-interval",
        type=float,
        default=float(_env("TOGETHER_OPERATOR_RESYNC_INTERVAL", "600")),
        help="seconds between full reads of a steady endpoint to correct drift "
        "(env TOGETHER_OPERATOR_RESYNC_INTERVAL; default 600)",
    )
    parser.add_argument(
        "--stalled-retry-interval",
        type=float,
        default=float(_env("TOGETHER_OPERATOR_STALLED_RETRY_INTERVAL", "60")),
        help="seconds before a resource stalled on a missing Secret or a rejected key tries again "
        "(env TOGETHER_OPERATOR_STALLED_RETRY_INTERVAL; default 60)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=float(_env("TOGETHER_OPERATOR_RATE_LIMIT", "10")),
        help="Together API calls per second for the whole process "
        "(env TOGETHER_OPERATOR_RATE_LIMIT; default 10)",
    )
    parser.add_argument(
        "--max-concurrent-calls",
        type=int,
        default=int(_env("TOGETHER_OPERATOR_MAX_CONCURRENT_CALLS", "16")),
        help="Together API calls in flight at once, process-wide; 0: no cap "
        "(env TOGETHER_OPERATOR_MAX_CONCURRENT_CALLS; default 16)",
    )
    parser.add_argument(
        "--transient-retry-interval",
        type=float,
        default=float(_env("TOGETHER_OPERATOR_TRANSIENT_RETRY_INTERVAL", "10")),
        help="first wait after a 5xx, timeout or 429 without Retry-After; doubles per repeat up to 300 s "
        "(env TOGETHER_OPERATOR_TRANSIENT_RETRY_INTERVAL; default 10)",
    )
    parser.add_argument(
        "--health-host",
        default=_env("TOGETHER_OPERATOR_HEALTH_HOST", "0.0.0.0"),
        help="address of the /healthz endpoint (env TOGETHER_OPERATOR_HEALTH_HOST; default 0.0.0.0)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(_env("TOGETHER_OPERATOR_HEALTH_PORT", "8080")),
        help="port of the /healthz endpoint for probes; 0 turns it off "
        "(env TOGETHER_OPERATOR_HEALTH_PORT; default 8080)",
    )
    parser.add_argument(
        "--metrics-host",
        default=_env("TOGETHER_OPERATOR_METRICS_HOST", "0.0.0.0"),
        help="address of the Prometheus /metrics endpoint "
        "(env TOGETHER_OPERATOR_METRICS_HOST; default 0.0.0.0)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("TOGETHER_OPERATOR_METRICS_PORT", "9090")),
        help="port of the Prometheus /metrics endpoint; 0 turns it off "
        "(env TOGETHER_OPERATOR_METRICS_PORT; default 9090)",
    )
    parser.add_argument(
        "--log-format",
        choices=("plain", "full", "json"),
        default=_env("TOGETHER_OPERATOR_LOG_FORMAT", "full"),
        help="log format (env TOGETHER_OPERATOR_LOG_FORMAT; default full)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def config_from_args(args: argparse.Namespace) -> OperatorConfig:
    namespaces = args.namespaces
    if namespaces is None:
        namespaces = [n for n in _env("TOGETHER_OPERATOR_NAMESPACES", "").split(",") if n.strip()]
    return OperatorConfig(
        namespaces=tuple(n.strip() for n in namespaces),
        base_url=_env("TOGETHER_BASE_URL", DEFAULT_BASE_URL),
        api_key=os.environ.get("TOGETHER_API_KEY") or None,
        poll_interval=args.poll_interval,
        transition_poll_interval=args.transition_poll_interval,
        resync_interval=args.resync_interval,
        stalled_retry_interval=args.stalled_retry_interval,
        rate_limit=args.rate_limit,
        max_concurrent_calls=args.max_concurrent_calls,
        transient_retry_interval=args.transient_retry_interval,
        health_host=args.health_host,
        health_port=args.health_port,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        verbose=args.verbose,
    )
