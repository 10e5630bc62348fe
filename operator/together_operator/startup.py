"""What the operator process sets up around its handlers: kopf's settings and the Kubernetes API
client. Apart from handlers.py so that importing it registers no handler: the benchmark's baseline
(bench/baseline_handlers.py) runs its own handlers with the same set-up."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import kopf
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from together_operator.resource import GROUP

FINALIZER = "together.ai/finalizer"

KOPF_REQUESTS_IN_FLIGHT = 16
"""kopf's own apiserver requests (patches, Events, lists) open at once; watch streams are not counted."""


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Our finalizer, kopf's own state in annotations of our group, Events from INFO up, watch
    timeouts."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30


def kubernetes_api() -> kube_client.ApiClient:
    """A client for the cluster the operator runs in, or else the one of the kubeconfig."""
    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config()
    configuration = kube_client.Configuration.get_default_copy()
    # Status writes run in threads; a pool smaller than the thread count only logs warnings and waits.
    configuration.connection_pool_maxsize = 32
    return kube_client.ApiClient(configuration)


def bounded_requests(limit: int) -> aiohttp.ClientMiddlewareType:
    """An aiohttp middleware that lets at most `limit` requests other than watches hold a connection.

    kopf's own session has no connection limit: a burst of N new resources sends N finalizer patches
    and N Events at once over N new TLS connections, whose 128 KiB buffers stay in the heap afterwards
    (docs/performance.md, finding 1). A connector limit would also count the watch streams, which hold
    a connection each for their lifetime (one per watched namespace, more as matching namespaces
    appear), and could starve them; watches therefore pass unbounded. The body is read inside the
    bound so that the connection is back in the pool when the next request takes the slot."""
    slots = asyncio.Semaphore(limit)

    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if request.url.query.get("watch") == "true":
            return await handler(request)
        async with slots:
            response = await handler(request)
            await response.read()
            return response

    return middleware


async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's own credentials (in-cluster, else the kubeconfig), in a session whose requests are bounded
    by `bounded_requests`."""
    info = kopf.login_via_client(**kwargs)
    if info is None:
        return None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        middlewares=(bounded_requests(KOPF_REQUESTS_IN_FLIGHT),),
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        aiohttp_session=session,
    )
