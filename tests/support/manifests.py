"""The objects tests apply: a TogetherEndpoint and the Secret holding an API key."""

from __future__ import annotations

import base64
from typing import Any

from together_operator.resource import GROUP, VERSION

MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
HARDWARE = "2x_nvidia_h100_80gb_sxm"
"""A model and a hardware id the simulator offers for it."""


def endpoint_manifest(
    name: str, *, namespace: str | None = None, labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    """A TogetherEndpoint of MODEL on HARDWARE; `spec` adds or overrides fields of its spec."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TogetherEndpoint",
        "metadata": metadata,
        "spec": {"model": MODEL, "hardware": HARDWARE, **spec},
    }


def secret_manifest(name: str, api_key: str) -> dict[str, Any]:
    """A Secret with the key under `api-key`, where `apiKeySecretRef` looks by default."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"api-key": base64.b64encode(api_key.encode()).decode()},
    }
