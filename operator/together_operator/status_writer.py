"""Writes a TogetherEndpoint's status through the status subresource, and only when it changed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client import CustomObjectsApi

from together_operator.resource import GROUP, PLURAL, VERSION, TogetherEndpointStatus

# Keys under .status that belong to kopf (handler progress), not to us.
_FOREIGN_KEYS = frozenset({"kopf"})


@dataclass(frozen=True)
class StoredResource:
    """A TogetherEndpoint's status and resourceVersion as the apiserver holds them now."""

    status: Mapping[str, Any] | None
    resource_version: str | None
    """None: the object is gone."""


class StatusWriter:
    def __init__(self, custom_api: CustomObjectsApi) -> None:
        self._custom_api = custom_api

    async def read(self, namespace: str, name: str) -> StoredResource:
        """The resource as stored now, when the watch's copy proved stale (a 409). A list by name, as
        the operator may list and watch these resources but not get them."""
        listed = await asyncio.to_thread(
            self._custom_api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            field_selector=f"metadata.name={name}",
        )
        items: list[dict[str, Any]] = (listed if isinstance(listed, dict) else {}).get("items") or []
        if not items:
            return StoredResource(status=None, resource_version=None)
        return StoredResource(
            status=items[0].get("status"), resource_version=items[0]["metadata"].get("resourceVersion")
        )

    @staticmethod
    def parse(raw: Mapping[str, Any] | None) -> TogetherEndpointStatus:
        ours = {k: v for k, v in (raw or {}).items() if k not in _FOREIGN_KEYS}
        return TogetherEndpointStatus.model_validate(ours)

    async def write(
        self,
        namespace: str,
        name: str,
        current: Mapping[str, Any] | None,
        status: TogetherEndpointStatus,
        *,
        resource_version: str | None = None,
    ) -> bool:
        """Patch the status if it differs from `current`; True if a patch was sent.

        With `resource_version`, the patch fails with a 409 conflict if the object changed meanwhile
        (optimistic concurrency, used to record a create's intent before the POST).
        """
        wanted = status.to_patch()
        present = {k: v for k, v in (current or {}).items() if k not in _FOREIGN_KEYS}
        if resource_version is None and _same(present, wanted):
            return False
        body: dict[str, Any] = {"status": wanted}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        await asyncio.to_thread(
            self._custom_api.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
        )
        return True


def _same(present: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether patching would change nothing: None in `wanted` means absent in `present`."""
    keys = set(present) | set(wanted)
    return all(_normalise(present.get(k)) == _normalise(wanted.get(k)) for k in keys)


def _normalise(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value
