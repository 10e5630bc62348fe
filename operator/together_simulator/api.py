"""Handlers of the v1 dedicated endpoint API, as endpoints-v1-openapi.yaml and the real service define it.

Where the spec is silent, the simulator follows what the vendor's CLI expects of the service:
- Validation errors answer 400; an unknown model or hardware not offered for the model answers 404
  with a message that says so and points at the hardware API.
- An endpoint that exists but belongs to another account (or to Together, for serverless ones)
  answers 403, as the spec's 'Unauthorized' responses and the CLI's "may belong to another user"
  hint suggest; an unknown id answers 404.
- `availability_zone` is read from the body or, as the vendor CLI sends it, from the query string.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from together_simulator.catalogue import Catalogue, HardwareOffer, HardwareStatus
from together_simulator.errors import (
    ApiError,
    check_autoscaling,
    read_json_object,
    validation_error,
)
from together_simulator.state import EndpointRecord, EndpointStore, NewEndpoint, iso_timestamp
from together_simulator.wire import (
    INT32_MAX,
    Autoscaling,
    AvailabilityZones,
    CreateEndpointRequest,
    DedicatedEndpoint,
    EndpointList,
    EndpointPricing,
    HardwareAvailability,
    HardwareList,
    HardwareSpec,
    HardwareWithStatus,
    ListEndpoint,
    UpdateEndpointRequest,
)

API_PREFIX = "/v1"
CREATE_ROUTE = "create_endpoint"
UPDATE_ROUTE = "update_endpoint"

ACCOUNT = web.RequestKey("account", str)
"""Where the auth middleware leaves the caller's account on the request."""


class TogetherApi:
    """The /v1 routes; the auth middleware has put the caller's account on each request."""

    def __init__(self, store: EndpointStore, catalogue: Catalogue, started_at: str) -> None:
        self._store = store
        self._catalogue = catalogue
        # The hardware list says when availability was last refreshed; here, when the simulator started.
        self._hardware_updated_at = started_at

    def routes(self) -> list[web.RouteDef]:
        endpoint = f"{API_PREFIX}/endpoints/{{endpoint_id}}"
        return [
            web.get(f"{API_PREFIX}/endpoints", self.list_endpoints, allow_head=False),
            web.post(f"{API_PREFIX}/endpoints", self.create_endpoint, name=CREATE_ROUTE),
            web.get(endpoint, self.get_endpoint, allow_head=False),
            web.patch(endpoint, self.update_endpoint, name=UPDATE_ROUTE),
            web.delete(endpoint, self.delete_endpoint),
            web.get(f"{API_PREFIX}/hardware", self.list_hardware, allow_head=False),
            web.get(f"{API_PREFIX}/clusters/availability-zones", self.availability_zones, allow_head=False),
        ]

    async def list_endpoints(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT]
        endpoint_type = _enum_query(request, "type", ("dedicated", "serverless"))
        usage_type = _enum_query(request, "usage_type", ("on-demand", "reserved"))
        mine = _bool_query(request, "mine")
        items: list[ListEndpoint] = []
        if endpoint_type in (None, "dedicated"):
            items += [
                self._list_item(record)
                for record in self._store.all()
                if record.owner == account and usage_type in (None, record.usage_type)
            ]
        # Serverless endpoints belong to Together and have no usage type.
        if endpoint_type in (None, "serverless") and not mine and usage_type is None:
            items += [
                ListEndpoint(
                    id=shared.id,
                    name=shared.name,
                    model=shared.model,
                    type="serverless",
                    owner=shared.owner,
                    state="STARTED",
                    created_at=shared.created_at,
                )
                for shared in self._catalogue.serverless_endpoints
            ]
        return _json(EndpointList(data=items))

    async def create_endpoint(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT]
        body = await read_json_object(request)
        if "availability_zone" not in body and "availability_zone" in request.query:
            body["availability_zone"] = request.query["availability_zone"]
        try:
            create = CreateEndpointRequest.model_validate(body)
        except ValidationError as error:
            raise validation_error(error) from error
        for param in ("model", "hardware"):
            if not getattr(create, param):
                raise ApiError(400, f"{param} is required", param=param)
        check_autoscaling(create.autoscaling.min_replicas, create.autoscaling.max_replicas)
        _check_inactive_timeout(create.inactive_timeout)
        model = self._catalogue.model(create.model)
        if model is None:
            raise ApiError(
                404,
                f"Model {create.model} not found or not supported for dedicated endpoints",
                param="model",
            )
        if create.hardware not in model.hardware:
            raise ApiError(
                404,
                f"Hardware {create.hardware} is not available for this model ({create.model}). "
                "Please check the hardware API for the configurations this model supports.",
                param="hardware",
            )
        zone = create.availability_zone
        if zone is not None and zone not in self._catalogue.availability_zones:
            raise ApiError(400, f"Invalid availability zone {zone}", param="availability_zone")
        record = self._store.create(
            NewEndpoint(
                owner=account,
                model=create.model,
                hardware=create.hardware,
                display_name=create.display_name,
                min_replicas=create.autoscaling.min_replicas,
                max_replicas=create.autoscaling.max_replicas,
                state=create.state,
                inactive_timeout=create.inactive_timeout,
                availability_zone=zone,
                disable_speculative_decoding=create.disable_speculative_decoding,
            )
        )
        return _json(self._dedicated(record))

    async def get_endpoint(self, request: web.Request) -> web.Response:
        return _json(self._dedicated(self._owned_record(request)))

    async def update_endpoint(self, request: web.Request) -> web.Response:
        record = self._owned_record(request)
        try:
            update = UpdateEndpointRequest.model_validate(await read_json_object(request))
        except ValidationError as error:
            raise validation_error(error) from error
        if update.autoscaling is not None:
            check_autoscaling(update.autoscaling.min_replicas, update.autoscaling.max_replicas)
        _check_inactive_timeout(update.inactive_timeout)
        if update.display_name is not None:
            record.display_name = update.display_name
        if update.autoscaling is not None:
            record.min_replicas = update.autoscaling.min_replicas
            record.max_replicas = update.autoscaling.max_replicas
        if "inactive_timeout" in update.model_fields_set:
            self._store.set_inactive_timeout(record, update.inactive_timeout)
        if update.state is not None:
            self._store.request_state(record, update.state)
        return _json(self._dedicated(record))

    async def delete_endpoint(self, request: web.Request) -> web.Response:
        record = self._owned_record(request)
        self._store.delete(record.id)
        return web.Response(status=204)

    async def list_hardware(self, request: web.Request) -> web.Response:
        model_id = request.query.get("model")
        offers: list[tuple[HardwareOffer, HardwareStatus | None]]
        if model_id is None:
            offers = [(offer, None) for offer in self._catalogue.hardware]
        else:
            # An unknown model simply has no compatible hardware.
            model = self._catalogue.model(model_id)
            statuses = model.hardware if model is not None else {}
            offers = [
                (offer, statuses[offer.id]) for offer in self._catalogue.hardware if offer.id in statuses
            ]
        data = [
            HardwareWithStatus(
                id=offer.id,
                pricing=EndpointPricing(cents_per_minute=offer.cents_per_minute),
                specs=HardwareSpec(
                    gpu_type=offer.gpu_type,
                    gpu_link=offer.gpu_link,
                    gpu_memory=offer.gpu_memory,
                    gpu_count=offer.gpu_count,
                ),
                availability=HardwareAvailability(status=status) if status is not None else None,
                updated_at=self._hardware_updated_at,
            )
            for offer, status in offers
        ]
        return _json(HardwareList(data=data))

    async def availability_zones(self, request: web.Request) -> web.Response:
        return _json(AvailabilityZones(avzones=list(self._catalogue.availability_zones)))

    def _owned_record(self, request: web.Request) -> EndpointRecord:
        endpoint_id = request.match_info["endpoint_id"]
        record = self._store.get(endpoint_id)
        if record is None:
            if any(shared.id == endpoint_id for shared in self._catalogue.serverless_endpoints):
                raise _not_yours(endpoint_id)
            raise ApiError(404, f"Endpoint {endpoint_id} not found", param="endpoint_id")
        if record.owner != request[ACCOUNT]:
            raise _not_yours(endpoint_id)
        return record

    def _dedicated(self, record: EndpointRecord) -> DedicatedEndpoint:
        return DedicatedEndpoint(
            id=record.id,
            name=record.name,
            display_name=record.display_name,
            model=record.model,
            hardware=record.hardware,
            owner=record.owner,
            state=self._store.state(record),
            autoscaling=Autoscaling(min_replicas=record.min_replicas, max_replicas=record.max_replicas),
            created_at=iso_timestamp(record.created_at),
        )

    def _list_item(self, record: EndpointRecord) -> ListEndpoint:
        return ListEndpoint(
            id=record.id,
            name=record.name,
            model=record.model,
            type="dedicated",
            owner=record.owner,
            state=self._store.state(record),
            created_at=iso_timestamp(record.created_at),
        )


def _json(body: DedicatedEndpoint | EndpointList | HardwareList | AvailabilityZones) -> web.Response:
    # exclude_none drops only the hardware `availability` (absent without ?model=); nothing else is optional.
    return web.json_response(body.model_dump(mode="json", exclude_none=True))


def _not_yours(endpoint_id: str) -> ApiError:
    return ApiError(
        403,
        f"You do not have permission to access endpoint {endpoint_id}",
        param="endpoint_id",
    )


def _check_inactive_timeout(minutes: int | None) -> None:
    if minutes is not None and not 0 <= minutes <= INT32_MAX:
        raise ApiError(400, f"inactive_timeout must be between 0 and {INT32_MAX}", param="inactive_timeout")


def _enum_query(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name)
    if value is not None and value not in allowed:
        raise ApiError(400, f"Invalid {name} {value!r}: expected one of {', '.join(allowed)}", param=name)
    return value


def _bool_query(request: web.Request, name: str) -> bool:
    value = request.query.get(name)
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ApiError(400, f"Invalid {name} {value!r}: expected true or false", param=name)
