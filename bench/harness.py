"""One benchmark run: a control plane, the simulator, an operator (ours or the baseline) and N resources.

`run_one` goes through four phases and measures each from outside the operator:

1. create: N TogetherEndpoints at once over `namespaces` namespaces; until every one is Ready. Together
   calls from the simulator's call log, Kubernetes writes from the apiserver's `/metrics`.
2. settle: a pause so the last transitions and trailing writes finish.
3. steady: a quiet window of `window_intervals` poll intervals with no change anywhere: Together calls
   per poll interval, status PATCHes, the operator's CPU time and resident memory (/proc).
4. latency: out-of-band changes of `latency_samples` endpoints to ERROR (a remote state change the
   operator only reports, so the poller stays at its steady interval: the worst case), staggered at
   random over a few poll intervals; for each, the seconds until a watch on the resources shows
   `status.state` ERROR.
5. drift: out-of-band rescales of `drift_samples` endpoints at random moments; for each, the seconds
   until the operator's PATCH puts the spec's autoscaling back.

Mode `ours-v2` runs our operator with every resource on Together v2 (`spec.api: v2`, the simulator's
v2 API): the same phases, with a deployment FAILED out of band as the remote change and a deployment's
autoscaling changed out of band as the drift (`V2`). The baseline is on v1 only.

Nothing here asserts: the result is a dict for the JSON report (see `bench.report`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes import watch as kube_watch
from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from tests.support.controlplane import ControlPlane, free_port
from tests.support.kube import install_crd
from tests.support.manifests import endpoint_manifest
from tests.support.operator import operator_environment, terminate, wait_healthy

from together_operator.resource import GROUP, PLURAL, VERSION
from together_simulator import Call, RunningSimulator, SimulatorConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE_HANDLERS = REPO_ROOT / "bench" / "baseline_handlers.py"
RUN_LABEL = "bench.together.ai/run"
MODES = ("ours", "ours-v2", "baseline", "tuned")
"""ours-v2: ours with every resource on Together v2 (`spec.api: v2`); tuned: ours with the candidate
fixes still in bench/tuned_operator.py applied from outside."""
LIST_PATH = re.compile(r"/v1/endpoints")
SINGLE_PATH = re.compile(r"/v1/endpoints/[^/]+")
V2_ENDPOINTS_PATH = re.compile(r"/v2/projects/[^/]+/endpoints")
V2_ENDPOINT_PATH = re.compile(r"/v2/projects/[^/]+/endpoints/[^/]+")
V2_DEPLOYMENTS_PATH = re.compile(r"/v2/projects/[^/]+/endpoints/[^/]+/deployments")
V2_DEPLOYMENT_PATH = re.compile(r"/v2/projects/[^/]+/endpoints/[^/]+/deployments/[^/]+")
V2_CATALOGUE_PATH = re.compile(r"/v2/(supported-models|public/[^/]+|projects/[^/]+/(configs|models))(/.*)?")


@dataclass(frozen=True)
class BenchConfig:
    poll_interval: float = 10.0
    transition_poll_interval: float = 2.0
    resync_interval: float = 60.0
    """Shortest time between two drift reads of one endpoint (--resync-interval; the product's default)."""
    resync_budget: float = 1.0
    """Drift reads per second per credential (--resync-budget; the product's default)."""
    rate_limit: float = 50.0
    """Together calls per second for the operator process (--rate-limit); 0: unlimited."""
    max_concurrent_calls: int = 16
    """Together calls in flight at once (--max-concurrent-calls; the product's default)."""
    transition_seconds: float = 2.0
    """The simulator's duration of each lifecycle step (PENDING, STARTING, STOPPING)."""
    namespaces: int = 10
    quiet_seconds: float = 600.0
    """Length of the quiet (steady-state) window: long enough to hold resync reads of every endpoint at
    small N, and any periodic write (a heartbeat) the operator might make."""
    settle_seconds: float | None = None
    """Pause between all-Ready and the steady window; default two poll intervals (at least 10 s)."""
    latency_samples: int = 50
    """Endpoints changed out of band to time the status; at small N fewer, leaving `drift_samples`
    untouched endpoints for the drift phase (a changed one is no longer steady)."""
    latency_spread_intervals: float = 3.0
    """The out-of-band changes are spread at random over this many poll intervals."""
    drift_samples: int = 20
    """Endpoints rescaled out of band (autoscaling the list does not show) to time their correction."""
    drift_spread_seconds: float = 60.0
    """The out-of-band rescales are spread at random over this many seconds."""
    ready_timeout: float = 1800.0
    create_workers: int = 8
    profile: bool = False
    """Record the operator with py-spy during the create and steady phases (needs the bench extra)."""
    memprobe: bool = False
    """Diagnostics only: run our operator under tracemalloc and dump its top allocation sites at the
    end of the steady window (bench/memprobe.py); memory and CPU figures of such a run are distorted."""

    @property
    def settle(self) -> float:
        if self.settle_seconds is not None:
            return self.settle_seconds
        return max(10.0, 2 * self.poll_interval)


def say(message: str) -> None:
    print(f"bench {time.strftime('%H:%M:%S')}: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# processes


class ProcessStats:
    """Resident memory and CPU time of one process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
        return (utime + stime) / self._ticks

    def memory_mb(self) -> dict[str, float]:
        """VmRSS (now) and VmHWM (peak) in MiB."""
        values: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return {"rss_mb": values.get("VmRSS", 0.0), "peak_rss_mb": values.get("VmHWM", 0.0)}


class Child:
    """A subprocess we started, its output in a file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            list(args), env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
        self.stats = ProcessStats(self.proc.pid)

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.proc.args!r} exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            terminate(self.proc)
        self._log.close()


@contextlib.contextmanager
def simulator_process(config: SimulatorConfig, workdir: Path) -> Iterator[RunningSimulator]:
    child = Child(
        [sys.executable, "-m", "bench.simulator_main", config.model_dump_json()],
        workdir / "simulator.log",
        env=_python_env(),
    )
    try:
        base_url = admin_url = ""
        deadline = time.monotonic() + 60
        while not (base_url and admin_url):
            child.check()
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator did not print its URLs within 60 s")
            text = child.log_path.read_text(errors="replace")
            if match := re.search(r"TOGETHER_BASE_URL=(\S+)", text):
                base_url = match.group(1)
            if match := re.search(r"admin interface: (\S+?)/?$", text, re.MULTILINE):
                admin_url = match.group(1)
            time.sleep(0.1)
        simulator = RunningSimulator(base_url, admin_url, config)
        try:
            yield simulator
        finally:
            simulator.close()
    finally:
        child.stop()


def _python_env() -> dict[str, str]:
    """The environment for our Python children: this repository first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT / "operator"), str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


def operator_command(mode: str, namespace_glob: str, cfg: BenchConfig, health_port: int) -> list[str]:
    if mode in ("ours", "ours-v2", "tuned"):
        module = "bench.tuned_operator" if mode == "tuned" else "together_operator.cli"
        return [
            sys.executable,
            "-m",
            "bench.memprobe" if cfg.memprobe else module,
            "run",
            f"--namespace={namespace_glob}",
            "--health-host=127.0.0.1",
            f"--health-port={health_port}",
            "--metrics-port=0",  # several operators may run at once (tests, benchmarks): no fixed port
            f"--poll-interval={cfg.poll_interval}",
            f"--transition-poll-interval={cfg.transition_poll_interval}",
            f"--resync-interval={cfg.resync_interval}",
            f"--resync-budget={cfg.resync_budget}",
            f"--rate-limit={cfg.rate_limit}",
            f"--max-concurrent-calls={cfg.max_concurrent_calls}",
            "--log-format=plain",
        ]
    if mode == "baseline":
        return [
            sys.executable,
            "-m",
            "kopf",
            "run",
            "--standalone",
            f"--namespace={namespace_glob}",
            f"--liveness=http://127.0.0.1:{health_port}/healthz",
            "--log-format=plain",
            str(BASELINE_HANDLERS),
        ]
    raise ValueError(f"unknown mode {mode!r}; one of {MODES}")


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else "py-spy"


class Profiler:
    """py-spy recording one process until stopped; writes collapsed stacks (raw format)."""

    def __init__(self, pid: int, output: Path) -> None:
        self.output = output
        self._proc = subprocess.Popen(
            [
                _py_spy(),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                "50",
                "--nonblocking",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> Path:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        return self.output


# --------------------------------------------------------------------------------------------------
# Kubernetes side


_METRIC_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def apiserver_writes(cp: ControlPlane) -> dict[str, float]:
    """Cumulative apiserver requests that write: status PATCHes of TogetherEndpoints, other PATCHes of
    them (kopf's finalizer and annotations), and Event creations."""
    text = cp.kubectl("get", "--raw", "/metrics").stdout
    totals = {"status_patches": 0.0, "other_patches": 0.0, "event_writes": 0.0}
    for match in _METRIC_LINE.finditer(text):
        labels = dict(_LABEL.findall(match.group("labels")))
        value = float(match.group("value"))
        if labels.get("resource") == PLURAL and labels.get("verb") in ("PATCH", "UPDATE"):
            key = "status_patches" if labels.get("subresource") == "status" else "other_patches"
            totals[key] += value
        elif labels.get("resource") == "events" and labels.get("verb") in ("POST", "PATCH", "UPDATE"):
            totals["event_writes"] += value
    return totals


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    return {key: round(after[key] - before[key]) for key in after}


@dataclass
class Observed:
    """What the watch saw of one resource."""

    state: str | None = None
    ready: bool = False
    endpoint_id: str | None = None
    deployment_id: str | None = None
    """v2 only: the live deployment."""
    first_ready: float | None = None
    states: list[tuple[float, str | None]] = field(default_factory=list)
    """(arrival time, status.state) each time the state changed."""


class StatusWatch:
    """Watches every TogetherEndpoint of the run in a thread, recording arrival times of their states."""

    def __init__(self, api_client: ApiClient, label_selector: str) -> None:
        self._api = CustomObjectsApi(api_client)
        self._selector = label_selector
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.objects: dict[str, Observed] = {}
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="status-watch", daemon=True)

    def __enter__(self) -> StatusWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=40)

    def snapshot(self) -> dict[str, Observed]:
        with self._lock:
            return {
                key: Observed(o.state, o.ready, o.endpoint_id, o.deployment_id, o.first_ready, list(o.states))
                for key, o in self.objects.items()
            }

    def ready_count(self) -> int:
        with self._lock:
            return sum(1 for o in self.objects.values() if o.ready)

    def _run(self) -> None:
        resource_version: str | None = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    listed: Any = self._api.list_cluster_custom_object(
                        GROUP, VERSION, PLURAL, label_selector=self._selector
                    )
                    now = time.time()
                    for item in listed["items"]:
                        self._record(item, now)
                    resource_version = listed["metadata"]["resourceVersion"]
                stream = kube_watch.Watch().stream(
                    self._api.list_cluster_custom_object,
                    GROUP,
                    VERSION,
                    PLURAL,
                    label_selector=self._selector,
                    resource_version=resource_version,
                    timeout_seconds=10,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        resource_version = None
                        break
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._record(obj, time.time())
                    if self._stop.is_set():
                        break
            except ApiException as error:
                self.errors += 1
                if error.status == 410:
                    resource_version = None
                self._stop.wait(0.5)
            except Exception:  # the connection broke (e.g. the control plane is stopping)
                self.errors += 1
                self._stop.wait(0.5)

    def _record(self, obj: dict[str, Any], now: float) -> None:
        meta = obj["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        status = obj.get("status") or {}
        state = status.get("state")
        ready = any(
            c.get("type") == "Ready"
            and c.get("status") == "True"
            and c.get("observedGeneration", meta.get("generation")) == meta.get("generation")
            for c in status.get("conditions") or []
        )
        with self._lock:
            seen = self.objects.get(key)
            if seen is None:
                seen = self.objects[key] = Observed()
            if state != seen.state or not seen.states:
                seen.states.append((now, state))
            seen.state, seen.ready = state, ready
            seen.endpoint_id = status.get("endpointId") or seen.endpoint_id
            seen.deployment_id = status.get("deploymentId") or seen.deployment_id
            if ready and seen.first_ready is None:
                seen.first_ready = now


def create_resources(api_client: ApiClient, manifests: Sequence[dict[str, Any]], workers: int) -> None:
    api = CustomObjectsApi(api_client)

    def create(body: dict[str, Any]) -> None:
        for attempt in range(5):
            try:
                api.create_namespaced_custom_object(
                    GROUP, VERSION, body["metadata"]["namespace"], PLURAL, body
                )
                return
            except ApiException as error:
                if error.status == 409:
                    return
                if attempt == 4 or error.status not in (429, 500, 503, 504):
                    raise
                time.sleep(0.5 * (attempt + 1))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(create, body) for body in manifests]:
            future.result(timeout=600)


def kube_client(cp: ControlPlane, pool_size: int) -> ApiClient:
    configuration = kubernetes.client.Configuration()
    loader: Any = kubernetes.config  # partly untyped
    loader.load_kube_config(config_file=str(cp.kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return ApiClient(configuration)


def prepare_cluster(cp: ControlPlane, namespaces: Sequence[str]) -> None:
    install_crd(cp.kubectl)
    existing = set(cp.kubectl("get", "namespaces", "-o", "name").stdout.split())
    for namespace in namespaces:
        if f"namespace/{namespace}" not in existing:
            cp.kubectl("create", "namespace", namespace)


# --------------------------------------------------------------------------------------------------
# the Together API the resources are on


@dataclass(frozen=True)
class RemoteApi:
    """How the harness changes endpoints behind the operator's back on one Together API, and what it
    sees of them."""

    name: str
    spec: dict[str, str]
    """Added to the spec of every resource."""
    running_state: str
    """`status.state` of a resource that serves."""
    failed_state: str
    """`status.state` once `fail` shows."""
    target: Callable[[Observed], str | None]
    """The id the out-of-band changes address."""
    fail: Callable[[RunningSimulator, str], object]
    """A remote state change the operator only reports."""
    rescale: Callable[[RunningSimulator, str], object]
    """Autoscaling 2-3 instead of the spec's 1-1."""
    rescale_path: re.Pattern[str]
    """The path of the operator's PATCH that puts the autoscaling back; it ends with the target id."""


V1 = RemoteApi(
    name="v1",
    spec={},
    running_state="STARTED",
    failed_state="ERROR",
    target=lambda observed: observed.endpoint_id,
    fail=lambda simulator, endpoint_id: simulator.out_of_band(endpoint_id, "error"),
    rescale=lambda simulator, endpoint_id: simulator.out_of_band(
        endpoint_id, "scale", min_replicas=2, max_replicas=3
    ),
    rescale_path=SINGLE_PATH,
)
V2 = RemoteApi(
    name="v2",
    spec={"api": "v2"},
    running_state="READY",
    failed_state="FAILED",
    target=lambda observed: observed.deployment_id,
    fail=lambda simulator, deployment_id: simulator.v2_out_of_band(deployment_id, "fail"),
    rescale=lambda simulator, deployment_id: simulator.v2_out_of_band(
        deployment_id, "scale", min_replicas=2, max_replicas=3
    ),
    rescale_path=V2_DEPLOYMENT_PATH,
)


def remote_api(mode: str) -> RemoteApi:
    return V2 if mode == "ours-v2" else V1


# --------------------------------------------------------------------------------------------------
# figures


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _kind(call: Call) -> str:
    if call.path.startswith(("/v2/", "/v3/")):
        return _v2_kind(call)
    if call.method == "GET" and LIST_PATH.fullmatch(call.path):
        return "list"
    if call.method == "GET" and SINGLE_PATH.fullmatch(call.path):
        return "get"
    if call.method == "POST" and LIST_PATH.fullmatch(call.path):
        return "create"
    if call.method == "PATCH":
        return "update"
    if call.path.startswith("/v1/hardware"):
        return "hardware"
    return "other"


def _v2_kind(call: Call) -> str:
    """A v2 call by what it is for: `list` starts a walk of the project's endpoint list, `list_page`
    continues one; `get` / `get_deployment` read one endpoint / deployment; `create` /
    `create_deployment`; `traffic_split` (an endpoint PATCH), `update` (a deployment PATCH);
    `catalogue`: supported models, configs, instance types."""
    path = call.path
    if V2_ENDPOINTS_PATH.fullmatch(path):
        if call.method == "GET":
            return "list_page" if "after" in call.query else "list"
        if call.method == "POST":
            return "create"
    if V2_ENDPOINT_PATH.fullmatch(path):
        if call.method == "GET":
            return "get"
        if call.method == "PATCH" and call.query.get("updateMask") == "trafficSplit":
            return "traffic_split"
    if V2_DEPLOYMENTS_PATH.fullmatch(path) and call.method == "POST":
        return "create_deployment"
    if V2_DEPLOYMENT_PATH.fullmatch(path):
        if call.method == "GET":
            return "get_deployment"
        if call.method == "PATCH":
            return "update"
    if path == "/v3/whoami":
        return "whoami"
    if call.method == "GET" and V2_CATALOGUE_PATH.fullmatch(path):
        return "catalogue"
    return "other"


def calls_between(calls: Sequence[Call], start: float, end: float) -> dict[str, int]:
    counts: dict[str, int] = {"total": 0}
    for call in calls:
        if start <= call.time < end:
            counts["total"] += 1
            kind = _kind(call)
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    every: float = 0.5,
    progress: Callable[[], str] | None = None,
) -> float:
    """Poll `predicate` until true; returns when (time.time()); raises TimeoutError with `what`."""
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + 15
    while True:
        if predicate():
            return time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        if progress is not None and time.monotonic() > next_report:
            say(progress())
            next_report = time.monotonic() + 15
        time.sleep(every)


# --------------------------------------------------------------------------------------------------
# one run


def run_one(
    n: int,
    mode: str,
    cfg: BenchConfig,
    workdir: Path,
    *,
    control_plane: ControlPlane | None = None,
    namespace_prefix: str = "bench",
) -> dict[str, Any]:
    """Measure `mode` (one of MODES) with `n` resources; a fresh control plane unless given."""
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if control_plane is None:
            say(f"{mode} N={n}: starting a control plane")
            control_plane = stack.enter_context(ControlPlane())
        return _run(n, mode, cfg, workdir, control_plane, namespace_prefix)
    raise AssertionError("unreachable")


def _run(n: int, mode: str, cfg: BenchConfig, workdir: Path, cp: ControlPlane, prefix: str) -> dict[str, Any]:
    run_label = f"{prefix}-{mode}-{n}-{int(time.time())}"
    namespaces = [f"{prefix}-{i}" for i in range(cfg.namespaces)]
    prepare_cluster(cp, namespaces)
    sim_config = SimulatorConfig(transition_seconds=cfg.transition_seconds, seed=1, call_log_limit=5_000_000)
    api = remote_api(mode)
    result: dict[str, Any] = {"n": n, "mode": mode, "api": api.name, "credentials": 1}
    with contextlib.ExitStack() as stack:
        simulator = stack.enter_context(simulator_process(sim_config, workdir))
        health_port = free_port()
        env = {
            **operator_environment(cp.kubeconfig, simulator.base_url, simulator.api_key, _python_env()),
            "BENCH_POLL_INTERVAL": str(cfg.poll_interval),
            "BENCH_TRANSITION_POLL_INTERVAL": str(cfg.transition_poll_interval),
            "BENCH_RATE_LIMIT": str(cfg.rate_limit),
            "BENCH_MAX_CONCURRENT_CALLS": str(cfg.max_concurrent_calls),
            "BENCH_MEMPROBE_OUT": str(workdir / "memprobe.txt"),
        }
        operator = Child(
            operator_command(mode, f"{prefix}-*", cfg, health_port), workdir / "operator.log", env=env
        )
        stack.callback(operator.stop)
        wait_healthy(
            f"http://127.0.0.1:{health_port}/healthz", operator.check, timeout=300 if cfg.memprobe else 90
        )
        api_client = stack.enter_context(kube_client(cp, cfg.create_workers + 2))
        watch = stack.enter_context(StatusWatch(api_client, f"{RUN_LABEL}={run_label}"))
        result["idle_rss_mb"] = operator.stats.memory_mb()["rss_mb"]

        # --- 1. create ---------------------------------------------------------------------------
        profiler = Profiler(operator.proc.pid, workdir / "profile-create.txt") if cfg.profile else None
        writes_0 = apiserver_writes(cp)
        cpu_0 = operator.stats.cpu_seconds()
        manifests = [
            endpoint_manifest(
                f"tep-{i:05d}",
                namespace=namespaces[i % len(namespaces)],
                labels={RUN_LABEL: run_label},
                **api.spec,
            )
            for i in range(n)
        ]
        say(f"{mode} N={n}: creating {n} resources")
        t_create = time.time()
        create_resources(api_client, manifests, cfg.create_workers)
        t_created = time.time()
        t_ready = wait_until(
            lambda: watch.ready_count() >= n,
            cfg.ready_timeout,
            f"{n} resources Ready",
            progress=lambda: f"{mode} N={n}: {watch.ready_count()}/{n} Ready",
            every=1.0,
        )
        operator.check()
        cpu_1 = operator.stats.cpu_seconds()
        writes_1 = apiserver_writes(cp)
        if profiler is not None:
            result["profile_create"] = str(profiler.stop())
        say(f"{mode} N={n}: all Ready after {t_ready - t_create:.1f} s")

        # --- 2. settle, 3. steady ---------------------------------------------------------------
        time.sleep(cfg.settle)
        profiler = Profiler(operator.proc.pid, workdir / "profile-steady.txt") if cfg.profile else None
        window = cfg.quiet_seconds
        writes_2 = apiserver_writes(cp)
        cpu_2 = operator.stats.cpu_seconds()
        t_steady = time.time()
        say(f"{mode} N={n}: steady window of {window:.0f} s")
        time.sleep(window)
        t_steady_end = time.time()
        cpu_3 = operator.stats.cpu_seconds()
        writes_3 = apiserver_writes(cp)
        memory = operator.stats.memory_mb()
        if cfg.memprobe and mode == "ours":
            operator.proc.send_signal(signal.SIGUSR1)
            wait_until(lambda: (workdir / "memprobe.txt").exists(), 120, "the tracemalloc dump")
        if profiler is not None:
            result["profile_steady"] = str(profiler.stop())
        operator.check()

        # --- 4. latency of remote changes -------------------------------------------------------
        latencies, missed = _measure_latency(simulator, watch, cfg, n, api)
        operator.check()

        # --- 5. drift of a field the list does not show --------------------------------------------
        # The drift phase is long at large N (N / budget seconds): its writes beyond the corrections
        # show whether anything else (a heartbeat) writes in a window longer than the quiet one.
        writes_4 = apiserver_writes(cp)
        t_drift = time.time()
        corrections, uncorrected = _measure_drift(simulator, watch, cfg, n, mode, api)
        t_drift_end = time.time()
        writes_5 = apiserver_writes(cp)
        operator.check()
        t_end = time.time()
        calls = simulator.calls()
        (workdir / "calls.json").write_text(json.dumps([c.model_dump(mode="json") for c in calls]))

    # --- figures ----------------------------------------------------------------------------------
    observed = watch.snapshot()
    creates = sorted(c.time for c in calls if _kind(c) == "create")  # on v2, of endpoints
    create_calls = calls_between(calls, t_create, t_ready + 0.001)
    ready_after = sorted(o.first_ready - t_create for o in observed.values() if o.first_ready is not None)
    creation_seconds = t_ready - t_create
    result["create"] = {
        "apply_seconds": round(t_created - t_create, 2),
        "all_ready_seconds": round(creation_seconds, 2),
        "ready_p50_seconds": _rounded(percentile(ready_after, 50)),
        "ready_p99_seconds": _rounded(percentile(ready_after, 99)),
        **_creates(creates, t_create),
        "together_calls": create_calls,
        "together_calls_per_second": _rounded(create_calls["total"] / creation_seconds),
        "together_calls_per_resource": _rounded(create_calls["total"] / n),
        "kubernetes_writes": _delta(writes_1, writes_0),
        "operator_cpu_seconds": round(cpu_1 - cpu_0, 2),
    }
    if api is V2:
        deployment_creates = sorted(c.time for c in calls if _kind(c) == "create_deployment")
        result["create"]["deployments"] = _creates(deployment_creates, t_create)
    steady_calls = calls_between(calls, t_steady, t_steady_end)
    intervals = (t_steady_end - t_steady) / cfg.poll_interval
    result["steady"] = {
        "window_seconds": round(t_steady_end - t_steady, 2),
        "poll_intervals": round(intervals, 2),
        "together_calls": steady_calls,
        "calls_per_interval_per_credential": round(
            steady_calls["total"] / intervals / result["credentials"], 2
        ),
        "kubernetes_writes": _delta(writes_3, writes_2),
        "operator_cpu_percent": round(100 * (cpu_3 - cpu_2) / (t_steady_end - t_steady), 2),
        **memory,
    }
    result["latency"] = {
        "samples": len(latencies) + missed,
        "missed": missed,
        "p50_seconds": _rounded(percentile(latencies, 50)),
        "p99_seconds": _rounded(percentile(latencies, 99)),
        "max_seconds": _rounded(max(latencies) if latencies else None),
        "goal_seconds": cfg.poll_interval + 2,
    }
    result["drift"] = {
        "samples": len(corrections) + uncorrected,
        "uncorrected": uncorrected,
        "p50_seconds": _rounded(percentile(corrections, 50)),
        "p99_seconds": _rounded(percentile(corrections, 99)),
        "max_seconds": _rounded(max(corrections) if corrections else None),
        "goal_seconds": drift_bound(cfg, n, mode),
        "window_seconds": round(t_drift_end - t_drift, 2),
        "kubernetes_writes": _delta(writes_5, writes_4),
    }
    result["total_together_calls"] = calls_between(calls, t_create, t_end)["total"]
    result["watch_errors"] = watch.errors
    result["config"] = asdict(cfg)
    return result


def _creates(times: Sequence[float], since: float) -> dict[str, Any]:
    """How many remote creates, when (seconds after `since`), and at what rate."""
    return {
        "remote_creates": len(times),
        "first_create_after_seconds": _rounded(times[0] - since) if times else None,
        "last_create_after_seconds": _rounded(times[-1] - since) if times else None,
        "create_rate_per_second": _rounded((len(times) - 1) / (times[-1] - times[0]))
        if len(times) > 1 and times[-1] > times[0]
        else None,
    }


def _measure_latency(
    simulator: RunningSimulator, watch: StatusWatch, cfg: BenchConfig, n: int, api: RemoteApi
) -> tuple[list[float], int]:
    """Put `latency_samples` endpoints in ERROR (v2: their deployments in FAILED) out of band at random
    moments; seconds until each shows."""
    samples = min(cfg.latency_samples, n - min(cfg.drift_samples, n))
    if samples == 0:
        return [], 0
    observed = watch.snapshot()
    keys = sorted(key for key, o in observed.items() if api.target(o) and o.state == api.running_state)
    rng = random.Random(n)
    chosen = rng.sample(keys, min(samples, len(keys)))
    spread = cfg.latency_spread_intervals * cfg.poll_interval
    offsets = sorted(rng.uniform(0, spread) for _ in chosen)
    say(f"latency: {len(chosen)} out-of-band changes over {spread:.0f} s")
    began = time.time()
    changed: dict[str, float] = {}
    for key, offset in zip(chosen, offsets, strict=True):
        delay = began + offset - time.time()
        if delay > 0:
            time.sleep(delay)
        target = api.target(observed[key])
        assert target is not None
        changed[key] = time.time()
        api.fail(simulator, target)

    def shown(key: str, after: float, now: dict[str, Observed]) -> float | None:
        for at, state in now[key].states:
            if at >= after and state == api.failed_state:
                return at
        return None

    deadline = time.monotonic() + 3 * cfg.poll_interval + 30
    while True:
        now = watch.snapshot()
        seen = {key: shown(key, at, now) for key, at in changed.items()}
        if all(v is not None for v in seen.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    latencies = [at - changed[key] for key, at in seen.items() if at is not None]
    return latencies, sum(1 for at in seen.values() if at is None)


def drift_bound(cfg: BenchConfig, n: int, mode: str) -> float:
    """Seconds within which an operator promises to put drift of autoscaling back. On v1 the list lacks
    it: ours re-reads each endpoint at least every max(resync interval, N / budget) s; the baseline GETs
    every endpoint each poll interval (if its rate limit allows). On v2 the project's endpoint list
    carries each deployment's autoscaling, so the next list shows the drift: one poll interval, plus the
    reconcile (as for the latency of a remote change)."""
    if mode == "baseline":
        return max(cfg.poll_interval, n / cfg.rate_limit) if cfg.rate_limit else cfg.poll_interval
    if remote_api(mode) is V2:
        return cfg.poll_interval + 2
    return max(cfg.resync_interval, n / cfg.resync_budget)


def _measure_drift(
    simulator: RunningSimulator, watch: StatusWatch, cfg: BenchConfig, n: int, mode: str, api: RemoteApi
) -> tuple[list[float], int]:
    """Rescale `drift_samples` steady endpoints (v2: their deployments) out of band at random moments;
    seconds until the operator's PATCH of each puts the spec's autoscaling back. On v1 autoscaling is
    not in the list, so only a single GET sees it: this measures the drift reads, not the poller. On v2
    the list carries it: this measures the poller."""
    samples = min(cfg.drift_samples, n)
    if samples == 0:
        return [], 0
    observed = watch.snapshot()
    ready = sorted(
        key for key, o in observed.items() if api.target(o) and o.state == api.running_state and o.ready
    )
    rng = random.Random(n + 1)
    chosen = rng.sample(ready, min(samples, len(ready)))
    offsets = sorted(rng.uniform(0, cfg.drift_spread_seconds) for _ in chosen)
    say(f"drift: {len(chosen)} out-of-band rescales over {cfg.drift_spread_seconds:.0f} s")
    began = time.time()
    changed: dict[str, float] = {}
    for key, offset in zip(chosen, offsets, strict=True):
        delay = began + offset - time.time()
        if delay > 0:
            time.sleep(delay)
        target = api.target(observed[key])
        assert target is not None
        changed[target] = time.time()
        api.rescale(simulator, target)

    def put_back() -> dict[str, float]:
        found: dict[str, float] = {}
        for call in simulator.calls(method="PATCH", path=api.rescale_path.pattern):
            target = call.path.rsplit("/", 1)[-1]
            at = changed.get(target)
            if at is not None and call.time >= at and target not in found:
                found[target] = call.time - at
        return found

    deadline = time.monotonic() + drift_bound(cfg, n, mode) + 3 * cfg.poll_interval + 30
    while len(found := put_back()) < len(changed) and time.monotonic() < deadline:
        time.sleep(1.0)
    return list(found.values()), len(changed) - len(found)
