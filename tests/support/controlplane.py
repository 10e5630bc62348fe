"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on loopback, for
tests and local runs.

The binaries come from `hack/build-testbins.sh` (built from upstream Go modules and cached outside the
repo, or taken from `KUBEBUILDER_ASSETS`). Each `ControlPlane` gets random loopback ports, a fresh data
dir on tmpfs (/dev/shm when available), its own PKI and an admin kubeconfig (`CN=admin,
O=system:masters`, certificates embedded), like controller-runtime's envtest.

    with ControlPlane() as cp:
        cp.kubectl("get", "namespaces")
        client = kubernetes.config.new_client_from_config(config_file=str(cp.kubeconfig))

The controller manager runs the controllers that act on every cluster's objects, whatever their kind:
namespace deletion, garbage collection of owned objects, the `default` ServiceAccount and the
`kube-root-ca.crt` ConfigMap of each namespace, ServiceAccount token Secrets and the aggregated
`admin`/`edit`/`view` ClusterRoles (CONTROLLERS). Workload controllers, the scheduler and the kubelet
are not run: there are no nodes and no Pods run.
"""

from __future__ import annotations

import atexit
import base64
import collections
import contextlib
import datetime as dt
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-testbins.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
CONTROLLERS = (
    "namespace-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "clusterrole-aggregation-controller",
    "root-ca-certificate-publisher-controller",
)
DATA_DIR_PREFIX = "together-cp-"
_OWNER_FILE = "owner.pid"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike CalledProcessError, the message includes its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}"


def expected_k8s_version() -> str:
    """The Kubernetes version `hack/build-testbins.sh` builds, e.g. "1.35.4"."""
    match = re.search(r"^K8S_VERSION=([0-9.]+)", BUILD_SCRIPT.read_text(), re.MULTILINE)
    if not match:
        raise ControlPlaneError(f"no K8S_VERSION= line in {BUILD_SCRIPT}")
    return match.group(1)


def find_bin_dir(*, show_build_log: bool = False) -> Path:
    """Run `hack/build-testbins.sh` (build or reuse the cached binaries) and return the bin dir.

    Warm: well under a second. Cold: several minutes on 2 cores. With `show_build_log` the script's
    progress is also copied to this process's stderr as it happens.
    """
    with subprocess.Popen(
        [str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        log: collections.deque[str] = collections.deque(maxlen=40)
        for line in proc.stderr:
            log.append(line.rstrip("\n"))
            if show_build_log:
                sys.stderr.write(line)
                sys.stderr.flush()
        out = proc.stdout.read()
    tail = "\n".join(log)
    if proc.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}:\n{tail}")
    lines = out.strip().splitlines()
    if not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} printed no bin dir:\n{tail}")
    bin_dir = Path(lines[-1])
    missing = [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        raise ControlPlaneError(f"{bin_dir} lacks executable {', '.join(missing)}")
    return bin_dir


class ControlPlane:
    """etcd, kube-apiserver and kube-controller-manager on 127.0.0.1 with random ports, a tmpfs data dir
    and an admin kubeconfig.

    `start()` blocks until /readyz answers and the controllers gave the `default` namespace its
    `default` ServiceAccount; `stop()` terminates only
    the processes this object started (SIGTERM, then SIGKILL) and removes the data dir. Process output
    goes to `logs[name]` inside the data dir; `log_tail(name)` returns its end for failure reports.

    The child processes get a parent-death signal (SIGTERM) when started from the main thread, so a
    killed test run does not leave them behind. (Linux ties that signal to the starting *thread*, so
    starts from other threads do without it.)
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        data_root: Path | None = None,
        startup_timeout: float = 120.0,
        apiserver_args: Sequence[str] = (),
        keep_data: bool = False,
    ) -> None:
        self._bin_dir = bin_dir
        self._data_root = data_root
        self.startup_timeout = startup_timeout
        self.apiserver_args = list(apiserver_args)
        self.keep_data = keep_data
        self._data_dir: Path | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._controller_manager: subprocess.Popen[bytes] | None = None
        self._api_port = 0
        self._etcd_port = 0
        self._peer_port = 0
        self._ssl: ssl.SSLContext | None = None
        self.startup_seconds: float | None = None
        """Seconds from launching etcd to a ready apiserver, measured by the last `start()`."""

    # ----------------------------------------------------------------------------------------------
    # public properties

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return self._bin_dir

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise ControlPlaneError("control plane not started")
        return self._data_dir

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (system:masters), certificates embedded, current context namespace `default`."""
        return self.data_dir / "kubeconfig"

    @property
    def ca_cert(self) -> Path:
        """PEM file of the CA that signed the apiserver's serving certificate."""
        return self.data_dir / "pki" / "ca.crt"

    @property
    def server(self) -> str:
        """The apiserver URL, e.g. https://127.0.0.1:43121."""
        if not self._api_port:
            raise ControlPlaneError("control plane not started")
        return f"https://127.0.0.1:{self._api_port}"

    @property
    def etcd_url(self) -> str:
        if not self._etcd_port:
            raise ControlPlaneError("control plane not started")
        return f"http://127.0.0.1:{self._etcd_port}"

    @property
    def logs(self) -> dict[str, Path]:
        """Log file per process name ("etcd", "kube-apiserver", "kube-controller-manager"), both stdout
        and stderr."""
        return {name: self.data_dir / "logs" / f"{name}.log" for name in _PROCESSES}

    @property
    def apiserver_log(self) -> Path:
        return self.logs["kube-apiserver"]

    @property
    def etcd_log(self) -> Path:
        return self.logs["etcd"]

    # ----------------------------------------------------------------------------------------------
    # lifecycle

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Start etcd, kube-apiserver and kube-controller-manager, wait until they are ready, write the
        kubeconfig."""
        if self._data_dir is not None:
            raise ControlPlaneError(f"control plane already started in {self._data_dir}")
        bin_dir = self.bin_dir  # may build; not part of startup_seconds
        _remove_stale_data_dirs(self._data_root_dir())
        atexit.register(self.stop)
        try:
            for attempt in range(3):
                self._data_dir = Path(tempfile.mkdtemp(prefix=DATA_DIR_PREFIX, dir=self._data_root_dir()))
                (self._data_dir / _OWNER_FILE).write_text(str(os.getpid()))
                (self._data_dir / "logs").mkdir()
                self._api_port, self._etcd_port, self._peer_port = free_ports(3)
                _write_pki(self._data_dir / "pki")
                _write_kubeconfig(self._data_dir, self.server)
                began = time.monotonic()
                try:
                    self._start_etcd(bin_dir)
                    self._start_apiserver(bin_dir)
                    self._start_controller_manager(bin_dir)
                except _PortTakenError:
                    if attempt == 2:
                        raise
                    self._teardown()  # another process grabbed a port between probe and bind: retry
                    continue
                self.startup_seconds = time.monotonic() - began
                return self
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the controller manager, the apiserver, then etcd (SIGTERM, then SIGKILL); remove the data
        dir. Idempotent."""
        atexit.unregister(self.stop)
        self._teardown()

    def stop_apiserver(self) -> None:
        """Stop only kube-apiserver; etcd and its data stay, the controller manager waits for it to come
        back. Clients see connection refused."""
        if self._apiserver is not None:
            _terminate(self._apiserver)
            self._apiserver = None

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same port with the same certificates and wait until ready."""
        if self._apiserver is not None and self._apiserver.poll() is None:
            raise ControlPlaneError("kube-apiserver is already running")
        with self.apiserver_log.open("a") as log:
            log.write(f"\n----- restart at {dt.datetime.now(dt.UTC).isoformat()} -----\n")
        self._start_apiserver(self.bin_dir)

    def check_running(self) -> None:
        """Raise ControlPlaneError (with the log tail) if one of the processes has exited."""
        processes = (self._etcd, self._apiserver, self._controller_manager)
        for name, proc in zip(_PROCESSES, processes, strict=True):
            if proc is None:
                raise ControlPlaneError(f"{name} is not running")
            if proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {proc.returncode}; end of {self.logs[name]}:\n"
                    + self.log_tail(name)
                )

    def log_tail(self, name: str = "kube-apiserver", lines: int = 40) -> str:
        """The last `lines` lines of a process log (a name of `logs`)."""
        try:
            with self.logs[name].open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 256 * 1024))
                text = f.read().decode(errors="replace")
        except (OSError, ControlPlaneError) as e:
            return f"<no log: {e}>"
        return _last_lines(text, lines)

    # ----------------------------------------------------------------------------------------------
    # clients

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this control plane as admin; stdout/stderr captured as text."""
        cmd = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def get(self, path: str) -> Any:
        """GET an API path as admin and return the decoded JSON (e.g. get("/version"))."""
        status, body = self._request(path, timeout=30)
        if status != 200:
            raise ControlPlaneError(f"GET {path}: HTTP {status}: {body[:500]!r}")
        return json.loads(body)

    def write_token_kubeconfig(self, path: Path, token: str, namespace: str = "default") -> Path:
        """Write a kubeconfig for this server that authenticates with a bearer token only.

        For example a ServiceAccount token from `kubectl create token NAME -n NS`, to run something with
        the RBAC permissions of that ServiceAccount instead of system:masters.
        """
        ca = base64.b64encode(self.ca_cert.read_bytes()).decode()
        config = _kubeconfig_dict(self.server, ca, {"token": token}, namespace)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    # ----------------------------------------------------------------------------------------------
    # internals

    def _data_root_dir(self) -> Path:
        if self._data_root is not None:
            return self._data_root
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            return shm
        return Path(tempfile.gettempdir())

    def _start_etcd(self, bin_dir: Path) -> None:
        peer = f"http://127.0.0.1:{self._peer_port}"
        self._etcd = self._launch(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=controlplane",
                f"--data-dir={self.data_dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=controlplane={peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

        def healthy() -> tuple[bool, str]:
            status, body = _http_get(f"127.0.0.1:{self._etcd_port}", "/health", None)
            return status == 200 and json.loads(body).get("health") == "true", f"{status} {body[:200]!r}"

        self._wait_ready(
            "etcd",
            self._etcd,
            f"{self.etcd_url}/health",
            healthy,
            interval=0.1,
            timeout=min(self.startup_timeout, 30.0),
        )

    def _start_apiserver(self, bin_dir: Path) -> None:
        pki = self.data_dir / "pki"
        self._apiserver = self._launch(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self._api_port}",
                "--advertise-address=127.0.0.1",  # no default route here: without it the apiserver exits
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=1",
                *self.apiserver_args,
            ],
        )
        self._ssl = _client_ssl_context(pki)
        for path in ("/readyz", "/api/v1/namespaces/default"):
            self._wait_ready(
                "kube-apiserver",
                self._apiserver,
                f"GET {self.server}{path}",
                self._answers(path),
                interval=0.2,
            )

    def _start_controller_manager(self, bin_dir: Path) -> None:
        pki = self.data_dir / "pki"
        self._controller_manager = self._launch(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",  # the only one
                "--bind-address=127.0.0.1",
                "--secure-port=0",  # no health endpoint: start() waits for what the controllers do
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--profiling=false",
                "--v=1",
            ],
        )
        # The serviceaccount controller gives every namespace its `default` ServiceAccount.
        path = "/api/v1/namespaces/default/serviceaccounts/default"
        self._wait_ready(
            "kube-controller-manager",
            self._controller_manager,
            f"GET {self.server}{path}",
            self._answers(path),
            interval=0.2,
        )

    def _answers(self, path: str) -> Callable[[], tuple[bool, str]]:
        def ok() -> tuple[bool, str]:
            status, body = self._request(path, timeout=5)
            return status == 200, f"{status} {body[-300:]!r}"

        return ok

    def _wait_ready(
        self,
        name: str,
        proc: subprocess.Popen[bytes] | None,
        what: str,
        ready: Callable[[], tuple[bool, str]],
        *,
        interval: float,
        timeout: float | None = None,
    ) -> None:
        """Until `ready()` says (True, _); fail early if the process exits, and after `timeout` (default
        `startup_timeout`) with the last answer and the end of the process's log."""
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            ok, last = ready()
            if ok:
                return
            self._check_alive(name, proc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{name}: {what} not ready after {timeout:.0f} s (last: {last}); "
                    f"end of {self.logs[name]}:\n{self.log_tail(name)}"
                )
            time.sleep(interval)

    def _request(self, path: str, timeout: float) -> tuple[int, bytes]:
        if self._ssl is None:
            self._ssl = _client_ssl_context(self.data_dir / "pki")
        return _http_get(f"127.0.0.1:{self._api_port}", path, self._ssl, timeout)

    def _launch(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        if threading.current_thread() is threading.main_thread() and shutil.which("setpriv"):
            cmd = ["setpriv", "--pdeathsig=TERM", "--", *cmd]
        with self.logs[name].open("ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # terminal Ctrl-C reaches only us; we stop them in order
            )

    def _check_alive(self, name: str, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is None:
            return
        tail = self.log_tail(name)
        if "address already in use" in tail:
            raise _PortTakenError(f"{name}: port taken")
        raise ControlPlaneError(
            f"{name} exited with code {proc.returncode} during startup; end of {self.logs[name]}:\n{tail}"
        )

    def _teardown(self) -> None:
        for attr in ("_controller_manager", "_apiserver", "_etcd"):
            proc: subprocess.Popen[bytes] | None = getattr(self, attr)
            if proc is not None:
                _terminate(proc)
                setattr(self, attr, None)
        if self._data_dir is not None and not self.keep_data:
            shutil.rmtree(self._data_dir, ignore_errors=True)
        self._data_dir = None
        self._api_port = self._etcd_port = self._peer_port = 0
        self._ssl = None


class _PortTakenError(ControlPlaneError):
    pass


_PROCESSES = ("etcd", "kube-apiserver", "kube-controller-manager")


# --------------------------------------------------------------------------------------------------
# helpers


def _last_lines(text: str, n: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _terminate(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM one child we started, SIGKILL it after `grace` seconds; always reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together so they differ; racy after close, as envtest)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def free_port() -> int:
    """A free loopback port, for a server a test starts."""
    (port,) = free_ports(1)
    return port


def _http_get(
    hostport: str, path: str, context: ssl.SSLContext | None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """(status, body), or (0, error text) when the server cannot be reached."""
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection(hostport, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(hostport, timeout=timeout, context=context)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as e:
        return 0, repr(e).encode()
    finally:
        conn.close()


def _client_ssl_context(pki: Path) -> ssl.SSLContext:
    # VERIFY_X509_STRICT is Python 3.13's default (kopf builds its context with create_default_context):
    # setting it here proves on every start that the generated certificates pass it.
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return ctx


def _remove_stale_data_dirs(root: Path, quiet_for: float = 60.0) -> None:
    """Remove data dirs of control planes whose owning process is gone and whose logs went quiet.

    The quiet period lets orphans finish their parent-death shutdown (about 15 s) before their
    files disappear.
    """
    for d in root.glob(f"{DATA_DIR_PREFIX}*"):
        try:
            pid = int((d / _OWNER_FILE).read_text())
            last_write = max(p.stat().st_mtime for p in [d, *(d / "logs").iterdir()])
        except (OSError, ValueError):
            continue
        if not _pid_alive(pid) and time.time() - last_write > quiet_for:
            shutil.rmtree(d, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------------------------------
# PKI and kubeconfig: one CA for serving and client certificates, SKI/AKI on every certificate (Python
# 3.13's strict X.509 verification rejects certificates without AKI)

_EKU = ExtendedKeyUsageOID


def _name(cn: str, orgs: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(*, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not key_cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_pki(pki: Path) -> None:
    pki.mkdir(mode=0o700)
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=7)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("together-operator-test-ca")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        cn: str, orgs: Sequence[str], eku: x509.ObjectIdentifier, sans: Sequence[x509.GeneralName] = ()
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, orgs))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    server_sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    ]
    server_key, server = leaf("kube-apiserver", (), _EKU.SERVER_AUTH, server_sans)
    admin_key, admin = leaf("admin", ("system:masters",), _EKU.CLIENT_AUTH)
    # ServiceAccount token signing key: ECDSA P-256 (ES256), generated much faster than RSA.
    sa_key = ec.generate_private_key(ec.SECP256R1())
    files = {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "apiserver.crt": server.public_bytes(serialization.Encoding.PEM),
        "apiserver.key": _key_pem(server_key),
        "admin.crt": admin.public_bytes(serialization.Encoding.PEM),
        "admin.key": _key_pem(admin_key),
        "sa.key": _key_pem(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        path = pki / name
        path.write_bytes(data)
        path.chmod(0o600)


def _kubeconfig_dict(server: str, ca_b64: str, user: dict[str, str], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": ca_b64}}],
        "users": [{"name": "user", "user": user}],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": "user", "namespace": namespace}}
        ],
        "current-context": "local",
        "preferences": {},
    }


def _write_kubeconfig(data_dir: Path, server: str) -> None:
    pki = data_dir / "pki"

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    user = {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")}
    config = _kubeconfig_dict(server, b64("ca.crt"), user, "default")
    path = data_dir / "kubeconfig"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


__all__ = [
    "BINARIES",
    "BUILD_SCRIPT",
    "REPO_ROOT",
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "expected_k8s_version",
    "find_bin_dir",
    "free_port",
    "free_ports",
]
