"""`together-operator`: run the operator, the local Together API simulator, or look things up."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from together_operator.settings import DEFAULT_BASE_URL, add_run_arguments, config_from_args
from together_operator.together import TogetherClient, TogetherError
from together_operator.together.v2_client import TogetherV2Client


class _Client(Protocol):
    async def aclose(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_Client)


class V2HardwareOffer(BaseModel):
    """One certified config of a model on v2: what a spec names, and what it costs where."""

    hardware: str
    config: str
    model: str
    speculator: str | None
    price_cents_per_hour: int | None
    regions: list[str]


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulator"]:
        # An alias of `together-simulator`, whose flags it hands over untouched.
        try:
            from together_simulator.cli import main as simulator_main
        except ImportError:
            print(
                "together-operator: the simulator is not installed here "
                "(pip install 'together-operator[simulator]'); the operator image does not ship it",
                file=sys.stderr,
            )
            return 2
        return simulator_main(args_list[1:])

    parser = argparse.ArgumentParser(prog="together-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_run_arguments(commands.add_parser("run", help="run the operator (kopf underneath)"))
    commands.add_parser(
        "simulator", help="alias of together-simulator: a local Together API (see `together-simulator -h`)"
    )
    hardware = commands.add_parser(
        "hardware", help="hardware offered for a model, as the vendor CLI shows it"
    )
    hardware.add_argument("--model", required=True)
    _add_api_argument(hardware)
    hardware.add_argument("-o", "--output", choices=("table", "json"), default="table")
    zones = commands.add_parser("availability-zones", help="availability zones of the Together API")
    zones.add_argument("-o", "--output", choices=("table", "json"), default="table")
    endpoints = commands.add_parser(
        "endpoints", help="the account's endpoints as the operator sees them, for debugging"
    )
    endpoint_commands = endpoints.add_subparsers(dest="endpoints_command", required=True)
    listing = endpoint_commands.add_parser(
        "list", help="the caller's dedicated endpoints (GET /endpoints?type=dedicated&mine=true)"
    )
    listing.add_argument(
        "--all", action="store_true", help="every endpoint the key can see, Together's serverless ones too"
    )
    _add_api_argument(listing)
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    get = endpoint_commands.add_parser("get", help="one endpoint, by id (GET /endpoints/ID)")
    get.add_argument("endpoint_id", metavar="ID")
    _add_api_argument(get)
    get.add_argument("-o", "--output", choices=("table", "json"), default="table")
    cost = commands.add_parser(
        "cost",
        help="per-namespace committed spend: the TogetherEndpoints that are or are about to be running, "
        "at their maximum replicas (status.pricing)",
    )
    cost.add_argument("-n", "--namespace", help="one namespace (default: every namespace)")
    cost.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    cost.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = parser.parse_args(args_list)

    if args.command == "run":
        return _run(args)
    if args.command == "cost":
        return _cost(args.kubeconfig, args.namespace, args.output)
    if args.command == "availability-zones":
        return _look_up(_client, lambda client: _availability_zones(client, args.output))
    if args.api == "v2":
        if args.command == "hardware":
            return _look_up(_v2_client, lambda client: _v2_hardware(client, args.model, args.output))
        if args.endpoints_command == "list":
            return _look_up(_v2_client, lambda client: _v2_list_endpoints(client, args.output))
        return _look_up(_v2_client, lambda client: _v2_get_endpoint(client, args.endpoint_id, args.output))
    if args.command == "hardware":
        return _look_up(_client, lambda client: _hardware(client, args.model, args.output))
    if args.endpoints_command == "list":
        return _look_up(_client, lambda client: _list_endpoints(client, args.all, args.output))
    return _look_up(_client, lambda client: _get_endpoint(client, args.endpoint_id, args.output))


def _add_api_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        choices=("v1", "v2"),
        default="v1",
        help="v1: the endpoint API; v2: Dedicated Model Inference (projects, endpoints, deployments)",
    )


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
        liveness_endpoint=(
            f"http://{config.health_host}:{config.health_port}/healthz" if config.health_port else None
        ),
        memo=kopf.Memo(config=config),
    )
    return 0


def _api_key() -> str:
    key = os.environ.get("TOGETHER_API_KEY")
    if not key:
        raise SystemExit("together-operator: set TOGETHER_API_KEY")
    return key


def _client() -> TogetherClient:
    return TogetherClient(os.environ.get("TOGETHER_BASE_URL", DEFAULT_BASE_URL), _api_key())


def _v2_client() -> TogetherV2Client:
    """v2 on the host of TOGETHER_BASE_URL (its /v1 dropped), as the operator will call it."""
    return TogetherV2Client(os.environ.get("TOGETHER_BASE_URL", DEFAULT_BASE_URL), _api_key())


def _look_up(make_client: Callable[[], ClientT], command: Callable[[ClientT], Awaitable[int]]) -> int:
    """Run a look-up with the operator's credentials and base URL; a failure is one line on stderr and
    exit status 1. Neither the client nor its errors ever hold the key in what they print."""

    async def run() -> int:
        client = make_client()
        try:
            return await command(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except (TogetherError, ValueError) as error:
        print(f"together-operator: {error}", file=sys.stderr)
        return 1


async def _hardware(client: TogetherClient, model: str, output: str) -> int:
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


async def _availability_zones(client: TogetherClient, output: str) -> int:
    zones = await client.list_availability_zones()
    if output == "json":
        print(json.dumps(zones))
    else:
        _print_table(("AVAILABILITY ZONE",), [(z,) for z in zones])
    return 0


async def _list_endpoints(client: TogetherClient, everything: bool, output: str) -> int:
    if everything:
        endpoints = await client.list_endpoints(type=None, mine=None)
    else:
        endpoints = await client.list_endpoints()
    if output == "json":
        print(json.dumps([e.model_dump(mode="json") for e in endpoints], indent=2))
        return 0
    rows = [(e.id, e.name, e.type, e.state, _timestamp(e.created_at)) for e in endpoints]
    _print_table(("ID", "NAME", "TYPE", "STATE", "CREATED"), rows)
    return 0


async def _get_endpoint(client: TogetherClient, endpoint_id: str, output: str) -> int:
    endpoint = await client.get_endpoint(endpoint_id)
    if output == "json":
        print(json.dumps(endpoint.model_dump(mode="json"), indent=2))
        return 0
    autoscaling = endpoint.autoscaling
    fields: list[tuple[str, str]] = [
        ("ID", endpoint.id),
        ("NAME", endpoint.name),
        ("DISPLAY NAME", endpoint.display_name),
        ("MODEL", endpoint.model),
        ("HARDWARE", endpoint.hardware),
        ("TYPE", endpoint.type),
        ("OWNER", endpoint.owner),
        ("STATE", endpoint.state),
        ("REPLICAS", f"{autoscaling.min_replicas}-{autoscaling.max_replicas}"),
        ("CREATED", _timestamp(endpoint.created_at)),
    ]
    _print_table(("FIELD", "VALUE"), fields)
    return 0


async def _v2_hardware(client: TogetherV2Client, model: str, output: str) -> int:
    """The certified configs of a catalogue model (by name or model resource), with price and regions."""
    supported = await client.list_supported_models()
    entry = next((m for m in supported if model in (m.name, m.base_model, m.id)), None)
    if entry is None:
        print(f"together-operator: {model} is not a supported model of the v2 catalogue", file=sys.stderr)
        return 1
    instance_types = {instance.name: instance for instance in await client.list_instance_types()}
    offers = []
    for profile in entry.deployment_profiles:
        config = await client.get_config(profile.config)
        instance = instance_types.get(profile.hardware)
        offers.append(
            V2HardwareOffer(
                hardware=profile.hardware,
                config=profile.config,
                model=profile.model,
                speculator=config.draft_model,
                price_cents_per_hour=instance.price_cents_per_hour if instance else None,
                regions=[region.name for region in instance.regions] if instance else [],
            )
        )
    if output == "json":
        print(json.dumps([offer.model_dump(mode="json") for offer in offers], indent=2))
        return 0
    rows = [
        (
            offer.hardware,
            offer.config,
            f"{offer.price_cents_per_hour / 100:.2f}" if offer.price_cents_per_hour is not None else "?",
            "yes" if offer.speculator else "no",
            ",".join(offer.regions),
        )
        for offer in offers
    ]
    _print_table(("HARDWARE", "CONFIG", "USD/HOUR", "SPECULATOR", "REGIONS"), rows)
    return 0


async def _v2_list_endpoints(client: TogetherV2Client, output: str) -> int:
    endpoints = await client.list_endpoints()
    if output == "json":
        print(json.dumps([e.model_dump(mode="json") for e in endpoints], indent=2))
        return 0
    rows: list[tuple[str, ...]] = []
    for endpoint in endpoints:
        weights = {entry.deployment_id: entry.weight for entry in endpoint.traffic_split}
        rows += [
            (
                endpoint.id,
                endpoint.name,
                d.name.rpartition("/")[2],
                _short_state(d.state),
                f"{d.ready_replicas or 0}/{d.desired_replicas or 0}",
                f"{weights.get(d.id, 0):g}",
            )
            for d in endpoint.deployments
        ] or [(endpoint.id, endpoint.name, "-", "-", "-", "-")]
    _print_table(("ID", "NAME", "DEPLOYMENT", "STATE", "READY", "WEIGHT"), rows)
    return 0


async def _v2_get_endpoint(client: TogetherV2Client, endpoint_id: str, output: str) -> int:
    endpoint = await client.get_endpoint(endpoint_id)
    deployments = await client.list_deployments(endpoint_id)
    if output == "json":
        body = {
            "endpoint": endpoint.model_dump(mode="json"),
            "deployments": [d.model_dump(mode="json") for d in deployments],
        }
        print(json.dumps(body, indent=2))
        return 0
    _print_table(("FIELD", "VALUE"), [("ID", endpoint.id), ("NAME", endpoint.name), ("ETAG", endpoint.etag)])
    print()
    weights = {entry.deployment_id: entry.weight for entry in endpoint.traffic_split}
    rows = [
        (
            d.id,
            d.short_name,
            _short_state(d.status.state),
            f"{d.status.ready_replicas or 0}/{d.desired_replicas or 0}",
            f"{d.autoscaling.min_replicas or 0}-{d.autoscaling.max_replicas or 0}",
            d.hardware,
            f"{weights.get(d.id, 0):g}",
            d.status.message,
        )
        for d in deployments
    ]
    _print_table(("DEPLOYMENT", "NAME", "STATE", "READY", "REPLICAS", "HARDWARE", "WEIGHT", "MESSAGE"), rows)
    return 0


def _cost(kubeconfig: str | None, namespace: str | None, output: str) -> int:
    """Sum what the TogetherEndpoints' status says (the operator priced them), read through the kube API
    with the caller's own credentials: no Together key is needed, and RBAC decides what is seen."""
    import kubernetes
    from kubernetes.client.exceptions import ApiException

    from together_operator import pricing
    from together_operator.resource import GROUP, PLURAL, VERSION
    from together_operator.status_writer import StatusWriter

    config: Any = kubernetes.config  # partly untyped
    try:
        client = config.new_client_from_config(config_file=kubeconfig)
    except config.ConfigException:
        if kubeconfig is not None:
            raise
        config.load_incluster_config()
        client = kubernetes.client.ApiClient()
    with client:
        api: Any = kubernetes.client.CustomObjectsApi(client)  # answers are untyped JSON
        try:
            if namespace is None:
                listed = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            else:
                listed = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        except ApiException as error:
            print(
                f"together-operator: listing TogetherEndpoints: {error.status} {error.reason}",
                file=sys.stderr,
            )
            return 1
    costs = pricing.namespace_costs(
        (item["metadata"]["namespace"], StatusWriter.parse(item.get("status"))) for item in listed["items"]
    )
    if output == "json":
        rows = [
            {
                "namespace": c.namespace,
                "endpoints": c.endpoints,
                "running": c.running,
                "committedHourly": pricing.dollars(c.committed_hourly),
            }
            for c in costs
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = [
        (c.namespace, str(c.endpoints), str(c.running), pricing.dollars(c.committed_hourly)) for c in costs
    ]
    _print_table(("NAMESPACE", "ENDPOINTS", "RUNNING", "COMMITTED $/H"), table)
    return 0


def _short_state(state: str) -> str:
    return state.removeprefix("DEPLOYMENT_STATE_")


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
