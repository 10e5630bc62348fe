"""kopf handlers: thin adapters from kopf's callbacks to the `Reconciler` (shell.py).

One daemon per TogetherEndpoint runs its reconcile loop; watch events wake it when the spec or one of
our annotations changes; the delete handler holds the finalizer until the remote endpoint is gone.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes import client as kube_client

from together_operator.clients import TogetherClients
from together_operator.connection import ConnectionPublisher
from together_operator.core import Event, KeepFinalizer, OtherResources, RetryPolicy
from together_operator.credentials import CredentialResolver
from together_operator.metrics import OperatorMetrics
from together_operator.poller import Poller, PollIntervals
from together_operator.resource import GROUP, PLURAL, VERSION
from together_operator.settings import OperatorConfig
from together_operator.shell import Reconciler, ReconcilerSettings
from together_operator.startup import FINALIZER, configure_kopf, kubernetes_api
from together_operator.status_writer import StatusWriter
from together_operator.together import RateLimiter


def _post_event(body: Any, event: Event) -> None:
    kopf.event(body, type=event.type.value, reason=event.reason, message=event.message)


def reconciler_settings(config: OperatorConfig) -> ReconcilerSettings:
    """What the reconciler takes from `together-operator run`'s flags."""
    return ReconcilerSettings(
        base_url=config.base_url,
        finalizer=FINALIZER,
        resync_interval=config.resync_interval,
        transition_check=config.transition_poll_interval,
        retry=RetryPolicy(
            transient_seconds=config.transient_retry_interval,
            auth_seconds=config.stalled_retry_interval,
            credentials_seconds=config.stalled_retry_interval,
        ),
    )


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorConfig = memo.config
    configure_kopf(settings)
    api = kubernetes_api()
    memo.api_client = api
    metrics = OperatorMetrics()
    rate_limiter = RateLimiter(config.rate_limit, max_concurrent=config.max_concurrent_calls)
    memo.clients = TogetherClients(config.base_url, rate_limiter, transport=metrics.transport)
    memo.poller = Poller(
        PollIntervals(steady=config.poll_interval, transition=config.transition_poll_interval),
        on_cycle=metrics.poll_seconds.observe,
    )
    memo.reconciler = Reconciler(
        reconciler_settings(config),
        CredentialResolver(kube_client.CoreV1Api(api), config.api_key),
        memo.clients,
        memo.poller,
        StatusWriter(kube_client.CustomObjectsApi(api)),
        ConnectionPublisher(kube_client.CoreV1Api(api)),
        metrics,
        _post_event,
    )

    metrics.watch_resources(memo.reconciler.statuses, lambda: rate_limiter.waited_seconds)
    if config.metrics_port:
        try:
            metrics.serve(config.metrics_host, config.metrics_port)
        except OSError as error:  # a taken port will not free itself: stop now, say why
            raise kopf.PermanentError(
                f"cannot serve metrics on {config.metrics_host}:{config.metrics_port}: {error}; "
                "choose another --metrics-port, or 0 to turn metrics off"
            ) from error


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.poller.close()
    await memo.clients.close()
    memo.api_client.close()


@kopf.index(GROUP, VERSION, PLURAL)
def endpoint_owners(body: kopf.Body, **_: Any) -> dict[str, tuple[str, str]]:
    """endpoint id -> (uid, namespace/name) of every TogetherEndpoint whose status recorded it: the
    resource that created or adopted an endpoint owns it."""
    endpoint_id = (body.get("status") or {}).get("endpointId")
    meta = body["metadata"]
    return {endpoint_id: (meta["uid"], f"{meta['namespace']}/{meta['name']}")} if endpoint_id else {}


@kopf.index(GROUP, VERSION, PLURAL)
def open_creates(body: kopf.Body, **_: Any) -> dict[tuple[str, str, str], tuple[str, str, str]]:
    """(model, hardware, display name) a create sent -> (uid, namespace/name, createRequestedAt) of every
    TogetherEndpoint whose create is open (intent recorded, no endpoint id): no two resources that sent
    the same create may adopt one endpoint."""
    status = body.get("status") or {}
    intent, requested_at = status.get("createIntent"), status.get("createRequestedAt")
    if not intent or not requested_at or status.get("endpointId"):
        return {}
    meta = body["metadata"]
    key = (intent.get("model", ""), intent.get("hardware", ""), intent.get("displayName", ""))
    return {key: (meta["uid"], f"{meta['namespace']}/{meta['name']}", requested_at)}


def _others(kwargs: dict[str, Any]) -> OtherResources:
    # kopf passes each index as a keyword named after its function.
    return OtherResources(owners=kwargs["endpoint_owners"], open_creates=kwargs["open_creates"])


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def run_endpoint(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **kwargs: Any) -> None:
    await memo.reconciler.run(body, stopped.wait(), _others(kwargs))


def _changed_for_reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    return "reconciler" in memo and bool(memo.reconciler.wants_wake(body))


# Filtered, so that the many status-only events neither run nor log a handler.
@kopf.on.event(GROUP, VERSION, PLURAL, when=_changed_for_reconcile)
def wake_reconciler(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.reconciler.wake(body)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete_endpoint(
    body: kopf.Body,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **kwargs: Any,
) -> None:
    outcome = await memo.reconciler.delete(body, _others(kwargs))
    if isinstance(outcome, KeepFinalizer):
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)
    logger.info(outcome.message)
    kopf.event(body, type="Normal", reason="Deleted", message=outcome.message)
