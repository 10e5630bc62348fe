"""The in-use finalizer on the Secret named by apiKeySecretRef (contract section 2, "Deletion never
depends on anything that deletion itself removes"): held while a resource's deletion will need the key
(its endpoint exists, or a create may have made one), put on before the POST, and taken off when the
last resource needing it is released; so deleting a namespace deletes the endpoints and finishes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest

from together_operator.core import secret_in_use, secret_to_release
from together_operator.credentials import ApiKey
from together_operator.handlers import secret_users
from together_operator.poller import PollIntervals
from together_operator.together import RateLimiter, TransientError
from together_operator.together.v2_client import DedicatedInferenceAPI
from together_operator.together.v2_models import Endpoint, Project
from together_operator.v2_shell import V2Clients, V2EndpointLists, V2Reconciler, V2Settings

from .builders import ENDPOINT_ID, HARDWARE, MODEL, NAMESPACE, NOW, endpoint, spec, status
from .fakes import FakeClients, ShellBed, kopf_index

KEY_REF: dict[str, Any] = {"api_key_secret_ref": {"name": "team-key"}}
MIGRATION: dict[str, Any] = {"from": ENDPOINT_ID, "to": "team-a-mixtral", "phase": "Creating"}


@pytest.mark.parametrize(
    ("spec_fields", "recorded", "in_use"),
    [
        pytest.param(KEY_REF, {"endpoint_id": ENDPOINT_ID}, "team-key", id="endpoint-exists"),
        pytest.param(KEY_REF, {"create_requested_at": NOW}, "team-key", id="create-may-have-made-one"),
        pytest.param(KEY_REF, {}, None, id="nothing-created"),
        pytest.param(
            KEY_REF,
            {"api": "v2", "rollout": MIGRATION},
            "team-key",
            id="v2-create-refused-while-the-v1-endpoint-it-replaces-serves",
        ),
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


@pytest.mark.parametrize(
    "recorded",
    [
        pytest.param({"api": "v2", "createRequestedAt": NOW.isoformat()}, id="v2-intent-written"),
        pytest.param({"api": "v2", "endpointId": "ep_1"}, id="v2-endpoint-recorded"),
        pytest.param({"api": "v2", "rollout": MIGRATION}, id="v2-migration-create-refused"),
    ],
)
def test_the_in_use_index_counts_a_v2_resource_from_the_moment_a_create_may_have_been_sent(
    recorded: dict[str, Any],
) -> None:
    """A deleted namespace deletes its Secrets at once: another resource released with it must not take
    the finalizer off while this one's endpoint (or the v1 one its migration replaces) needs the key."""
    body = {
        "metadata": {"uid": "uid-v2", "namespace": NAMESPACE, "name": "mixtral"},
        "spec": {**KEYED_SPEC, "api": "v2"},
        "status": recorded,
    }
    users = kopf_index(secret_users, body)

    assert users == {(NAMESPACE, "team-key"): ["uid-v2"]}
    assert secret_to_release(NAMESPACE, "team-key", users, "uid-released-with-the-namespace") is None


class OneV2Create:
    """A v2 project with no endpoint yet, whose create is sent and then lost (no answer)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def project(self) -> Project:
        return Project(id="proj_1", name="team", slug="team")

    async def list_endpoints(self, *, filter: str | None = None) -> list[Endpoint]:
        return []

    async def create_endpoint(self, name: str) -> Endpoint:
        self.log.append(f"POST v2 endpoint {name}")
        raise TransientError("ReadTimeout: no response within 30s", method="POST", path="v2/endpoints")


class V2ClientsOf(V2Clients):
    def __init__(self, api: OneV2Create) -> None:
        super().__init__("https://api.together.ai/v1", RateLimiter(100.0))
        self.api = api

    def for_key(self, key: ApiKey) -> DedicatedInferenceAPI:
        return cast(DedicatedInferenceAPI, self.api)


async def test_a_v2_create_holds_the_secret_before_its_intent_and_its_post() -> None:
    """As on v1: the resource is counted in the in-use index from its intent on, and holds the Secret
    before the intent is written; a create whose answer was lost keeps it."""
    lists = V2EndpointLists(PollIntervals(steady=3600.0, transition=3600.0))
    bed = ShellBed()
    api = OneV2Create(bed.log)
    settings = V2Settings("https://inference.test/v1")
    bed.v2 = V2Reconciler(settings, V2ClientsOf(api), lists, FakeClients(bed.together))
    bed.restart()
    body = bed.resource(spec={**KEYED_SPEC, "api": "v2"})

    try:
        await bed.reconcile(body)
    finally:
        await lists.close()

    hold, intent = bed.log.index("hold Secret team-key"), bed.log.index("status write (guarded)")
    assert hold < intent < bed.log.index("POST v2 endpoint team-a-mixtral")
    assert bed.secrets.held == {"team-key"}
    assert bed.status.writes[-1].create_requested_at is not None
