"""Publishes how to call an endpoint (`spec.connection.configMapName`): a ConfigMap owned by its
TogetherEndpoint, which applications load with `envFrom`. It never holds the API key."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from kubernetes.client import CoreV1Api, V1ConfigMap, V1ObjectMeta, V1OwnerReference
from kubernetes.client.exceptions import ApiException

from together_operator.resource import GROUP, KIND, VERSION

MANAGED_BY = {"app.kubernetes.io/managed-by": "together-operator"}


@dataclass(frozen=True)
class Owner:
    """The TogetherEndpoint a ConfigMap belongs to."""

    namespace: str
    name: str
    uid: str

    def reference(self) -> V1OwnerReference:
        return V1OwnerReference(
            api_version=f"{GROUP}/{VERSION}",
            kind=KIND,
            name=self.name,
            uid=self.uid,
            controller=True,
            block_owner_deletion=False,
        )


class ConnectionPublisher:
    def __init__(self, core_api: CoreV1Api) -> None:
        self._core_api = core_api

    async def publish(self, owner: Owner, config_map: str, data: Mapping[str, str]) -> str | None:
        """Create or update the ConfigMap; a message instead if a ConfigMap of that name is not ours."""
        try:
            existing = await asyncio.to_thread(
                self._core_api.read_namespaced_config_map, config_map, owner.namespace
            )
        except ApiException as error:
            if error.status != 404:
                raise
            body = V1ConfigMap(
                metadata=V1ObjectMeta(
                    name=config_map, labels=MANAGED_BY, owner_references=[owner.reference()]
                ),
                data=dict(data),
            )
            await asyncio.to_thread(self._core_api.create_namespaced_config_map, owner.namespace, body)
            return None
        if not _owned_by(existing, owner.uid):
            return (
                f"ConfigMap {owner.namespace}/{config_map} exists and is not owned by this TogetherEndpoint: "
                "it is left alone; choose another spec.connection.configMapName or delete that ConfigMap"
            )
        if (existing.data or {}) != dict(data):
            await asyncio.to_thread(
                self._core_api.patch_namespaced_config_map, config_map, owner.namespace, {"data": dict(data)}
            )
        return None

    async def withdraw(self, owner: Owner, config_map: str) -> None:
        """Delete the ConfigMap if it is ours (the test API server has no garbage collector, and a
        renamed configMapName leaves the old one behind otherwise)."""
        try:
            existing = await asyncio.to_thread(
                self._core_api.read_namespaced_config_map, config_map, owner.namespace
            )
            if _owned_by(existing, owner.uid):
                await asyncio.to_thread(
                    self._core_api.delete_namespaced_config_map, config_map, owner.namespace
                )
        except ApiException as error:
            if error.status != 404:
                raise


def _owned_by(config_map: V1ConfigMap, uid: str) -> bool:
    references = config_map.metadata.owner_references if config_map.metadata else None
    return any(reference.uid == uid for reference in references or ())
