"""Drives the simulator's v2 API with the official SDK `together==3.1.1`, through every operation the
operator will use; run by tests/simulator/test_v2_sdk_fidelity.py with the python of the SDK 3.x
virtualenv (hack/build-sdk3-venv.sh), so it imports nothing from this repository.

    drive_v2.py MANAGEMENT_URL ADMIN_URL API_KEY STEP_SECONDS

The client validates every response strictly against the SDK's types. Each step asserts what the SDK
returns; the script prints the steps done, one per line, and exits non-zero at the first surprise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import httpx
from together import APIStatusError, BadRequestError, ConflictError, Together

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
HARDWARE = "2xnvidia-h100-80gb"


def step(name: str) -> None:
    print(name, flush=True)


def refused(error_type: type[APIStatusError], what: str, call: Callable[[], object]) -> APIStatusError:
    """The error `call` raises; an AssertionError naming `what` if it succeeds."""
    try:
        call()
    except error_type as error:
        return error
    raise AssertionError(f"{what} was accepted")


def main(management_url: str, admin_url: str, api_key: str, step_seconds: float) -> None:
    admin = httpx.Client(base_url=admin_url, timeout=10.0)

    def advance(steps: int) -> None:
        admin.post("/clock/advance", json={"seconds": steps * step_seconds}).raise_for_status()

    client = Together(
        base_url=management_url, api_key=api_key, max_retries=0, _strict_response_validation=True
    )

    # Identity: the project the key is scoped to.
    whoami = client.whoami()
    assert whoami.type == "project_api_key"
    project_id, slug = whoami.project.id, whoami.project.slug
    step("whoami")

    # Catalogue: the supported model, its certified profile on the hardware, config and model resource.
    supported = [
        entry for entry in client.models.list_supported(limit=1)
    ]  # one per page: the cursor is followed
    entry = next(entry for entry in supported if entry.name == MIXTRAL)
    assert client.models.retrieve_supported(entry.id).name == MIXTRAL
    # On HARDWARE Mixtral has two certified configs, with and without a draft model: take the speculative one.
    on_hardware = [p for p in entry.deployment_profiles if f"{p.gpu_count}x{p.gpu_type}" == HARDWARE]
    platform_project = on_hardware[0].config.split("/")[1]
    by_profile = {
        p.profile_id: client.models.configs.retrieve(
            p.certified_config_revision_id, project_id=platform_project
        )
        for p in on_hardware
    }
    assert sorted(bool(c.draft_model) for c in by_profile.values()) == [False, True]
    profile = next(p for p in on_hardware if by_profile[p.profile_id].draft_model)
    config = by_profile[profile.profile_id]
    selectors = {selector.key: selector.value for selector in config.selectors}
    assert f"{selectors['accelerator_count']}x{selectors['accelerator_type']}" == HARDWARE
    configs = list(client.models.configs.list(project_id=platform_project, reference_model=entry.base_model))
    assert profile.certified_config_revision_id in {c.id for c in configs}
    model = client.models.retrieve(entry.base_model_id, project_id=platform_project)
    assert model.name == MIXTRAL
    revisions = client.models.list_revisions(entry.base_model_id, project_id=platform_project)
    assert revisions.data
    assert profile.model.endswith(revisions.data[0].revision_id)
    step("catalogue")

    hardware = client.endpoints.hardware.list()
    instance = next(it for it in hardware.data if it.name == HARDWARE)
    assert instance.price_cents_per_hour > 0
    assert instance.regions
    assert client.endpoints.hardware.retrieve(instance.id).name == HARDWARE
    step("hardware")

    # Create: an endpoint (a second with the same name conflicts), a dry run, then the deployment.
    endpoint = client.endpoints.create(project_id=project_id, name="chat")
    assert endpoint.name == f"{slug}/chat"
    refused(
        ConflictError,
        "a second endpoint named chat",
        lambda: client.endpoints.create(project_id=project_id, name="chat"),
    )
    autoscaling = {"min_replicas": 1, "max_replicas": 2}
    client.endpoints.deployments.create(
        endpoint.id,
        project_id=project_id,
        name="blue",
        model=profile.model,
        config=profile.config,
        autoscaling=autoscaling,
        validate_only=True,
    )
    assert list(client.endpoints.deployments.list(endpoint.id, project_id=project_id)) == []
    deployment = client.endpoints.deployments.create(
        endpoint.id,
        project_id=project_id,
        name="blue",
        model=profile.model,
        config=profile.config,
        autoscaling=autoscaling,
    )
    assert deployment.status.state == "DEPLOYMENT_STATE_PROVISIONING"
    assert deployment.hardware == HARDWARE
    assert deployment.speculator
    step("create")

    # Route it, then see it become READY, in the deployment and in the endpoint's summary.
    endpoint = client.endpoints.update(
        endpoint.id,
        project_id=project_id,
        traffic_split=[{"deployment_id": deployment.id, "weight": 1}],
        update_mask="trafficSplit",
        etag=endpoint.etag,
    )
    assert [entry.deployment_id for entry in endpoint.traffic_split] == [deployment.id]
    advance(2)
    ready = client.endpoints.deployments.retrieve(
        deployment.id, project_id=project_id, endpoint_id=endpoint.id
    )
    assert ready.status.state == "DEPLOYMENT_STATE_READY"
    assert (ready.desired_replicas, ready.status.ready_replicas) == (1, 1)
    [summary] = client.endpoints.retrieve(endpoint.id, project_id=project_id).deployments
    assert (summary.state, summary.ready_replicas, summary.estimated_effective_traffic_share) == (
        "DEPLOYMENT_STATE_READY",
        1,
        1.0,
    )
    step("ready")

    # A stale etag: the write another client made in between wins, ours is refused.
    stale = client.endpoints.retrieve(endpoint.id, project_id=project_id)
    client.endpoints.update(
        endpoint.id, project_id=project_id, visibility="VISIBILITY_INTERNAL", etag=stale.etag
    )
    try:
        client.endpoints.update(
            endpoint.id, project_id=project_id, visibility="VISIBILITY_PRIVATE", etag=stale.etag
        )
        raise AssertionError("an update with a stale etag was accepted")
    except ConflictError:
        pass
    step("stale-etag")

    # Update autoscaling (etag carried); a positive max with min 0 is refused.
    scaled = client.endpoints.deployments.update(
        deployment.id,
        project_id=project_id,
        endpoint_id=endpoint.id,
        autoscaling={"min_replicas": 2, "max_replicas": 3},
        update_mask="autoscaling",
        etag=ready.etag,
    )
    assert (scaled.autoscaling.min_replicas, scaled.autoscaling.max_replicas) == (2, 3)
    refused(
        BadRequestError,
        "min 0 with a positive max",
        lambda: client.endpoints.deployments.update(
            deployment.id, project_id=project_id, endpoint_id=endpoint.id, autoscaling={"min_replicas": 0}
        ),
    )
    step("update")

    # Pagination and filters over the project's endpoints.
    for name in ("chat-2", "chat-3"):
        client.endpoints.create(project_id=project_id, name=name)
    pages = client.endpoints.list(project_id=project_id, limit=1)
    assert pages.next_cursor
    names = [e.name for e in pages]  # iterating follows next_cursor to the last page
    assert names == [f"{slug}/chat", f"{slug}/chat-2", f"{slug}/chat-3"]
    newest = client.endpoints.list(project_id=project_id, order_by="created_at desc", filter='name = "chat*"')
    assert [e.name for e in newest] == list(reversed(names))
    ready_ones = client.endpoints.deployments.list(
        endpoint.id,
        project_id=project_id,
        filter='state = "DEPLOYMENT_STATE_READY" OR state = "DEPLOYMENT_STATE_SCALING"',
    )
    assert [d.id for d in ready_ones] == [deployment.id]
    step("list")

    # Inference on the endpoint string, through the same SDK (3.x puts /v1 in its paths, not its base URL).
    answer = client.chat.completions.create(
        model=f"{slug}/chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content
    step("inference")

    # Deletion in the platform's order: a running deployment cannot go; an empty split alone is no update.
    refused(
        BadRequestError,
        "deleting a running deployment",
        lambda: client.endpoints.deployments.delete(
            deployment.id, project_id=project_id, endpoint_id=endpoint.id
        ),
    )
    empty_split = refused(
        BadRequestError,
        "an empty traffic split without an update mask",
        lambda: client.endpoints.update(endpoint.id, project_id=project_id, traffic_split=[]),
    )
    assert "no fields to update" in str(empty_split)
    # As the CLI's `rm --force` does: split emptied by mask, 0/0, then (once STOPPED) the deletes.
    client.endpoints.update(endpoint.id, project_id=project_id, traffic_split=[], update_mask="trafficSplit")
    client.endpoints.deployments.update(
        deployment.id,
        project_id=project_id,
        endpoint_id=endpoint.id,
        autoscaling={"min_replicas": 0, "max_replicas": 0},
        update_mask="autoscaling",
    )
    advance(1)
    stopped = client.endpoints.deployments.retrieve(
        deployment.id, project_id=project_id, endpoint_id=endpoint.id
    )
    assert stopped.status.state == "DEPLOYMENT_STATE_STOPPED"
    client.endpoints.deployments.delete(deployment.id, project_id=project_id, endpoint_id=endpoint.id)
    client.endpoints.delete(endpoint.id, project_id=project_id)
    assert [e.name for e in client.endpoints.list(project_id=project_id)] == [
        f"{slug}/chat-2",
        f"{slug}/chat-3",
    ]
    step("delete")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
