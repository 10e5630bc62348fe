"""Together API keys: read from the resource's Secret on every use, else the operator-wide key.

Reading on use makes rotation need no restart. The key is wrapped in `ApiKey`, whose repr and str
never show it, so it cannot leak into a log line, an event or a status by accident.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from dataclasses import dataclass, field

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from together_operator.resource import SecretKeyRef


@dataclass(frozen=True)
class CredentialsMissing:
    """The API key could not be read: a missing Secret or key, or no operator-wide key."""

    message: str


@dataclass(frozen=True)
class ApiKey:
    value: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """A stable, non-reversible name for the key: clients and pollers are shared per fingerprint."""
        return hashlib.sha256(self.value.encode()).hexdigest()[:12]

    def __str__(self) -> str:
        return f"ApiKey({self.fingerprint})"


class CredentialResolver:
    def __init__(self, core_api: CoreV1Api, operator_key: str | None) -> None:
        self._core_api = core_api
        self._operator_key = ApiKey(operator_key) if operator_key else None

    async def resolve(self, namespace: str, ref: SecretKeyRef | None) -> ApiKey | CredentialsMissing:
        if ref is None:
            if self._operator_key is None:
                return CredentialsMissing(
                    "no API key: set spec.apiKeySecretRef, or give the operator TOGETHER_API_KEY"
                )
            return self._operator_key
        return await self._from_secret(namespace, ref)

    async def _from_secret(self, namespace: str, ref: SecretKeyRef) -> ApiKey | CredentialsMissing:
        where = f"Secret {namespace}/{ref.name}"
        try:
            secret = await asyncio.to_thread(self._core_api.read_namespaced_secret, ref.name, namespace)
        except ApiException as error:
            if error.status == 404:
                return CredentialsMissing(f"{where} not found: create it with the API key under {ref.key!r}")
            if error.status == 403:
                return CredentialsMissing(f"the operator may not read {where} (RBAC forbids it)")
            raise
        encoded = (secret.data or {}).get(ref.key)
        if not encoded:
            return CredentialsMissing(f"{where} has no key {ref.key!r}: add the API key under it")
        try:
            value = base64.b64decode(encoded).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            return CredentialsMissing(f"{where} key {ref.key!r} is not valid base64-encoded text")
        if not value:
            return CredentialsMissing(f"{where} key {ref.key!r} is empty")
        return ApiKey(value)
