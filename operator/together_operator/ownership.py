"""Who may adopt an endpoint named by spec.endpointId: the claim, and the namespace's consent.

The claim is a Lease in the operator's namespace, named after the endpoint id, whose holder is the
TogetherEndpoint's uid. The API server creates an object of a given name once: of two resources
naming one endpoint, in one process or in two operator incarnations running side by side, exactly
one create succeeds, and the Lease outlives restarts. It is deleted when its holder is released.
(A status write is atomic for one object only, and the kopf index of recorded ids lags the watch, so
neither can decide between two resources.)
"""

from __future__ import annotations

import asyncio
import hashlib

from kubernetes.client import (
    CoordinationV1Api,
    CoreV1Api,
    V1DeleteOptions,
    V1Lease,
    V1LeaseSpec,
    V1ObjectMeta,
    V1Preconditions,
)
from kubernetes.client.exceptions import ApiException

from together_operator.connection import Owner
from together_operator.core import ADOPTION_LABEL, AdoptionClaim

_ENDPOINT_ANNOTATION = "together.ai/endpoint-id"
_HOLDER_ANNOTATION = "together.ai/holder"


def claim_name(endpoint_id: str) -> str:
    """A valid object name for any endpoint id (the id itself is kept in an annotation)."""
    return "together-claim-" + hashlib.sha256(endpoint_id.encode()).hexdigest()[:40]


def _holder(lease: V1Lease) -> str | None:
    return lease.spec.holder_identity if lease.spec is not None else None


class Ownership:
    """The claims, in `namespace` (the operator's), and the labels of the resources' namespaces."""

    def __init__(self, coordination_api: CoordinationV1Api, core_api: CoreV1Api, namespace: str) -> None:
        self._api = coordination_api
        self._core_api = core_api
        self._namespace = namespace

    async def claim(self, endpoint_id: str, owner: Owner) -> AdoptionClaim:
        """Create the claim for `owner`, or say who holds it (perhaps `owner` since an earlier run)."""
        body = V1Lease(
            metadata=V1ObjectMeta(
                name=claim_name(endpoint_id),
                annotations={
                    _ENDPOINT_ANNOTATION: endpoint_id,
                    _HOLDER_ANNOTATION: f"{owner.namespace}/{owner.name}",
                },
            ),
            spec=V1LeaseSpec(holder_identity=owner.uid),
        )
        try:
            await asyncio.to_thread(self._api.create_namespaced_lease, self._namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise
        else:
            return AdoptionClaim(holder=f"{owner.namespace}/{owner.name}", ours=True)
        name = claim_name(endpoint_id)
        lease = await asyncio.to_thread(self._api.read_namespaced_lease, name, self._namespace)
        holder = (lease.metadata.annotations if lease.metadata else None) or {}
        return AdoptionClaim(
            holder=holder.get(_HOLDER_ANNOTATION, "(unknown)"), ours=_holder(lease) == owner.uid
        )

    async def release(self, endpoint_id: str, owner: Owner) -> None:
        """Delete the claim if `owner` holds it; the precondition keeps a claim made meanwhile by
        someone else."""
        name = claim_name(endpoint_id)
        try:
            lease = await asyncio.to_thread(self._api.read_namespaced_lease, name, self._namespace)
            if _holder(lease) != owner.uid or lease.metadata is None:
                return
            options = V1DeleteOptions(preconditions=V1Preconditions(uid=lease.metadata.uid))
            await asyncio.to_thread(self._api.delete_namespaced_lease, name, self._namespace, body=options)
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    async def allow_adoption(self, namespace: str) -> bool:
        """Whether `namespace` lets its resources adopt endpoints with the operator-wide key."""
        found = await asyncio.to_thread(self._core_api.read_namespace, namespace)
        labels = found.metadata.labels if found.metadata is not None else None
        return (labels or {}).get(ADOPTION_LABEL) == "allowed"
