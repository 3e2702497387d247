"""The contract suite's ``kubernetes`` harness: KubernetesRuntime against a real kube-apiserver,
controller-manager and scheduler, pods run by the test node agent (tests/support/k8s).

What is real: the API server, server-side apply, the Deployment and ReplicaSet controllers, the
scheduler, the garbage collector, the registry the image names point at, the control plane's blob
API (handlers and auth, tests/support/blob_server.py) the init container fetches from, and the
fetcher and scoring server themselves. What stands in: the kubelet (the node agent runs containers
as local processes) and the image (``<registry>/modelhost-env:<hash>`` is mapped to this test venv).
"""

from __future__ import annotations

import hashlib
import secrets
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelhost.runtime.base import ReplicaStatus, Runtime, ServiceDeployment
from modelhost.runtime.k8s_render import K8sOptions
from modelhost.runtime.k8s_status import StatusPolicy
from modelhost.runtime.kubernetes import KubernetesRuntime
from modelhost.store.artifacts import ArtifactStore
from tests.support.blob_server import start_blob_server

if TYPE_CHECKING:
    from tests.contract.conftest import Harness

__all__ = ["KubernetesParts", "kubernetes_parts"]


class KubernetesParts:
    """What the harness needs: a runtime factory, a deployment preparer and a crash action."""

    def __init__(self, request: pytest.FixtureRequest, home: Path, made: list[Runtime]) -> None:
        cluster = request.getfixturevalue("k8s_cluster")
        self.node: Any = request.getfixturevalue("k8s_node")
        self.namespace: str = request.getfixturevalue("k8s_namespace")
        registry = request.getfixturevalue("oci_registry")
        images = request.getfixturevalue("k8s_images")
        self.home = home
        self.blobs = start_blob_server(
            home / "blobs", admin_token=secrets.token_urlsafe(16), fetch_token=secrets.token_urlsafe(16)
        )
        request.addfinalizer(self.blobs.stop)
        # an environment hash standing for this test venv: the node agent "pulls" it as that venv
        self.env_hash = hashlib.sha256(f"test-venv:{sys.prefix}".encode()).hexdigest()
        self.image = f"{registry.host}/modelhost-env:{self.env_hash}"
        images.register(self.image, Path(sys.prefix))
        self.api = cluster.api_client()
        request.addfinalizer(self.api.close)
        self.options = K8sOptions(
            namespace=self.namespace, registry=registry.host, artifact_url=self.blobs.url
        )
        self._made = made

    def make(self, **kw: Any) -> KubernetesRuntime:
        rt = KubernetesRuntime(
            self.api,
            self.options,
            blobs=ArtifactStore(self.home / "blobs"),
            fetch_token=self.blobs.fetch_token,
            poll_s=0.3,
            cache_s=0.2,
            delete_timeout_s=60,
            **{"policy": StatusPolicy(schedule_timeout_s=300), **kw},
        )
        self._made.append(rt)
        return rt

    def prepare(self, d: ServiceDeployment) -> ServiceDeployment:
        assert d.snapshot is not None
        snapshot = hashlib.sha256(Path(d.snapshot).read_bytes()).hexdigest()
        return replace(d, environment_hash=self.env_hash, snapshot_sha256=snapshot)

    def crash(self, replica: ReplicaStatus) -> None:
        """Kill the scoring container's process, as an OOM kill or a segfault would."""
        container = self.node._find(self.namespace, replica.id, "scoring")
        assert container is not None and container.run is not None, f"no process for pod {replica.id}"
        container.run.signal(signal.SIGKILL)


    def harness(self, work: Path) -> Harness:
        """The contract suite's Harness over these parts (no local pids, outputs or temp folders)."""
        from tests.contract.conftest import Harness  # conftest imports this module lazily

        return Harness(
            kind="kubernetes",
            home=self.home,
            work=work,
            make=self.make,
            kill_replica=lambda pid: None,
            outputs_of=lambda s: self.home / "none",
            temp_folders_of=lambda s: [],
            crash_replica=self.crash,
            prepare=self.prepare,
            gives_up_after=None,
            keeps_outputs=False,
        )


def kubernetes_parts(request: pytest.FixtureRequest, home: Path, made: list[Runtime]) -> KubernetesParts:
    return KubernetesParts(request, home, made)
