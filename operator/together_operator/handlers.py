"""kopf handlers: thin adapters from kopf's callbacks to the `Reconciler` (shell.py).

One daemon per TogetherEndpoint runs its reconcile loop; watch events wake it when the spec or one of
our annotations changes; the delete handler holds the finalizer until the remote endpoint is gone.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client as kube_client
from kubernetes.client.exceptions import ApiException

from together_operator import budget
from together_operator.budget import BudgetBook
from together_operator.clients import TogetherClients
from together_operator.connection import ConnectionPublisher
from together_operator.core import Event, KeepFinalizer, OtherResources, RetryPolicy, secret_in_use
from together_operator.credentials import CredentialResolver
from together_operator.metrics import OperatorMetrics
from together_operator.ownership import Ownership
from together_operator.poller import Poller, PollIntervals, ResyncBudget
from together_operator.resource import GROUP, PLURAL, VERSION, TogetherEndpointSpec
from together_operator.secret_guard import SecretGuard
from together_operator.settings import OperatorConfig
from together_operator.shell import Reconciler, ReconcilerSettings
from together_operator.startup import FINALIZER, configure_kopf, kubernetes_api, login
from together_operator.status_writer import StatusWriter
from together_operator.together import RateLimiter
from together_operator.v2_core import migrating_from
from together_operator.v2_shell import V2Clients, V2EndpointLists, V2Reconciler, V2Settings

# Seconds between two looks at what a namespace commits, for its budgets' status.
BUDGET_STATUS_INTERVAL = 10.0


def _post_event(body: Any, event: Event) -> None:
    kopf.event(body, type=event.type.value, reason=event.reason, message=event.message)


kopf.on.login()(login)


def reconciler_settings(config: OperatorConfig) -> ReconcilerSettings:
    """What the reconciler takes from `together-operator run`'s flags."""
    return ReconcilerSettings(
        base_url=config.base_url,
        finalizer=FINALIZER,
        transition_check=config.transition_poll_interval,
        retry=RetryPolicy(
            transient_seconds=config.transient_retry_interval,
            auth_seconds=config.stalled_retry_interval,
            credentials_seconds=config.stalled_retry_interval,
        ),
        default_api=config.default_api,
        creates_under_way=config.creates_under_way,
    )


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorConfig = memo.config
    configure_kopf(settings)
    api = kubernetes_api()
    memo.api_client = api
    memo.budgets = BudgetBook()
    metrics = OperatorMetrics()
    rate_limiter = RateLimiter(config.rate_limit, max_concurrent=config.max_concurrent_calls)
    memo.clients = TogetherClients(config.base_url, rate_limiter, transport=metrics.transport)
    memo.poller = Poller(
        PollIntervals(steady=config.poll_interval, transition=config.transition_poll_interval),
        on_cycle=metrics.poll_seconds.observe,
        resync=ResyncBudget(calls_per_second=config.resync_budget, min_period=config.resync_interval),
    )
    flags = reconciler_settings(config)
    memo.v2_clients = V2Clients(config.base_url, rate_limiter, transport=metrics.transport)
    memo.v2_lists = V2EndpointLists(
        PollIntervals(steady=config.poll_interval, transition=config.transition_poll_interval)
    )
    memo.reconciler = Reconciler(
        flags,
        CredentialResolver(kube_client.CoreV1Api(api), config.api_key),
        memo.clients,
        memo.poller,
        StatusWriter(kube_client.CustomObjectsApi(api)),
        ConnectionPublisher(kube_client.CoreV1Api(api)),
        metrics,
        _post_event,
        Ownership(kube_client.CoordinationV1Api(api), kube_client.CoreV1Api(api), config.claims_namespace),
        SecretGuard(kube_client.CoreV1Api(api)),
        budgets=memo.budgets,
        v2=V2Reconciler(
            V2Settings(config.v2_inference_url, retry=flags.retry, resync_interval=config.resync_interval),
            memo.v2_clients,
            memo.v2_lists,
            memo.clients,
        ),
    )

    metrics.watch_resources(memo.reconciler.statuses, lambda: rate_limiter.waited_seconds)
    metrics.watch_costs(memo.reconciler.hourly_costs)
    metrics.watch_budget_limits(memo.budgets.hourly_limits)
    memo.budget_statuses = asyncio.create_task(_write_budget_statuses(memo))
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
    memo.budget_statuses.cancel()
    await memo.poller.close()
    await memo.v2_lists.close()
    await memo.clients.close()
    await memo.v2_clients.close()
    memo.api_client.close()


@kopf.index(GROUP, VERSION, PLURAL)
def endpoint_owners(body: kopf.Body, **_: Any) -> dict[str, tuple[str, str]]:
    """endpoint id -> (uid, namespace/name) of every TogetherEndpoint whose status recorded it: the
    resource that created or adopted an endpoint owns it, and a v1 -> v2 migration keeps owning the
    v1 endpoint it replaces (status.rollout.from) until that endpoint is deleted."""
    status = StatusWriter.parse(body.get("status"))
    meta = body["metadata"]
    owner = (meta["uid"], f"{meta['namespace']}/{meta['name']}")
    owned = (status.endpoint_id, migrating_from(status))
    return {endpoint_id: owner for endpoint_id in owned if endpoint_id is not None}


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


@kopf.index(GROUP, VERSION, PLURAL)
def secret_users(body: kopf.Body, **_: Any) -> dict[tuple[str, str], str]:
    """(namespace, Secret name) -> uid of every TogetherEndpoint whose deletion needs that Secret's key:
    its in-use finalizer goes only when none is left."""
    spec = TogetherEndpointSpec.model_validate(body.get("spec") or {})
    name = secret_in_use(spec, StatusWriter.parse(body.get("status")))
    meta = body["metadata"]
    return {(meta["namespace"], name): meta["uid"]} if name else {}


def _others(kwargs: dict[str, Any]) -> OtherResources:
    # kopf passes each index as a keyword named after its function.
    return OtherResources(
        owners=kwargs["endpoint_owners"],
        open_creates=kwargs["open_creates"],
        secret_users=kwargs["secret_users"],
    )


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


# --- TogetherBudgets: read, never changed; only their status is written ---------------------------


@kopf.on.event(budget.GROUP, budget.VERSION, budget.PLURAL)
def budget_changed(
    type: str, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
) -> None:
    """Keep the budget book current; when limits changed, wake the namespace's resources (one waiting
    for budget may now proceed)."""
    assert namespace is not None, "TogetherBudget is namespaced"
    record = None
    if type != "DELETED":
        raw = body.get("status") or {}
        record = budget.BudgetRecord(
            budget.Budget(name, budget.TogetherBudgetSpec.model_validate(body.get("spec") or {})),
            body["metadata"].get("generation", 1),
            budget.TogetherBudgetStatus.model_validate(raw) if raw.get("conditions") else None,
        )
    if memo.budgets.put(namespace, name, record) and "reconciler" in memo:
        memo.reconciler.wake_namespace(namespace)


async def _write_budget_statuses(memo: kopf.Memo) -> None:
    """Every few seconds, write what each namespace commits to its budgets' status, where that changed:
    through the status subresource only (the operator may not change a budget, nor hold a finalizer
    on one, which a kopf timer would)."""
    api = kube_client.CustomObjectsApi(memo.api_client)
    while True:
        await asyncio.sleep(BUDGET_STATUS_INTERVAL)
        now = datetime.now(UTC).replace(microsecond=0)
        for namespace, record in memo.budgets.records():
            status = budget.budget_status(
                record.budget, record.status, memo.reconciler.committed(namespace), record.generation, now
            )
            if status == record.status:
                continue
            try:
                await asyncio.to_thread(
                    api.patch_namespaced_custom_object_status,
                    budget.GROUP,
                    budget.VERSION,
                    namespace,
                    budget.PLURAL,
                    record.budget.name,
                    {"status": status.model_dump(mode="json", exclude_none=True)},
                )
            except ApiException as error:  # deleted meanwhile, say: the next round sees
                logging.getLogger(__name__).warning(
                    "writing the status of TogetherBudget %s/%s failed: %s",
                    namespace,
                    record.budget.name,
                    error.reason,
                )
