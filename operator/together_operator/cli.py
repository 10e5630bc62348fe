"""`together-operator`: run the operator, the local Together API simulator, or look things up."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from together_operator.settings import DEFAULT_BASE_URL, add_run_arguments, config_from_args
from together_operator.together import TogetherClient


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulator"]:
        # The simulator has its own flags; hand them over untouched.
        from together_operator.simulator.cli import main as simulator_main

        return simulator_main(args_list[1:])

    parser = argparse.ArgumentParser(prog="together-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_run_arguments(commands.add_parser("run", help="run the operator (kopf underneath)"))
    commands.add_parser("simulator", help="run a local Together API (see `together-operator simulator -h`)")
    hardware = commands.add_parser(
        "hardware", help="hardware offered for a model, as the vendor CLI shows it"
    )
    hardware.add_argument("--model", required=True)
    hardware.add_argument("-o", "--output", choices=("table", "json"), default="table")
    zones = commands.add_parser("availability-zones", help="availability zones of the Together API")
    zones.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = parser.parse_args(args_list)

    if args.command == "run":
        return _run(args)
    if args.command == "hardware":
        return asyncio.run(_hardware(args.model, args.output))
    return asyncio.run(_availability_zones(args.output))


def _run(args: argparse.Namespace) -> int:
    import kopf

    import together_operator.handlers  # noqa: F401  (registers the handlers)

    config = config_from_args(args)
    log_format = {"plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL, "json": kopf.LogFormat.JSON}
    kopf.configure(verbose=config.verbose, log_format=log_format[config.log_format])
    # One line per HTTP request drowns the operator's own messages at any scale.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    kopf.run(
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://{config.health_host}:{config.health_port}/healthz",
        memo=kopf.Memo(config=config),
    )
    return 0


def _client() -> TogetherClient:
    key = os.environ.get("TOGETHER_API_KEY")
    if not key:
        raise SystemExit("together-operator: set TOGETHER_API_KEY")
    return TogetherClient(os.environ.get("TOGETHER_BASE_URL", DEFAULT_BASE_URL), key)


async def _hardware(model: str, output: str) -> int:
    async with _client() as client:
        options = await client.list_hardware(model)
    if output == "json":
        print(json.dumps([o.model_dump(mode="json") for o in options], indent=2))
        return 0
    rows = [
        (
            o.id,
            o.specs.gpu_type,
            str(o.specs.gpu_count),
            f"{o.pricing.cents_per_minute * 60 / 100:.2f}",
            o.availability.status if o.availability else "",
        )
        for o in options
    ]
    _print_table(("HARDWARE", "GPU", "COUNT", "USD/HOUR", "AVAILABILITY"), rows)
    return 0


async def _availability_zones(output: str) -> int:
    async with _client() as client:
        zones = await client.list_availability_zones()
    if output == "json":
        print(json.dumps(zones))
    else:
        _print_table(("AVAILABILITY ZONE",), [(z,) for z in zones])
    return 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
