#!/usr/bin/env python3
"""`make demo`: a TogetherEndpoint from apply to Ready, on a local cluster and the Together simulator.

    DEMO_KUBECONFIG=PATH   use that cluster (kind, minikube, a real one) instead of a local control plane
    DEMO_REAL=1            talk to the real Together API with TOGETHER_API_KEY (costs money: the demo
                           endpoint is deleted at the end unless DEMO_KEEP=1)
    DEMO_KEEP=1            keep everything running until Ctrl-C instead of cleaning up
    DEMO_API=v2            run the operator with --default-api=v2 and apply the v2 sample: a named
                           endpoint with one deployment on Together v2 (Dedicated Model Inference)
    DEMO_SAMPLE=PATH       the TogetherEndpoint to apply (default
                           deploy/samples/togetherendpoint-minimal.yaml, with DEMO_API=v2
                           deploy/samples/togetherendpoint-v2.yaml)

Steps: start (or use) the cluster, start the simulator, install the CRD, run the operator, apply the
sample, wait for condition Ready, print `kubectl get tep -o wide` and how to send traffic.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.controlplane import ControlPlane, find_bin_dir  # noqa: E402
from tests.support.kube import install_crd  # noqa: E402
from tests.support.operator import OperatorProcess, operator_environment  # noqa: E402

from together_operator.settings import DEFAULT_V2_INFERENCE_URL  # noqa: E402
from together_simulator import SimulatorConfig, run_simulator_in_thread  # noqa: E402

NAMESPACE = "together-demo"


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


class Kubectl:
    def __init__(self, kubeconfig: Path) -> None:
        self.binary = str(find_bin_dir() / "kubectl")
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [self.binary, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise SystemExit(f"demo: kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout


@contextlib.contextmanager
def cluster() -> Iterator[Path]:
    given = os.environ.get("DEMO_KUBECONFIG")
    if given:
        say(f"using the cluster of DEMO_KUBECONFIG={given}")
        yield Path(given)
        return
    say("starting a local control plane (etcd, kube-apiserver, kube-controller-manager on 127.0.0.1)")
    with ControlPlane() as control_plane:
        say(f"control plane ready in {control_plane.startup_seconds:.1f} s at {control_plane.server}")
        yield control_plane.kubeconfig


@contextlib.contextmanager
def together_api() -> Iterator[tuple[str, str]]:
    """(base URL, API key) of the Together API the operator talks to."""
    if os.environ.get("DEMO_REAL") == "1":
        key = os.environ.get("TOGETHER_API_KEY")
        if not key:
            raise SystemExit("demo: DEMO_REAL=1 needs TOGETHER_API_KEY")
        base_url = os.environ.get("TOGETHER_BASE_URL", "https://api.together.ai/v1")
        say(f"using the real Together API at {base_url} (billed by the minute)")
        yield base_url, key
        return
    with run_simulator_in_thread(SimulatorConfig(transition_seconds=1.0)) as simulator:
        say(f"Together API simulator at {simulator.base_url}")
        yield simulator.base_url, simulator.api_key


@contextlib.contextmanager
def operator(kubeconfig: Path, base_url: str, api_key: str, log_path: Path, api: str) -> Iterator[None]:
    log_path.unlink(missing_ok=True)
    # The simulator serves v2 inference on its one port too.
    v2_inference = [f"--v2-inference-url={base_url}"] if os.environ.get("DEMO_REAL") != "1" else []
    process = OperatorProcess(
        log_path,
        operator_environment(kubeconfig, base_url, api_key),
        ["--poll-interval=5", "--transition-poll-interval=1", f"--default-api={api}", *v2_inference],
    )
    process.start()
    say(f"operator running (pid {process.current.pid}, log {log_path})")
    try:
        yield
    finally:
        process.stop()


def main() -> int:
    api = os.environ.get("DEMO_API", "v1")
    if api not in ("v1", "v2"):
        raise SystemExit(f"demo: DEMO_API must be v1 or v2, not {api!r}")
    default_sample = "togetherendpoint-v2.yaml" if api == "v2" else "togetherendpoint-minimal.yaml"
    sample = Path(os.environ.get("DEMO_SAMPLE", REPO / "deploy" / "samples" / default_sample))
    log_path = Path(os.environ.get("DEMO_LOG", "/tmp/together-operator-demo.log"))
    with cluster() as kubeconfig, together_api() as (base_url, api_key):
        kubectl = Kubectl(kubeconfig)
        crd = install_crd(kubectl, field_manager="together-operator-demo")
        say(f"CRD {crd} installed")
        with operator(kubeconfig, base_url, api_key, log_path, api):
            kubectl("create", "namespace", NAMESPACE, check=False)
            applied = kubectl("apply", "-n", NAMESPACE, "-f", str(sample), "-o", "name").strip()
            say(f"applied {applied} in namespace {NAMESPACE}; waiting for condition Ready")
            waited = kubectl(
                "-n", NAMESPACE, "wait", "--for=condition=Ready", "--timeout=300s", applied, check=False
            )
            print(kubectl("get", "-n", NAMESPACE, "togetherendpoints", "-o", "wide"), flush=True)
            if "condition met" not in waited:
                print(kubectl("describe", "-n", NAMESPACE, applied), flush=True)
                say(f"the endpoint did not become Ready; operator log: {log_path}")
                return 1
            status = json.loads(kubectl("get", "-n", NAMESPACE, applied, "-o", "json"))["status"]
            inference_url = (
                base_url if api == "v1" or os.environ.get("DEMO_REAL") != "1" else DEFAULT_V2_INFERENCE_URL
            )
            print_traffic_hint(inference_url, status["endpointName"])
            if os.environ.get("DEMO_KEEP") == "1":
                say(f"DEMO_KEEP=1: running until Ctrl-C; KUBECONFIG={kubeconfig}")
                wait_for_interrupt()
            say(f"deleting {applied}: the operator deletes the remote endpoint before releasing it")
            kubectl("delete", "-n", NAMESPACE, applied, "--timeout=120s")
            say("done")
    return 0


def print_traffic_hint(base_url: str, endpoint_name: str) -> None:
    body = json.dumps({"model": endpoint_name, "messages": [{"role": "user", "content": "Hello!"}]})
    print(
        f"\nSend traffic with the endpoint's system name as `model`:\n\n"
        f"  curl -X POST {base_url}/chat/completions \\\n"
        f'    -H "Authorization: Bearer $TOGETHER_API_KEY" -H "Content-Type: application/json" \\\n'
        f"    -d '{body}'\n",
        flush=True,
    )


def wait_for_interrupt() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    sys.exit(main())
