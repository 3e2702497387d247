"""A real Kubernetes control plane on 127.0.0.1 for tests: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler (1.20, built by ``build.sh``), every one on a port chosen at run time.

There is no kubelet: :mod:`tests.support.k8s.node_agent` stands in for one. Two identities exist: ``admin``
(group ``system:masters``) and ``limited`` (no groups, so RBAC denies it everything not granted).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from kubernetes import client

from modelhost.errors import ModelhostError
from tests.support.k8s.certs import CertificateAuthority, write_key_pair
from tests.support.net import free_port

__all__ = ["ClusterStartError", "K8sCluster", "start_cluster"]

SERVICE_CIDR = "10.0.0.0/24"
_USERS = {"admin": ("admin-uid", '"system:masters"'), "limited": ("limited-uid", None)}


class ClusterStartError(ModelhostError):
    """The test cluster did not start."""

    default_hint = (
        "Read the process's log under the cluster's workdir; rebuild with tests/support/k8s/build.sh."
    )


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace_s: float = 5.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def rss_bytes(self) -> int:
        try:
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


@dataclass
class K8sCluster:
    """A running test control plane. ``kubeconfig`` is the admin's; ``stop()`` ends every process."""

    workdir: Path
    server: str
    ca_path: Path
    kubeconfig: Path
    startup_s: float = 0.0
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)
    _processes: list[_Process] = field(default_factory=list, repr=False)

    # identities -------------------------------------------------------------------------------
    def token_for(self, user: str = "admin") -> str:
        """The bearer token of ``user`` (``admin`` or ``limited``)."""
        return self._tokens[user]

    def kubeconfig_for(self, user: str) -> Path:
        """A kubeconfig file that authenticates as ``user`` (``admin`` or ``limited``)."""
        path = self.workdir / f"{user}.kubeconfig"
        if not path.exists():
            _write_kubeconfig(path, self.server, self.ca_path, user, self._tokens[user])
        return path

    def api_client(self, user: str = "admin") -> client.ApiClient:
        """A fresh ``kubernetes.client.ApiClient`` for ``user``; close it when done."""
        conf = client.Configuration()
        conf.host = self.server
        conf.ssl_ca_cert = str(self.ca_path)
        conf.api_key = {"authorization": self._tokens[user]}
        conf.api_key_prefix = {"authorization": "Bearer"}
        conf.connection_pool_maxsize = 32
        return client.ApiClient(conf)

    # namespaces -------------------------------------------------------------------------------
    def new_namespace(self, prefix: str = "t") -> str:
        """Create ``<prefix>-<random>`` and wait until pods can be created in it (its ``default``
        service account has its token: 1.20's ServiceAccount admission refuses pods before that)."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            core.create_namespace(cast(Any, {"metadata": {"name": name}}))
            _wait(lambda: _sa_ready(core, name), 30, f"service account 'default' in namespace {name}")
        return name

    def delete_namespace(self, name: str) -> None:
        """Start deleting ``name``; does not wait (the namespace controller finishes it)."""
        with self.api_client() as api, contextlib.suppress(client.ApiException):
            client.CoreV1Api(api).delete_namespace(name)

    # processes --------------------------------------------------------------------------------
    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each control-plane process."""
        return {p.name: p.rss_bytes() for p in self._processes}

    def log_path(self, name: str) -> Path:
        """The log file of ``etcd``, ``kube-apiserver``, ``kube-controller-manager`` or ``kube-scheduler``."""
        return self.workdir / "logs" / f"{name}.log"

    def stop(self) -> None:
        for proc in reversed(self._processes):
            proc.stop()
        self._processes.clear()

    def __enter__(self) -> K8sCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _sa_ready(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        sa = core.read_namespaced_service_account("default", namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return bool(sa.secrets)


def _wait(predicate: Any, deadline_s: float, what: str, procs: list[_Process] | None = None) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for proc in procs or []:
            if proc.popen.poll() is not None:
                raise ClusterStartError(
                    f"{proc.name} exited with status {proc.popen.returncode} while waiting for {what}; "
                    f"last log lines:\n{proc.tail()}"
                )
        with contextlib.suppress(OSError, client.ApiException):
            if predicate():
                return
        time.sleep(0.1)
    tails = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in procs or [])
    raise ClusterStartError(f"{what} not reached within {deadline_s} s\n{tails}")


def _write_kubeconfig(path: Path, server: str, ca: Path, user: str, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
        "current-context": user,
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML


def _spawn(name: str, argv: list[str], logs: Path) -> _Process:
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return _Process(name, popen, log)


def _https_ok(url: str, token: str | None, ca: Path | None) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
            return int(resp.status) == 200
    except urllib.error.HTTPError:
        return False


def start_cluster(workdir: Path, bin_dir: Path, etcd: str = "etcd") -> K8sCluster:
    """Start etcd, the API server, the controller manager and the scheduler; return once all serve.

    Raises :class:`ClusterStartError` with the failing process's last log lines.
    """
    started = time.monotonic()
    pki, logs, data = workdir / "pki", workdir / "logs", workdir / "data"
    for d in (pki, logs, data):
        d.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create(pki)
    tls_cert, tls_key = ca.issue_serving(pki, "apiserver")
    sa_pub, sa_key = write_key_pair(pki, "service-account")
    tokens = {user: secrets.token_hex(16) for user in _USERS}
    token_file = pki / "tokens.csv"
    token_file.touch(mode=0o600)
    token_file.write_text(
        "".join(f"{tokens[u]},{u},{uid}" + (f",{g}" if g else "") + "\n" for u, (uid, g) in _USERS.items())
    )
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    cluster = K8sCluster(workdir, server, ca.cert_path, workdir / "admin.kubeconfig", _tokens=tokens)
    _write_kubeconfig(cluster.kubeconfig, server, ca.cert_path, "admin", tokens["admin"])
    procs = cluster._processes
    try:
        procs.append(_spawn("etcd", _etcd_argv(etcd, data / "etcd", etcd_port, peer_port), logs))
        procs.append(
            _spawn(
                "kube-apiserver",
                _apiserver_argv(
                    bin_dir, etcd_port, api_port, pki, tls_cert, tls_key, token_file, sa_pub, sa_key
                ),
                logs,
            )
        )
        _wait(
            lambda: _https_ok(f"{server}/readyz", tokens["admin"], ca.cert_path),
            60,
            "kube-apiserver /readyz",
            procs,
        )
        cm_port, sched_port = free_port(), free_port()
        procs.append(
            _spawn(
                "kube-controller-manager",
                [
                    str(bin_dir / "kube-controller-manager"),
                    f"--kubeconfig={cluster.kubeconfig}",
                    "--controllers=*,-nodelifecycle",
                    f"--service-account-private-key-file={sa_key}",
                    f"--root-ca-file={ca.cert_path}",
                    "--use-service-account-credentials=false",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={cm_port}",
                    "--port=0",
                    f"--cert-dir={pki / 'kcm'}",
                ],
                logs,
            )
        )
        procs.append(
            _spawn(
                "kube-scheduler",
                [
                    str(bin_dir / "kube-scheduler"),
                    f"--kubeconfig={cluster.kubeconfig}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={sched_port}",
                    "--port=0",
                    f"--cert-dir={pki / 'sched'}",
                ],
                logs,
            )
        )
        with cluster.api_client() as api:
            core = client.CoreV1Api(api)
            _wait(lambda: _sa_ready(core, "default"), 60, "service account default/default", procs)
        _wait(
            lambda: _https_ok(f"https://127.0.0.1:{sched_port}/healthz", None, None),
            60,
            "kube-scheduler /healthz",
            procs,
        )
    except BaseException:
        cluster.stop()
        raise
    cluster.startup_s = time.monotonic() - started
    return cluster


def _etcd_argv(etcd: str, data: Path, port: int, peer: int) -> list[str]:
    return [
        etcd,
        "--name=test",
        f"--data-dir={data}",
        f"--listen-client-urls=http://127.0.0.1:{port}",
        f"--advertise-client-urls=http://127.0.0.1:{port}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=test=http://127.0.0.1:{peer}",
        "--unsafe-no-fsync",
    ]


def _apiserver_argv(
    bin_dir: Path,
    etcd_port: int,
    port: int,
    pki: Path,
    cert: Path,
    key: Path,
    tokens: Path,
    sa_pub: Path,
    sa_key: Path,
) -> list[str]:
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--insecure-port=0",
        "--advertise-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
        f"--tls-cert-file={cert}",
        f"--tls-private-key-file={key}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--token-auth-file={tokens}",
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={sa_pub}",
        f"--service-account-signing-key-file={sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--cert-dir={pki / 'apiserver'}",
        # node agents serve logs on 127.0.0.1 with their own certificates (not verified without
        # --kubelet-certificate-authority), as a kubelet's self-signed serving certificate would be
        "--kubelet-preferred-address-types=InternalIP",
    ]
