"""What the operator process sets up around its handlers: kopf's settings and the Kubernetes API
client. Apart from handlers.py so that importing it registers no handler: the benchmark's baseline
(bench/baseline_handlers.py) runs its own handlers with the same set-up."""

from __future__ import annotations

import logging

import kopf
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from together_operator.resource import GROUP

FINALIZER = "together.ai/finalizer"


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
