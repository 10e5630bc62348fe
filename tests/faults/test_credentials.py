"""One namespace's API key is rejected (401) while another's works: only the resources using the bad key
stall, they retry slowly with a single Warning each, and rotating their Secret brings them back without
restarting the operator. No key, good or bad, shows up in any output.
"""

from __future__ import annotations

import math
import time

import pytest

from tests.faults.conftest import StackFactory
from tests.faults.harness import is_ready, make_key, report, stalled_reason, sum_events
from tests.support.kube import condition
from tests.support.manifests import endpoint_manifest, secret_manifest

pytestmark = pytest.mark.controlplane

PER_NAMESPACE = 3
STALLED_RETRY = 1.0
"""--stalled-retry-interval: the first wait after a 401, doubled per repeat (x0.8..1.2 jitter)."""


def test_a_rejected_key_stalls_only_its_namespace_and_rotating_the_secret_recovers_it(
    fault_stack: StackFactory,
) -> None:
    alpha_key, beta_key, revoked_key = make_key("alpha"), make_key("beta"), make_key("revoked")
    stack = fault_stack(
        accounts={alpha_key: "alpha", beta_key: "beta"},
        extra_args=[f"--stalled-retry-interval={STALLED_RETRY}"],
    )
    stack.keys.append(revoked_key)
    bad, good = stack.namespace("bad"), stack.namespace("good")
    bad.apply(secret_manifest("together", revoked_key))
    good.apply(secret_manifest("together", beta_key))

    stall_started = time.monotonic()
    for kube in (bad, good):
        for i in range(PER_NAMESPACE):
            kube.apply(endpoint_manifest(f"ep-{i}", apiKeySecretRef={"name": "together"}))

    good_items = stack.wait_all(good.namespace, is_ready, what="Ready")
    stalled = stack.wait_all(
        bad.namespace, lambda o: stalled_reason(o) == "Unauthorized", what="Stalled/Unauthorized"
    )
    for obj in stalled:
        message = condition(obj, "Stalled")["message"]  # type: ignore[index]
        assert "HTTP 401" in message
        assert "check the API key (key 'api-key' of Secret 'together')" in message
        assert is_ready(obj) is False
        assert "endpointId" not in obj["status"]
    # Let the stalled resources retry a few times: each retry is one rejected call.
    deadline = time.monotonic() + 30
    while stack.stats().count("GET", "/v1/hardware", account=None) < 3 * PER_NAMESPACE:
        assert time.monotonic() < deadline, "the stalled resources never retried"
        time.sleep(0.5)
    stall_seconds = time.monotonic() - stall_started

    stats = stack.stats()
    rejected = [c for c in stats.calls if c.account is None]
    # What the revoked key was used for: only the hardware look-up that precedes a create. No POST.
    assert {(c.method, c.path, c.status) for c in rejected} == {("GET", "/v1/hardware", 401)}
    # Retried slowly: after the n-th 401 in a row a resource waits STALLED_RETRY * 2^(n-1) (x0.8 at
    # least), so in `stall_seconds` it makes at most 1 + log2(stall_seconds / (0.8 * STALLED_RETRY)) + 1.
    per_resource_bound = 2 + math.log2(stall_seconds / (0.8 * STALLED_RETRY))
    assert len(rejected) <= PER_NAMESPACE * per_resource_bound, (len(rejected), stall_seconds)
    # One Warning per resource, however many retries: kubectl shows each with count 1.
    warnings = stack.warning_events(bad.namespace)
    assert sorted((e["involvedObject"]["name"], e["reason"]) for e in warnings) == [
        (f"ep-{i}", "Unauthorized") for i in range(PER_NAMESPACE)
    ]
    assert sum_events(warnings) == PER_NAMESPACE
    # The other namespace never noticed: its endpoints are the beta account's, and it has no Warning.
    assert sorted(e.display_name for e in stack.dedicated_endpoints("beta")) == [
        f"{good.namespace}/ep-{i}" for i in range(PER_NAMESPACE)
    ]
    assert stack.warning_events(good.namespace) == []
    assert stats.posts(account=None) == []

    # Rotation: the same Secret now holds a key Together knows. No operator restart.
    ready_since = {o["metadata"]["name"]: condition(o, "Ready") for o in good_items}
    bad.apply(secret_manifest("together", alpha_key))
    rotated_at = time.monotonic()
    recovered = stack.wait_all(bad.namespace, is_ready, timeout=90, what="Ready after rotation")
    recovery_seconds = time.monotonic() - rotated_at

    assert sorted(e.display_name for e in stack.dedicated_endpoints("alpha")) == [
        f"{bad.namespace}/ep-{i}" for i in range(PER_NAMESPACE)
    ]
    for obj in recovered:
        assert obj["status"]["endpointName"].startswith("alpha/")
        assert stalled_reason(obj) is None
    assert len(stack.operator.incarnations) == 1
    stack.operator.assert_running()
    assert len(stack.stats().posts()) == 2 * PER_NAMESPACE
    for obj in stack.resources(good.namespace):
        assert condition(obj, "Ready") == ready_since[obj["metadata"]["name"]]
    assert stack.tracebacks() == 0
    report(
        "unauthorized_namespace",
        resources_per_namespace=PER_NAMESPACE,
        stall_seconds=round(stall_seconds, 1),
        rejected_calls=len(rejected),
        rejected_calls_bound=round(PER_NAMESPACE * per_resource_bound, 1),
        warning_events=sum_events(warnings),
        other_namespace_warnings=0,
        ready_seconds_after_rotation=round(recovery_seconds, 1),
        operator_restarts=0,
    )
    stack.assert_no_key_leaks()


def test_no_key_shows_up_anywhere_even_in_debug_logs_and_for_keys_that_cannot_be_used(
    fault_stack: StackFactory,
) -> None:
    """Keys that work, that are rejected, and that cannot even be sent (control characters, non-ASCII,
    10 kB), with the operator logging at debug level: none appears in its output, in an event, in a
    TogetherEndpoint or in the metrics."""
    good_key = make_key("debug")
    unusable = {
        "rejected": make_key("rejected"),
        "newline-inside": make_key("newline") + "\n" + make_key("tail"),
        "non-ascii": make_key("unicode") + "é🔑",
        "null-byte": make_key("null") + "\u0000",
        "huge": make_key("huge") + "k" * 10_000,
    }
    stack = fault_stack(
        accounts={good_key: "acme"},
        extra_args=["--verbose", f"--stalled-retry-interval={STALLED_RETRY}"],
    )
    stack.keys += [*unusable.values(), *(key.split("\n")[0] for key in unusable.values())]
    kube = stack.namespace("keys")
    # A key with a trailing newline (as `echo key | kubectl create secret` makes) is used as intended.
    kube.apply(secret_manifest("good", good_key + "\n"))
    kube.apply(endpoint_manifest("good", apiKeySecretRef={"name": "good"}))
    for label, key in unusable.items():
        kube.apply(secret_manifest(label, key))
        kube.apply(endpoint_manifest(label, apiKeySecretRef={"name": label}))

    stack.wait_for(kube.namespace, "good", is_ready, what="Ready")
    stalled = {
        label: stack.wait_for(kube.namespace, label, lambda o: stalled_reason(o) is not None, what="Stalled")
        for label in unusable
    }

    assert stalled_reason(stalled["rejected"]) == "Unauthorized"
    for label in ("newline-inside", "non-ascii", "null-byte"):
        assert stalled_reason(stalled[label]) == "CredentialsNotFound"
        message = condition(stalled[label], "Stalled")["message"]  # type: ignore[index]
        assert message == "api_key contains characters that cannot be sent in an HTTP header", label
    # 10 kB of header is more than the server reads: its 400 quotes the start of it, redacted.
    huge = condition(stalled["huge"], "Stalled")["message"]  # type: ignore[index]
    assert "HTTP 400" in huge
    assert "Bearer <redacted>" in huge
    assert stack.tracebacks() == 0
    stack.operator.assert_running()
    stack.assert_no_key_leaks()
