"""Handlers of the v2 API (Dedicated Model Inference) and `GET /v3/whoami`, as the official SDK
`together==3.1.1` calls them and as the reference documents their rules; docs/together-v2.md lists
where the two disagree and which one is followed here.

- Every API key is scoped to one project: its account's (`V2Store.project`). Another project's
  endpoints answer 403; the platform project's public models and configs are readable by everyone.
- Names: lowercase letters, digits and dashes; unique per project (endpoints) or endpoint
  (deployments), 409 when taken; immutable (an update naming another name answers 400). Create and
  update accept the bare name or the qualified form, whose project slug must be the caller's.
- Updates: `updateMask` (query) names the fields, else the fields present in the body are updated; an
  empty `trafficSplit` without a mask counts as absent (proto3), so `{"trafficSplit": []}` alone
  answers `400 no fields to update`. A stale `etag` answers 409 on updates and deletes.
- Deletes: a deployment only when STOPPED and out of the traffic split, an endpoint only without
  deployments; both answer 400 otherwise (a failed precondition) and `{}` on success.
"""

from __future__ import annotations

import re
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from together_simulator.api import ACCOUNT
from together_simulator.errors import ApiError, read_json_object, validation_error
from together_simulator.state import iso_timestamp
from together_simulator.v2_catalogue import (
    PLATFORM_ORGANIZATION,
    PLATFORM_PROJECT,
    REGION_HEADROOM,
    ConfigRevision,
    InstanceTypeOffer,
    ModelResource,
    SupportedModelEntry,
    V2Catalogue,
)
from together_simulator.v2_listing import ListQuery, page
from together_simulator.v2_state import STOPPED, DeploymentRecord, EndpointRecord, Project, V2Store
from together_simulator.v2_wire import (
    Autoscaling,
    Certification,
    Config,
    CreateDeploymentRequest,
    CreateEndpointRequest,
    DeleteResponse,
    Deployment,
    DeploymentProfile,
    DeploymentStatus,
    DeploymentSummary,
    Endpoint,
    InstanceType,
    Model,
    ModelRevision,
    ModelWeights,
    Page,
    Region,
    RegionHeadroom,
    RegionReplicas,
    Selector,
    StatusDetails,
    SupportedModel,
    TrafficSplitEntry,
    UpdateDeploymentRequest,
    UpdateEndpointRequest,
    Whoami,
    WhoamiApiKey,
    WhoamiOrganization,
    WhoamiProject,
)

V2_PREFIX = "/v2"
WHOAMI_PATH = "/v3/whoami"
CREATE_ENDPOINT_ROUTE = "v2_create_endpoint"
CREATE_DEPLOYMENT_ROUTE = "v2_create_deployment"
UPDATE_DEPLOYMENT_ROUTE = "v2_update_deployment"

API_KEY = web.RequestKey("api_key", str)
"""Where the auth middleware leaves the caller's API key (whoami reports its id, never the key)."""

_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
ENDPOINT_FIELDS = ("name", "trafficSplit", "visibility")
DEPLOYMENT_FIELDS = ("name", "autoscaling", "inactiveTimeout", "maxConcurrentRequestsPerReplica")
ENDPOINT_FILTER_FIELDS = ("name", "created_at", "updated_at")
DEPLOYMENT_FILTER_FIELDS = ("name", "state", "model", "created_at", "updated_at")

RequestT = TypeVar("RequestT", bound=BaseModel)


class TogetherV2Api:
    """The /v2 and /v3/whoami routes; the auth middleware has put the caller's account on each request."""

    def __init__(self, store: V2Store, catalogue: V2Catalogue, started_at: str) -> None:
        self._store = store
        self._catalogue = catalogue
        # Catalogue entries were created and certified when the simulator started.
        self._catalogue_time = started_at

    def routes(self) -> list[web.RouteDef]:
        project = f"{V2_PREFIX}/projects/{{project_id}}"
        endpoint = f"{project}/endpoints/{{endpoint_id}}"
        deployment = f"{endpoint}/deployments/{{deployment_id}}"
        return [
            web.get(WHOAMI_PATH, self.whoami, allow_head=False),
            web.get(f"{project}/endpoints", self.list_endpoints, allow_head=False),
            web.post(f"{project}/endpoints", self.create_endpoint, name=CREATE_ENDPOINT_ROUTE),
            web.get(endpoint, self.get_endpoint, allow_head=False),
            web.patch(endpoint, self.update_endpoint),
            web.delete(endpoint, self.delete_endpoint),
            web.get(f"{endpoint}/deployments", self.list_deployments, allow_head=False),
            web.post(f"{endpoint}/deployments", self.create_deployment, name=CREATE_DEPLOYMENT_ROUTE),
            web.get(deployment, self.get_deployment, allow_head=False),
            web.patch(deployment, self.update_deployment, name=UPDATE_DEPLOYMENT_ROUTE),
            web.delete(deployment, self.delete_deployment),
            web.get(f"{V2_PREFIX}/supported-models", self.list_supported_models, allow_head=False),
            web.get(f"{V2_PREFIX}/supported-models/{{model_id}}", self.get_supported_model, allow_head=False),
            web.get(f"{project}/models", self.list_models, allow_head=False),
            web.get(f"{project}/models/{{model_id}}", self.get_model, allow_head=False),
            web.get(f"{project}/models/{{model_id}}/revisions", self.list_revisions, allow_head=False),
            web.get(f"{project}/configs", self.list_configs, allow_head=False),
            web.get(f"{project}/configs/{{config_id}}", self.get_config, allow_head=False),
            web.get(
                f"{V2_PREFIX}/public/inference-instance-types", self.list_instance_types, allow_head=False
            ),
            web.get(
                f"{V2_PREFIX}/public/inference-instance-types/{{type_id}}",
                self.get_instance_type,
                allow_head=False,
            ),
        ]

    # --- identity -----------------------------------------------------------------------------------

    async def whoami(self, request: web.Request) -> web.Response:
        project = self._project(request)
        account = request[ACCOUNT]
        return _json(
            Whoami(
                api_key=WhoamiApiKey(id=project.key_id),
                organization=WhoamiOrganization(id=project.organization_id, name=account),
                project=WhoamiProject(id=project.id, name=account, slug=project.slug),
            )
        )

    # --- endpoints ----------------------------------------------------------------------------------

    async def list_endpoints(self, request: web.Request) -> web.Response:
        project = self._own_project(request)
        records, cursor = page(
            self._store.endpoints(project.id),
            lambda record: {
                "name": f"{project.slug}/{record.name}",
                "created_at": iso_timestamp(record.created_at),
                "updated_at": iso_timestamp(record.updated_at),
            },
            ENDPOINT_FILTER_FIELDS,
            ListQuery.from_query(request.query),
        )
        return _json(
            Page[Endpoint](data=[self._endpoint(project, record) for record in records], next_cursor=cursor)
        )

    async def create_endpoint(self, request: web.Request) -> web.Response:
        project = self._own_project(request)
        create = _parse(CreateEndpointRequest, await read_json_object(request))
        name = _bare_name(create.name, project.slug, "name")
        if self._store.endpoint_named(project.id, name) is not None:
            raise ApiError(409, f"endpoint {project.slug}/{name} already exists", param="name")
        record = self._store.create_endpoint(project.id, name, create.visibility)
        return _json(self._endpoint(project, record))

    async def get_endpoint(self, request: web.Request) -> web.Response:
        project = self._own_project(request)
        return _json(self._endpoint(project, self._endpoint_record(request, project)))

    async def update_endpoint(self, request: web.Request) -> web.Response:
        project = self._own_project(request)
        record = self._endpoint_record(request, project)
        update = _parse(UpdateEndpointRequest, await read_json_object(request))
        _check_etag(update.etag, record.etag, "endpoint")
        fields = _fields_to_update(request, update, ENDPOINT_FIELDS)
        if "name" in fields and _bare_name(update.name or "", project.slug, "name") != record.name:
            raise ApiError(400, "endpoint names are immutable", param="name")
        if "trafficSplit" in fields:
            record.traffic_split = self._traffic_split(record, update.traffic_split or [])
        if "visibility" in fields and update.visibility is not None:
            record.visibility = update.visibility
        self._store.touch_endpoint(record)
        return _json(self._endpoint(project, record))

    async def delete_endpoint(self, request: web.Request) -> web.Response:
        project = self._own_project(request)
        record = self._endpoint_record(request, project)
        _check_etag(request.query.get("etag"), record.etag, "endpoint")
        if record.deployments:
            raise ApiError(
                400,
                f"endpoint {record.id} still has {len(record.deployments)} deployment(s); delete them first",
                code="failed_precondition",
            )
        self._store.delete_endpoint(record)
        return _json(DeleteResponse())

    # --- deployments --------------------------------------------------------------------------------

    async def list_deployments(self, request: web.Request) -> web.Response:
        project = self._own_project(request)
        endpoint = self._endpoint_record(request, project)
        records, cursor = page(
            list(endpoint.deployments.values()),
            lambda record: {
                "name": f"{project.slug}/{endpoint.name}/{record.name}",
                "state": self._store.phase(record).state,
                "model": record.model.resource,
                "created_at": iso_timestamp(record.created_at),
                "updated_at": iso_timestamp(record.updated_at),
            },
            DEPLOYMENT_FILTER_FIELDS,
            ListQuery.from_query(request.query),
        )
        deployments = [self._deployment(project, endpoint, record) for record in records]
        return _json(Page[Deployment](data=deployments, next_cursor=cursor))

    async def create_deployment(self, request: web.Request) -> web.Response:
        project = self._own_project(request)
        endpoint = self._endpoint_record(request, project)
        create = _parse(CreateDeploymentRequest, await read_json_object(request))
        name = _bare_name(create.name, f"{project.slug}/{endpoint.name}", "name")
        if any(existing.name == name for existing in endpoint.deployments.values()):
            raise ApiError(409, f"deployment {name} already exists in endpoint {endpoint.id}", param="name")
        model = self._model_of(create)
        config = self._config_of(create)
        if config.model != model:
            raise ApiError(
                400, f"config {config.resource} is not compatible with model {model.resource}", param="config"
            )
        autoscaling = _autoscaling_on_create(create.autoscaling)
        _check_inactive_timeout(create.inactive_timeout)
        record = self._store.create_deployment(
            endpoint,
            name,
            model,
            config,
            autoscaling,
            create.inactive_timeout,
            create.max_concurrent_requests_per_replica,
            # A dry run answers with the deployment it would create.
            validate_only=request.query.get("validateOnly", "").lower() == "true",
        )
        return _json(self._deployment(project, endpoint, record))

    async def get_deployment(self, request: web.Request) -> web.Response:
        project = self._own_project(request)
        endpoint = self._endpoint_record(request, project)
        return _json(self._deployment(project, endpoint, self._deployment_record(request, endpoint)))

    async def update_deployment(self, request: web.Request) -> web.Response:
        project = self._own_project(request)
        endpoint = self._endpoint_record(request, project)
        record = self._deployment_record(request, endpoint)
        update = _parse(UpdateDeploymentRequest, await read_json_object(request))
        _check_etag(update.etag, record.etag, "deployment")
        fields = _fields_to_update(request, update, DEPLOYMENT_FIELDS)
        if (
            "name" in fields
            and _bare_name(update.name or "", f"{project.slug}/{endpoint.name}", "name") != record.name
        ):
            raise ApiError(400, "deployment names are immutable", param="name")
        if "inactiveTimeout" in fields:
            _check_inactive_timeout(update.inactive_timeout)
            record.inactive_timeout = update.inactive_timeout
        if "maxConcurrentRequestsPerReplica" in fields:
            record.max_concurrent_requests_per_replica = update.max_concurrent_requests_per_replica
        if "autoscaling" in fields and update.autoscaling is not None:
            self._store.set_autoscaling(
                record, _autoscaling_on_update(record.autoscaling, update.autoscaling)
            )
        self._store.touch_deployment(record)
        return _json(self._deployment(project, endpoint, record))

    async def delete_deployment(self, request: web.Request) -> web.Response:
        project = self._own_project(request)
        endpoint = self._endpoint_record(request, project)
        record = self._deployment_record(request, endpoint)
        _check_etag(request.query.get("etag"), record.etag, "deployment")
        if self._store.phase(record).state != STOPPED:
            raise ApiError(
                400,
                f"deployment {record.id} must be stopped before it can be deleted: scale it to 0/0 and wait "
                "for DEPLOYMENT_STATE_STOPPED",
                code="failed_precondition",
            )
        if record.id in endpoint.traffic_split:
            raise ApiError(
                400,
                f"deployment {record.id} is in the traffic split of endpoint {endpoint.id}; remove it first",
                code="failed_precondition",
            )
        self._store.delete_deployment(endpoint, record)
        self._store.touch_endpoint(endpoint)
        return _json(DeleteResponse())

    # --- catalogue ----------------------------------------------------------------------------------

    async def list_supported_models(self, request: web.Request) -> web.Response:
        search = request.query.get("search", "").lower()
        entries = [entry for entry in self._catalogue.supported if search in entry.model.name.lower()]
        query = ListQuery.from_query({key: value for key, value in request.query.items() if key != "search"})
        selected, cursor = page(entries, lambda _: {"created_at": self._catalogue_time}, (), query)
        return _json(
            Page[SupportedModel](data=[self._supported(entry) for entry in selected], next_cursor=cursor)
        )

    async def get_supported_model(self, request: web.Request) -> web.Response:
        entry = self._catalogue.supported_model(request.match_info["model_id"])
        if entry is None:
            raise ApiError(404, f"supported model {request.match_info['model_id']} not found")
        return _json(self._supported(entry))

    async def list_models(self, request: web.Request) -> web.Response:
        models = self._catalogue.models if self._readable_project(request) == PLATFORM_PROJECT else []
        selected, cursor = page(
            models, lambda _: {"created_at": self._catalogue_time}, (), ListQuery.from_query(request.query)
        )
        return _json(Page[Model](data=[_model(model) for model in selected], next_cursor=cursor))

    async def get_model(self, request: web.Request) -> web.Response:
        return _json(_model(self._model_in_path(request)))

    async def list_revisions(self, request: web.Request) -> web.Response:
        model = self._model_in_path(request)
        revision = ModelRevision(created_at=self._catalogue_time, revision_id=model.revision_id)
        return _json(Page[ModelRevision](data=[revision]))

    async def list_configs(self, request: web.Request) -> web.Response:
        configs = self._catalogue.configs if self._readable_project(request) == PLATFORM_PROJECT else []
        reference_model = request.query.get("referenceModel")
        reference_model_id = request.query.get("referenceModelId")
        configs = [
            config
            for config in configs
            if reference_model in (None, config.model.resource)
            and reference_model_id in (None, config.model.id)
        ]
        selected, cursor = page(
            configs, lambda _: {"created_at": self._catalogue_time}, (), ListQuery.from_query(request.query)
        )
        return _json(Page[Config](data=[self._config(config) for config in selected], next_cursor=cursor))

    async def get_config(self, request: web.Request) -> web.Response:
        config = self._catalogue.config(request.match_info["config_id"])
        if config is None or self._readable_project(request) != PLATFORM_PROJECT:
            raise ApiError(404, f"config {request.match_info['config_id']} not found")
        return _json(self._config(config))

    async def list_instance_types(self, request: web.Request) -> web.Response:
        return _json(
            Page[InstanceType](data=[self._instance_type(offer) for offer in self._catalogue.instance_types])
        )

    async def get_instance_type(self, request: web.Request) -> web.Response:
        offer = self._catalogue.instance_type(request.match_info["type_id"])
        if offer is None:
            raise ApiError(404, f"instance type {request.match_info['type_id']} not found")
        return _json(self._instance_type(offer))

    # --- look-ups -----------------------------------------------------------------------------------

    def _project(self, request: web.Request) -> Project:
        return self._store.project(request[ACCOUNT], request[API_KEY])

    def _own_project(self, request: web.Request) -> Project:
        project = self._project(request)
        if request.match_info["project_id"] != project.id:
            raise ApiError(
                403, f"You do not have permission to access project {request.match_info['project_id']}"
            )
        return project

    def _readable_project(self, request: web.Request) -> str:
        """The project in the path if the caller may read its models and configs: its own, the platform's."""
        project_id = request.match_info["project_id"]
        if project_id != PLATFORM_PROJECT:
            self._own_project(request)
        return project_id

    def _endpoint_record(self, request: web.Request, project: Project) -> EndpointRecord:
        endpoint_id = request.match_info["endpoint_id"]
        record = self._store.endpoint(project.id, endpoint_id)
        if record is None:
            raise ApiError(404, f"endpoint {endpoint_id} not found", param="endpoint_id")
        return record

    def _deployment_record(self, request: web.Request, endpoint: EndpointRecord) -> DeploymentRecord:
        deployment_id = request.match_info["deployment_id"]
        record = self._store.deployment(endpoint, deployment_id)
        if record is None:
            raise ApiError(404, f"deployment {deployment_id} not found", param="deployment_id")
        return record

    def _model_in_path(self, request: web.Request) -> ModelResource:
        model = self._catalogue.model(request.match_info["model_id"])
        if model is None or self._readable_project(request) != PLATFORM_PROJECT:
            raise ApiError(404, f"model {request.match_info['model_id']} not found")
        return model

    def _model_of(self, create: CreateDeploymentRequest) -> ModelResource:
        """The model a create names: `model` (a resource name, revision optional), else `modelId`."""
        if create.model:
            match = re.fullmatch(r"projects/([^/]+)/models/([^/]+)(?:/revisions/([^/]+))?", create.model)
            if match is None:
                raise ApiError(400, f"model {create.model!r} is not a model resource name", param="model")
            project_id, model_id, revision = match.groups()
        elif create.model_id:
            project_id, model_id, revision = PLATFORM_PROJECT, create.model_id, create.model_revision_id
        else:
            raise ApiError(400, "model is required", param="model")
        model = self._catalogue.model(model_id)
        if model is None or project_id != PLATFORM_PROJECT or model.is_speculator:
            raise ApiError(
                404, f"model {create.model or model_id} not found or not deployable", param="model"
            )
        if revision is not None and revision != model.revision_id:
            raise ApiError(404, f"revision {revision} of model {model.id} not found", param="model")
        return model

    def _config_of(self, create: CreateDeploymentRequest) -> ConfigRevision:
        if create.config:
            match = re.fullmatch(r"projects/([^/]+)/configs/([^/]+)", create.config)
            if match is None:
                raise ApiError(400, f"config {create.config!r} is not a config resource name", param="config")
            project_id, config_id = match.groups()
        elif create.config_id:
            project_id, config_id = PLATFORM_PROJECT, create.config_id
        else:
            raise ApiError(400, "config is required", param="config")
        config = self._catalogue.config(config_id)
        if config is None or project_id != PLATFORM_PROJECT:
            raise ApiError(404, f"config {create.config or config_id} not found", param="config")
        return config

    def _traffic_split(self, endpoint: EndpointRecord, entries: list[TrafficSplitEntry]) -> dict[str, float]:
        split: dict[str, float] = {}
        for entry in entries:
            if entry.deployment_id not in endpoint.deployments:
                raise ApiError(
                    400,
                    f"deployment {entry.deployment_id} is not a deployment of endpoint {endpoint.id}",
                    param="trafficSplit",
                )
            if entry.deployment_id in split:
                raise ApiError(400, f"deployment {entry.deployment_id} appears twice", param="trafficSplit")
            split[entry.deployment_id] = entry.weight
        # A weight of 0 takes the deployment out of the split.
        return {deployment_id: weight for deployment_id, weight in split.items() if weight > 0}

    # --- views --------------------------------------------------------------------------------------

    def _endpoint(self, project: Project, record: EndpointRecord) -> Endpoint:
        shares = self._store.traffic_shares(record)
        summaries = []
        for deployment in record.deployments.values():
            replicas = self._store.replicas(deployment)
            summaries.append(
                DeploymentSummary(
                    id=deployment.id,
                    autoscaling=deployment.autoscaling,
                    created_at=iso_timestamp(deployment.created_at),
                    estimated_effective_traffic_share=shares.get(deployment.id, 0.0),
                    model=deployment.model.pinned,
                    model_id=deployment.model.id,
                    name=f"{project.slug}/{record.name}/{deployment.name}",
                    state=self._store.phase(deployment).state,
                    desired_replicas=replicas.desired,
                    hardware=deployment.config.hardware,
                    ready_replicas=replicas.ready,
                )
            )
        return Endpoint(
            id=record.id,
            created_at=iso_timestamp(record.created_at),
            deployments=summaries,
            etag=record.etag,
            name=f"{project.slug}/{record.name}",
            project_id=record.project_id,
            traffic_split=[
                TrafficSplitEntry(deployment_id=deployment_id, weight=weight)
                for deployment_id, weight in record.traffic_split.items()
            ],
            updated_at=iso_timestamp(record.updated_at),
            visibility=record.visibility,
        )

    def _deployment(self, project: Project, endpoint: EndpointRecord, record: DeploymentRecord) -> Deployment:
        phase = self._store.phase(record)
        replicas = self._store.replicas(record)
        regions = (
            [
                RegionReplicas(
                    region=self._catalogue.zones[0],
                    ready_replicas=replicas.ready,
                    scheduled_replicas=replicas.scheduled,
                )
            ]
            if replicas.scheduled and self._catalogue.zones
            else []
        )
        speculator = record.config.speculator
        return Deployment(
            id=record.id,
            autoscaling=record.autoscaling,
            config=record.config.resource,
            config_id=record.config.id,
            created_at=iso_timestamp(record.created_at),
            endpoint_id=endpoint.id,
            etag=record.etag,
            hardware=record.config.hardware,
            model=record.model.pinned,
            model_id=record.model.id,
            model_revision_id=record.model.revision_id,
            name=f"{project.slug}/{endpoint.name}/{record.name}",
            project_id=record.project_id,
            status=DeploymentStatus(
                state=phase.state,
                message=phase.message,
                ready_replicas=replicas.ready,
                scheduled_replicas=replicas.scheduled,
                details=StatusDetails(region=regions),
            ),
            updated_at=iso_timestamp(record.updated_at),
            desired_replicas=replicas.desired,
            estimated_effective_traffic_share=self._store.traffic_shares(endpoint).get(record.id, 0.0),
            inactive_timeout=record.inactive_timeout,
            max_concurrent_requests_per_replica=record.max_concurrent_requests_per_replica,
            speculator=speculator.pinned if speculator else None,
            speculator_id=speculator.id if speculator else None,
        )

    def _config(self, config: ConfigRevision) -> Config:
        draft = config.speculator.resource if config.speculator else None
        return Config(
            id=config.id,
            certifications=[
                Certification(
                    certified_at=self._catalogue_time,
                    model=config.model.resource,
                    model_revision_id=config.model.revision_id,
                    draft_model=draft,
                )
            ],
            project_id=PLATFORM_PROJECT,
            reference_model=config.model.resource,
            reference_model_id=config.model.id,
            selectors=[
                Selector(key="accelerator_type", value=config.gpu_type),
                Selector(key="accelerator_count", value=str(config.gpu_count)),
            ],
            draft_model=draft,
        )

    def _supported(self, entry: SupportedModelEntry) -> SupportedModel:
        model = entry.model
        publisher = model.name.split("/")[0]
        return SupportedModel(
            id=entry.id,
            base_model=model.resource,
            base_model_id=model.id,
            created_at=self._catalogue_time,
            deployment_profiles=[
                DeploymentProfile(
                    certified_config_revision_id=config.id,
                    certified_model_revision_id=model.revision_id,
                    config=config.resource,
                    gpu_count=config.gpu_count,
                    gpu_type=config.gpu_type,
                    model=model.pinned,
                    model_name=model.name,
                    parallelism=f"TP{config.gpu_count}",
                    profile_id=config.id,
                )
                for config in entry.configs
            ],
            display_name=model.name.split("/")[-1],
            name=model.name,
            publisher=publisher,
            updated_at=self._catalogue_time,
        )

    def _instance_type(self, offer: InstanceTypeOffer) -> InstanceType:
        spec = offer.offer
        return InstanceType(
            id=offer.id,
            description=f"{spec.gpu_count}x NVIDIA {spec.gpu_type.upper()} ({spec.gpu_link})",
            gpu_count=spec.gpu_count,
            gpu_memory_gib=round(spec.gpu_memory),
            gpu_type=spec.gpu_type.split("-")[0].upper(),
            name=offer.name,
            price_cents_per_hour=offer.price_cents_per_hour,
            regions=[
                Region(name=zone, headroom=RegionHeadroom(relation="RELATION_GTE", value=REGION_HEADROOM))
                for zone in self._catalogue.zones
            ],
        )


def _model(model: ModelResource) -> Model:
    return Model(
        id=model.id,
        name=model.name,
        organization_id=PLATFORM_ORGANIZATION,
        project_id=PLATFORM_PROJECT,
        weights=ModelWeights(
            type="WEIGHTS_TYPE_SPECULATOR" if model.is_speculator else "WEIGHTS_TYPE_DEFAULT"
        ),
    )


def _json(body: BaseModel) -> web.Response:
    return web.json_response(body.model_dump(mode="json", by_alias=True, exclude_none=True))


def _parse(model: type[RequestT], body: dict[str, object]) -> RequestT:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise validation_error(error) from error


def _bare_name(name: str, qualifier: str, param: str) -> str:
    """`name` without its qualifier (`<slug>/` or `<slug>/<endpoint>/`), which must be the caller's own."""
    bare = name
    if "/" in name:
        prefix, _, bare = name.rpartition("/")
        if prefix != qualifier:
            raise ApiError(400, f"{name!r} is qualified by {prefix!r}, not by {qualifier!r}", param=param)
    if _NAME.fullmatch(bare) is None:
        raise ApiError(
            400,
            f"invalid name {bare!r}: lowercase letters, digits and dashes, 1 to 63 characters",
            param=param,
        )
    return bare


def _check_etag(sent: str | None, current: str, kind: str) -> None:
    if sent and sent != current:
        raise ApiError(
            409, f"the {kind} has changed since it was read (stale etag); read it again", code="aborted"
        )


def _fields_to_update(request: web.Request, update: BaseModel, known: tuple[str, ...]) -> set[str]:
    mask = request.query.get("updateMask")
    if mask is not None:
        fields = {field.strip() for field in mask.split(",") if field.strip()}
        unknown = fields - set(known)
        if unknown:
            raise ApiError(
                400, f"unknown field(s) in updateMask: {', '.join(sorted(unknown))}", param="updateMask"
            )
    else:
        # Without a mask the populated fields are updated; an empty list is not populated (proto3).
        sent = update.model_dump(by_alias=True, exclude_none=True, exclude={"etag"})
        fields = {name for name, value in sent.items() if value != []}
    if not fields:
        raise ApiError(400, "no fields to update")
    return fields


def _autoscaling_on_create(autoscaling: Autoscaling) -> Autoscaling:
    """maxReplicas defaults to minReplicas."""
    min_replicas = autoscaling.min_replicas or 0
    max_replicas = autoscaling.max_replicas if autoscaling.max_replicas is not None else min_replicas
    return _checked(
        autoscaling.model_copy(update={"min_replicas": min_replicas, "max_replicas": max_replicas})
    )


def _autoscaling_on_update(current: Autoscaling, update: Autoscaling) -> Autoscaling:
    """A bound left out keeps its value; other settings sent replace the current ones (as models, not
    dumped dicts, which the response would serialise with a warning)."""
    changes = {field: getattr(update, field) for field in update.model_fields_set}
    return _checked(current.model_copy(update=changes))


def _checked(autoscaling: Autoscaling) -> Autoscaling:
    min_replicas, max_replicas = autoscaling.min_replicas or 0, autoscaling.max_replicas or 0
    if min_replicas > max_replicas:
        raise ApiError(
            400,
            f"minReplicas ({min_replicas}) cannot be greater than maxReplicas ({max_replicas})",
            param="autoscaling.minReplicas",
        )
    if min_replicas == 0 and max_replicas > 0:
        raise ApiError(
            400,
            "minReplicas must be at least 1 on a running deployment; set both bounds to 0 to stop it",
            param="autoscaling.minReplicas",
        )
    return autoscaling


def _check_inactive_timeout(minutes: int | None) -> None:
    if minutes and not 30 <= minutes <= 1440:
        raise ApiError(
            400, "inactiveTimeout must be 0 or between 30 and 1440 minutes", param="inactiveTimeout"
        )
