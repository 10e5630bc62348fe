"""`together-simulator` (alias `together-operator simulator`, `python -m together_simulator`): serve until
SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from together_simulator.config import DEFAULT_API_KEY, DEFAULT_OWNER, FaultRule, SimulatorConfig
from together_simulator.server import Simulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="together-simulator",
        description="A local stand-in for the Together AI v1 dedicated endpoint API (base URL .../v1), "
        "with an admin interface under /_admin/ for fault injection and the call log.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY[=OWNER]",
        help=f"accept this API key as account OWNER (default owner {DEFAULT_OWNER}); repeatable; "
        f"without any, the key is {DEFAULT_API_KEY}",
    )
    parser.add_argument("--transition-seconds", type=float, help="duration of each lifecycle step")
    parser.add_argument("--minute-seconds", type=float, help="real seconds per minute of inactive_timeout")
    parser.add_argument(
        "--v2-ready-timeout-seconds",
        type=float,
        help="a v2 deployment that cannot place its replicas is FAILED this long after it started",
    )
    parser.add_argument("--catalogue", type=Path, help="YAML/JSON file replacing models, hardware, zones")
    parser.add_argument("--seed", type=int, help="seed for ids, names and fault probabilities")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency", type=float, metavar="SECONDS", help="delay every API call")
    faults.add_argument("--rate-limit-probability", type=float, metavar="P", help="answer 429 this often")
    faults.add_argument("--retry-after", type=float, default=1.0, metavar="SECONDS", help="429 Retry-After")
    faults.add_argument("--server-error-probability", type=float, metavar="P", help="answer 5xx this often")
    faults.add_argument("--server-error-status", type=int, default=500, help="status of injected 5xx")
    faults.add_argument("--drop-probability", type=float, metavar="P", help="drop the connection this often")
    faults.add_argument(
        "--lose-create-responses", type=int, metavar="N", help="the next N creates succeed, unanswered"
    )
    faults.add_argument(
        "--error-after-update", type=int, metavar="N", help="the next N updates answer 200, then go to ERROR"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    fields: dict[str, object] = {}
    if args.api_key:
        accounts: dict[str, str] = {}
        for entry in args.api_key:
            key, _, owner = entry.partition("=")
            accounts[key] = owner or DEFAULT_OWNER
        fields["accounts"] = accounts
    for field, value in (
        ("transition_seconds", args.transition_seconds),
        ("minute_seconds", args.minute_seconds),
        ("v2_ready_timeout_seconds", args.v2_ready_timeout_seconds),
        ("catalogue_file", args.catalogue),
        ("seed", args.seed),
    ):
        if value is not None:
            fields[field] = value
    rules: list[FaultRule] = []
    if args.latency is not None:
        rules.append(FaultRule(fault="latency", seconds=args.latency))
    if args.rate_limit_probability is not None:
        probability, retry_after = args.rate_limit_probability, args.retry_after
        rules.append(FaultRule(fault="rate_limit", probability=probability, retry_after=retry_after))
    if args.server_error_probability is not None:
        probability, status = args.server_error_probability, args.server_error_status
        rules.append(FaultRule(fault="server_error", probability=probability, status=status))
    if args.drop_probability is not None:
        rules.append(FaultRule(fault="drop_connection", probability=args.drop_probability))
    if args.lose_create_responses is not None:
        rules.append(FaultRule(fault="lose_create_response", times=args.lose_create_responses))
    if args.error_after_update is not None:
        rules.append(FaultRule(fault="error_after_update", times=args.error_after_update))
    fields["faults"] = rules
    return SimulatorConfig.model_validate(fields)


async def serve(simulator: Simulator, host: str, port: int) -> None:
    base_url = await simulator.start(host, port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    print(f"Together API simulator: TOGETHER_BASE_URL={base_url}", flush=True)
    print(f"v2 (/v2, /v3/whoami; the together 3.x SDK's base URL): {simulator.management_url}", flush=True)
    print(f"admin interface: {simulator.admin_url}/", flush=True)
    print(f"accounts: {', '.join(sorted(set(simulator.config.accounts.values())))}", flush=True)
    # Keys given on the command line are not echoed: someone may have pasted a real one.
    if DEFAULT_API_KEY in simulator.config.accounts:
        print(f"TOGETHER_API_KEY={DEFAULT_API_KEY}", flush=True)
    try:
        await stopping.wait()
    finally:
        await simulator.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        simulator = Simulator(config_from_args(args))
    except (ValueError, OSError) as error:
        print(f"together-simulator: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(simulator, args.host, args.port))
    return 0
