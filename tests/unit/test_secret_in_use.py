"""The in-use finalizer on the Secret named by apiKeySecretRef (contract section 2, "Deletion never
depends on anything that deletion itself removes"): held while a resource's deletion will need the key
(its endpoint exists, or a create may have made one), put on before the POST, and taken off when the
last resource needing it is released; so deleting a namespace deletes the endpoints and finishes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from together_operator.core import secret_in_use, secret_to_release

from .builders import ENDPOINT_ID, HARDWARE, MODEL, NAMESPACE, NOW, endpoint, spec, status
from .fakes import ShellBed

KEY_REF: dict[str, Any] = {"api_key_secret_ref": {"name": "team-key"}}


@pytest.mark.parametrize(
    ("spec_fields", "recorded", "in_use"),
    [
        pytest.param(KEY_REF, {"endpoint_id": ENDPOINT_ID}, "team-key", id="endpoint-exists"),
        pytest.param(KEY_REF, {"create_requested_at": NOW}, "team-key", id="create-may-have-made-one"),
        pytest.param(KEY_REF, {}, None, id="nothing-created"),
        pytest.param({}, {"endpoint_id": ENDPOINT_ID}, None, id="operator-wide-key"),
        pytest.param(
            {**KEY_REF, "deletion_policy": "Orphan"}, {"endpoint_id": ENDPOINT_ID}, None, id="orphan"
        ),
        pytest.param(
            {**KEY_REF, "management_policy": "ObserveOnly", "endpoint_id": ENDPOINT_ID},
            {"endpoint_id": ENDPOINT_ID},
            None,
            id="observe-only",
        ),
    ],
)
def test_a_secret_is_in_use_while_deleting_the_resource_would_need_its_key(
    spec_fields: dict[str, Any], recorded: dict[str, Any], in_use: str | None
) -> None:
    assert secret_in_use(spec(**spec_fields), status(**recorded)) == in_use


@pytest.mark.parametrize(
    ("users", "released"),
    [
        pytest.param({}, "team-key", id="no-user-left"),
        pytest.param({(NAMESPACE, "team-key"): ["uid-1"]}, "team-key", id="only-itself"),
        pytest.param({(NAMESPACE, "team-key"): ["uid-1", "uid-2"]}, None, id="another-resource-needs-it"),
        pytest.param({("team-b", "team-key"): ["uid-2"]}, "team-key", id="same-name-other-namespace"),
    ],
)
def test_the_finalizer_goes_with_the_last_resource_that_needs_the_secret(
    users: dict[tuple[str, str], list[str]], released: str | None
) -> None:
    assert secret_to_release(NAMESPACE, "team-key", users, "uid-1") == released


def test_a_resource_with_the_operator_wide_key_releases_no_secret() -> None:
    assert secret_to_release(NAMESPACE, None, {}, "uid-1") is None


KEYED_SPEC = {"model": MODEL, "hardware": HARDWARE, "apiKeySecretRef": {"name": "team-key"}}


async def test_the_secret_carries_the_finalizer_before_the_create_is_sent() -> None:
    bed = ShellBed()
    body = bed.resource(spec=KEYED_SPEC)

    await bed.reconcile(body)

    assert bed.secrets.held == {"team-key"}
    assert bed.log.index("hold Secret team-key") < bed.log.index("POST /endpoints")


async def test_deleting_the_last_resource_using_a_secret_takes_its_finalizer_off() -> None:
    bed = ShellBed(endpoint())
    body = bed.resource(spec=KEYED_SPEC, status={"endpointId": ENDPOINT_ID})
    bed.secrets.held.add("team-key")

    await bed.reconciler.delete(body, bed.others)

    assert bed.secrets.held == set()
    assert bed.log.index(f"DELETE /endpoints/{ENDPOINT_ID}") < bed.log.index("release Secret team-key")


async def test_the_finalizer_stays_while_another_resource_needs_the_secret() -> None:
    bed = ShellBed(endpoint())
    body = bed.resource(spec=KEYED_SPEC, status={"endpointId": ENDPOINT_ID})
    bed.secrets.held.add("team-key")
    others = replace(bed.others, secret_users={(NAMESPACE, "team-key"): ["uid-1", "uid-other"]})

    await bed.reconciler.delete(body, others)

    assert bed.secrets.held == {"team-key"}


async def test_a_secret_no_longer_named_loses_the_finalizer() -> None:
    bed = ShellBed(endpoint())
    body = bed.resource(spec=KEYED_SPEC, status={"endpointId": ENDPOINT_ID})
    await bed.reconcile(body)
    assert bed.secrets.held == {"team-key"}

    body["spec"]["apiKeySecretRef"] = {"name": "new-key"}
    body["metadata"]["generation"] = 2
    await bed.reconcile(body)

    assert bed.secrets.held == {"new-key"}
