"""The Secret in-use finalizer under concurrent changes: resources sharing one Secret add and remove the
finalizer at the same time; a change that lost the race is read again and made anew, never dropped and
never raised to the reconcile."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from together_operator.secret_guard import SECRET_IN_USE_FINALIZER, SecretGuard


class RacySecrets:
    """A CoreV1Api for one Secret whose resourceVersion another writer moves before each of the first
    `races` patches (the JSON patch's `test` then fails with 422, as the API server answers)."""

    def __init__(self, races: int, finalizers: list[str] | None = None) -> None:
        self.races = races
        self.finalizers = list(finalizers or [])
        self.version = 1
        self.patches = 0

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        return SimpleNamespace(
            metadata=SimpleNamespace(finalizers=list(self.finalizers), resource_version=str(self.version))
        )

    def patch_namespaced_secret(self, name: str, namespace: str, patch: list[dict[str, Any]]) -> None:
        self.patches += 1
        if self.races:
            self.races -= 1
            self.version += 1  # someone else's change landed first
        test, change = patch
        if test["value"] != str(self.version):
            raise ApiException(status=422, reason="Unprocessable Entity")
        self.finalizers = change["value"]
        self.version += 1


@pytest.mark.parametrize("races", [0, 1, 4])
async def test_the_finalizer_is_added_even_when_other_writers_change_the_secret_first(races: int) -> None:
    secrets = RacySecrets(races, finalizers=["someone.else/keep"])

    await SecretGuard(secrets).hold("team", "together-key")  # type: ignore[arg-type]

    assert secrets.finalizers == ["someone.else/keep", SECRET_IN_USE_FINALIZER]
    assert secrets.patches == races + 1


async def test_the_finalizer_is_removed_even_when_other_writers_change_the_secret_first() -> None:
    secrets = RacySecrets(2, finalizers=[SECRET_IN_USE_FINALIZER, "someone.else/keep"])

    await SecretGuard(secrets).release("team", "together-key")  # type: ignore[arg-type]

    assert secrets.finalizers == ["someone.else/keep"]


async def test_a_secret_that_keeps_changing_under_the_guard_is_an_error_after_five_tries() -> None:
    secrets = RacySecrets(races=5)

    with pytest.raises(ApiException) as raised:
        await SecretGuard(secrets).hold("team", "together-key")  # type: ignore[arg-type]

    assert raised.value.status == 422
    assert secrets.patches == 5
    assert secrets.finalizers == []
