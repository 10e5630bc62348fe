"""The in-use finalizer `together.ai/secret-in-use` on the Secrets named by `apiKeySecretRef`.

Kubernetes protects a PersistentVolumeClaim in use the same way: a namespace being deleted deletes its
Secrets at once, and the endpoints of its TogetherEndpoints could not be deleted without their key. The
finalizer keeps the Secret (and so the namespace) until no resource needs it; the key is never copied.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

SECRET_IN_USE_FINALIZER = "together.ai/secret-in-use"
_ATTEMPTS = 5
"""Reads and patches of one change, when other resources change the Secret's finalizers meanwhile."""


class SecretGuard:
    def __init__(self, core_api: CoreV1Api) -> None:
        self._api = core_api
        self._held: set[tuple[str, str]] = set()
        """Secrets this process saw carrying the finalizer, so it is not read again on every reconcile."""

    async def hold(self, namespace: str, name: str) -> None:
        """Put the finalizer on the Secret (a missing Secret is the credentials' problem, not ours)."""
        if (namespace, name) in self._held:
            return
        if await self._change(namespace, name, add=True):
            self._held.add((namespace, name))

    async def release(self, namespace: str, name: str) -> None:
        self._held.discard((namespace, name))
        await self._change(namespace, name, add=False)

    async def _change(self, namespace: str, name: str, *, add: bool) -> bool:
        """Add or remove the finalizer; whether the Secret exists. The resourceVersion test makes a
        concurrent change of the finalizers (another resource holding the same Secret) fail with 409 or
        422 instead of being overwritten: the Secret is then read again and the change made anew."""
        attempts_left = _ATTEMPTS
        while True:
            attempts_left -= 1
            try:
                secret = await asyncio.to_thread(self._api.read_namespaced_secret, name, namespace)
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
            meta = secret.metadata
            finalizers = list((meta.finalizers if meta is not None else None) or [])
            if (SECRET_IN_USE_FINALIZER in finalizers) == add:
                return True
            wanted = (
                [*finalizers, SECRET_IN_USE_FINALIZER]
                if add
                else [f for f in finalizers if f != SECRET_IN_USE_FINALIZER]
            )
            patch: list[dict[str, Any]] = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": meta.resource_version if meta else None,
                },
                {"op": "add", "path": "/metadata/finalizers", "value": wanted},
            ]
            try:
                await asyncio.to_thread(self._api.patch_namespaced_secret, name, namespace, patch)
            except ApiException as error:
                if error.status not in (409, 422) or attempts_left == 0:
                    raise
            else:
                return True
