"""The benchmark's baseline: the same reconcile core, but every resource polls its own endpoint.

Used only by the benchmark (`python -m kopf run --standalone bench/baseline_handlers.py`), never
shipped. One kopf daemon per TogetherEndpoint runs the product's pure `core.plan` and its
`StatusWriter` (which skips no-op patches), so the only difference from `together-operator run` is
how the remote side is observed: a `GET /endpoints/{id}` per resource per poll interval (the
transition interval while the endpoint changes state) instead of one shared list per credential.
It shares the product's process-wide `RateLimiter`. Deletion, Secrets, pause and connection
ConfigMaps are left out: the benchmark never uses them.

Settings come from the environment: TOGETHER_BASE_URL, TOGETHER_API_KEY, BENCH_POLL_INTERVAL,
BENCH_TRANSITION_POLL_INTERVAL, BENCH_RATE_LIMIT and BENCH_MAX_CONCURRENT_CALLS (the operator's
--max-concurrent-calls: without that cap, requests pile up in httpx's pool once the event loop lags,
and at N = 1,000 the baseline collapsed into PoolTimeouts).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from together_operator import core
from together_operator.core import CreateEndpoint, Found, Gone, Inputs, NotCreated, RemoteView
from together_operator.resource import (
    GROUP,
    PLURAL,
    RESTART_REQUESTED_ANNOTATION,
    VERSION,
    TogetherEndpointSpec,
    TogetherEndpointStatus,
)
from together_operator.status_writer import StatusWriter
from together_operator.together import NotFoundError, RateLimiter, TogetherClient, TogetherError

_log = logging.getLogger("bench.baseline")


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # The same kopf settings as together_operator.handlers.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config()
    configuration = kube_client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 32
    memo.api_client = kube_client.ApiClient(configuration)
    memo.status = StatusWriter(kube_client.CustomObjectsApi(memo.api_client))
    memo.api = TogetherClient(
        os.environ["TOGETHER_BASE_URL"],
        os.environ["TOGETHER_API_KEY"],
        rate_limiter=RateLimiter(
            float(os.environ.get("BENCH_RATE_LIMIT", "10")),
            max_concurrent=int(os.environ.get("BENCH_MAX_CONCURRENT_CALLS", "16")),
        ),
    )
    memo.poll_interval = float(os.environ.get("BENCH_POLL_INTERVAL", "30"))
    memo.transition_interval = float(os.environ.get("BENCH_TRANSITION_POLL_INTERVAL", "5"))


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.api.aclose()
    memo.api_client.close()


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def poll_endpoint(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    written: TogetherEndpointStatus | None = None
    while not stopped:
        try:
            written, in_transition = await _reconcile_once(body, memo, written)
            delay = memo.transition_interval if in_transition else memo.poll_interval
        except TogetherError as error:
            _log.warning("%s: %s", body["metadata"]["name"], error)
            delay = memo.poll_interval
        await stopped.wait(delay)


async def _reconcile_once(
    body: kopf.Body, memo: kopf.Memo, written: TogetherEndpointStatus | None
) -> tuple[TogetherEndpointStatus, bool]:
    meta = body["metadata"]
    spec = TogetherEndpointSpec.model_validate(dict(body.get("spec") or {}))
    previous = written or StatusWriter.parse(body.get("status"))
    api: TogetherClient = memo.api
    endpoint_id = previous.endpoint_id or spec.endpoint_id
    remote: RemoteView
    hardware = None
    if endpoint_id is None:
        remote = NotCreated()
        hardware = await api.list_hardware(spec.model)
    else:
        try:
            remote = Found(await api.get_endpoint(endpoint_id))  # the per-object poll
        except NotFoundError:
            remote = Gone(endpoint_id)
    inputs = Inputs(
        spec=spec,
        generation=meta.get("generation", 1),
        namespace=meta["namespace"],
        name=meta["name"],
        previous=previous,
        remote=remote,
        now=datetime.now(UTC).replace(microsecond=0),
        restart_requested_at=(meta.get("annotations") or {}).get(RESTART_REQUESTED_ANNOTATION),
        hardware_options=hardware,
    )
    plan = core.plan(inputs)
    for action in plan.actions:
        if isinstance(action, CreateEndpoint):
            await _write(memo, body, plan.status)
            _post(body, plan.events)  # as the operator does: "Creating" before the POST
            endpoint = await api.create_endpoint(action.request)
            previous = plan.status.model_copy(update={"endpoint_id": endpoint.id})
        elif isinstance(action, core.UpdateEndpoint):
            endpoint = await api.update_endpoint(action.endpoint_id, action.request)
        else:
            endpoint = await api.get_endpoint(action.endpoint_id)
        plan = core.plan(replace(inputs, previous=previous, remote=Found(endpoint)))
    if plan.status != written:  # the watch may not have brought our last write back yet
        await _write(memo, body, plan.status)
    _post(body, plan.events)
    return plan.status, plan.in_transition


def _post(body: kopf.Body, events: tuple[core.Event, ...]) -> None:
    for event in events:
        kopf.event(body, type=event.type.value, reason=event.reason, message=event.message)


async def _write(memo: kopf.Memo, body: kopf.Body, status: TogetherEndpointStatus) -> None:
    meta = body["metadata"]
    writer: StatusWriter = memo.status
    await writer.write(meta["namespace"], meta["name"], body.get("status"), status)
