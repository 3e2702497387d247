"""Pytest fixtures for a real Kubernetes API server (1.20) with a stand-in kubelet, and an OCI registry.

Usage (the plugin is registered in tests/conftest.py)::

    def test_something(k8s_cluster, k8s_node, k8s_namespace, k8s_images):
        api = k8s_cluster.api_client()                 # kubernetes.client.ApiClient (admin); close it
        kubeconfig = k8s_cluster.kubeconfig            # admin kubeconfig file (Path)
        limited = k8s_cluster.kubeconfig_for("limited")  # a user with no RBAC grants
        image = k8s_images.modelhost_image()           # runs from this test venv (sys.prefix)
        k8s_images.register("reg.example/x@sha256:..", Path(env_prefix))  # any other image
        # pods scheduled to k8s_node ("node-1", 4 cpu / 8Gi) run as local processes

- ``k8s_cluster`` (session): :class:`~tests.support.k8s.cluster.K8sCluster`. Binaries come from
  ``$MODELHOST_TEST_K8S_BIN`` or ``tests/support/k8s/build.sh`` (~5 min once, then cached). Without them
  the test is skipped with the reason; under ``CI`` it fails instead.
- ``k8s_node`` (session): :class:`~tests.support.k8s.node_agent.NodeAgent` for Node ``node-1``;
  ``.pod_processes()`` (pids of running containers), ``.kill_container(ns, pod, container)`` (a crash).
  Pods get addresses 127.1.x.y; Python processes binding 0.0.0.0 bind their pod's address.
- ``k8s_gpu_node`` (session, only when asked for): Node ``gpu-node-1`` with ``nvidia.com/gpu: 1``,
  tainted ``nvidia.com/gpu=present:NoSchedule`` (pods need the toleration, as on most GPU clusters).
- ``k8s_namespace`` (function): a fresh namespace, deleted (not awaited) afterwards.
- ``k8s_images`` (session): the :class:`~tests.support.k8s.images.LocalImages` resolver the agents use;
  ``<registry>/modelhost-env:<hash>`` resolves to ``<MODELHOST_CACHE_DIR>/envs/<hash>``.
- ``oci_registry`` (session): :class:`~tests.support.k8s.registry.OciRegistry` (``.url``, ``.host``).

Tests using these fixtures get the ``k8s`` marker automatically.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the kubernetes client is imported only by sessions that use these fixtures
    from tests.support.k8s.cluster import K8sCluster
    from tests.support.k8s.images import LocalImages
    from tests.support.k8s.node_agent import NodeAgent
    from tests.support.k8s.registry import OciRegistry

BUILD_SCRIPT = Path(__file__).with_name("build.sh")
_K8S_FIXTURES = {"k8s_cluster", "k8s_node", "k8s_gpu_node", "k8s_namespace", "oci_registry"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _K8S_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.k8s)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _bin_dir() -> Path:
    configured = os.environ.get("MODELHOST_TEST_K8S_BIN")
    if configured:
        return Path(configured)
    try:
        done = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"cannot build the Kubernetes binaries with {BUILD_SCRIPT}: {exc}")
        raise
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        _unavailable(f"{BUILD_SCRIPT} failed (status {done.returncode}):\n{tail}")
    return Path(lines[-1])


@pytest.fixture(scope="session")
def k8s_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sCluster]:
    bin_dir = _bin_dir()
    missing = [
        n
        for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
        if not (bin_dir / n).exists()
    ]
    if missing:
        _unavailable(f"{', '.join(missing)} not found in {bin_dir} (MODELHOST_TEST_K8S_BIN or build.sh)")
    from tests.support.k8s.cluster import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("k8s-cluster"), bin_dir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def k8s_images() -> LocalImages:
    from tests.support.k8s.images import LocalImages

    cache = os.environ.get("MODELHOST_CACHE_DIR") or str(Path.home() / ".cache" / "modelhost")
    return LocalImages(Path(cache) / "envs")


def _agent(cluster: K8sCluster, images: LocalImages, workdir: Path, name: str, **kw: object) -> NodeAgent:
    from tests.support.k8s.certs import CertificateAuthority
    from tests.support.k8s.node_agent import NodeAgent

    tls = CertificateAuthority.create(workdir).issue_serving(workdir, "kubelet")
    return NodeAgent(cluster.api_client(), name, images, workdir, tls, **kw).start()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def k8s_node(
    k8s_cluster: K8sCluster, k8s_images: LocalImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeAgent]:
    agent = _agent(
        k8s_cluster,
        k8s_images,
        tmp_path_factory.mktemp("k8s-node-1"),
        "node-1",
        capacity={"cpu": "4", "memory": "8Gi", "pods": "110"},
        ip_block=1,
    )
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture(scope="session")
def k8s_gpu_node(
    k8s_cluster: K8sCluster, k8s_images: LocalImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeAgent]:
    agent = _agent(
        k8s_cluster,
        k8s_images,
        tmp_path_factory.mktemp("k8s-gpu-node-1"),
        "gpu-node-1",
        capacity={"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "1"},
        labels={"nvidia.com/gpu.present": "true"},
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        ip_block=2,
    )
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def k8s_namespace(k8s_cluster: K8sCluster) -> Iterator[str]:
    name = k8s_cluster.new_namespace("t")
    try:
        yield name
    finally:
        k8s_cluster.delete_namespace(name)


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    from tests.support.k8s.registry import registry_binary, start_registry

    if registry_binary() is None:
        _unavailable("docker-registry is not installed (tests/support/k8s/setup-registry.sh installs it)")
    registry = start_registry(tmp_path_factory.mktemp("oci-registry"))
    try:
        yield registry
    finally:
        registry.stop()
