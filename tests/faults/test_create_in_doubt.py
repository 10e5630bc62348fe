"""A create whose outcome is unknown is never sent twice. The hardware look-up is held past the client's
timeout, so the POST goes out about 31 s after the reconcile began; then the POST itself is held past the
client's timeout and the endpoint appears well after the client gave up. The resource waits the create's
outcome window out from when it found the create in doubt, finds the endpoint and adopts it: one POST, one
endpoint, Ready. (FAULT_SEED=2864313970 of test_api_faults.py made a second endpoint this way.)
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import StackFactory
from tests.faults.harness import FaultStack, is_ready, make_key
from tests.support.kube import wait_for
from tests.support.manifests import endpoint_manifest

pytestmark = pytest.mark.controlplane

HARDWARE_HELD = {"fault": "latency", "seconds": 31, "path": "^/v1/hardware", "times": 1}
"""The first hardware look-up outlasts the client's 30 s timeout: the POST is sent ~31 s late."""


def _created_once(stack: FaultStack) -> None:
    kube = stack.namespace("doubt")
    kube.apply(endpoint_manifest("ep"))
    stack.wait_for(kube.namespace, "ep", is_ready, timeout=240, what="Ready")
    # Every POST the simulator received has been answered (or held and handled): any endpoint a POST
    # made exists by now.
    wait_for(
        lambda: stack.stats().posts(),
        lambda posts: all(post.status is not None for post in posts),
        timeout=120,
        what="every POST handled",
    )
    posts = stack.stats().posts()
    endpoints = stack.dedicated_endpoints()
    resource = stack.resource(kube.namespace, "ep")
    assert resource is not None
    assert len(posts) == 1, [(post.status, post.faults) for post in posts]
    assert [e.id for e in endpoints] == [resource["status"]["endpointId"]]
    assert is_ready(resource)
    assert stack.tracebacks() == 0


@pytest.mark.timeout(400)
def test_a_create_sent_late_and_held_past_the_client_timeout_is_adopted_not_repeated(
    fault_stack: StackFactory,
) -> None:
    faults = [
        HARDWARE_HELD,
        # Lands 40 s after it was sent: 10 s after the client gave up, within the outcome window.
        {"fault": "latency", "seconds": 40, "method": "POST", "path": "^/v1/endpoints$", "times": 1},
    ]
    key = make_key("late")
    _created_once(fault_stack(accounts={key: "acme"}, operator_key=key, faults=faults))


@pytest.mark.timeout(400)
def test_a_create_held_and_its_answer_lost_is_adopted_not_repeated(fault_stack: StackFactory) -> None:
    faults = [
        HARDWARE_HELD,
        # The first POST is held 25 + 10 s and its answer lost; before the fix the repeated POST was held
        # 10 s and lost too, and the resource stalled on two candidate endpoints (CreateIncomplete).
        {"fault": "latency", "seconds": 25, "method": "POST", "path": "^/v1/endpoints$", "times": 1},
        {"fault": "latency", "seconds": 10, "method": "POST", "path": "^/v1/endpoints$", "times": 2},
        {"fault": "lose_create_response", "method": "POST", "times": 2},
    ]
    key = make_key("lost")
    _created_once(fault_stack(accounts={key: "acme"}, operator_key=key, faults=faults))
