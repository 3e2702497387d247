"""One runtime per compute target: an unreachable cluster degrades its own services only.

Real parts: a LocalRuntime, and a KubernetesRuntime whose API server is a closed port (no cluster
needed: what is under test is the control plane's answer when a cluster cannot be asked).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.control.runtimes import RuntimeSet
from modelhost.errors import NotFoundError
from modelhost.runtime.k8s_render import K8sOptions
from modelhost.runtime.kubernetes import KubernetesRuntime
from modelhost.runtime.local import LocalRuntime
from modelhost.store.artifacts import ArtifactStore
from modelhost.types import ServiceName
from tests.support.net import free_port


@pytest.fixture
def runtimes(tmp_path: Path) -> Iterator[RuntimeSet]:
    from kubernetes import client

    def dead_cluster(target: str) -> KubernetesRuntime:
        cfg = client.Configuration()
        cfg.host = f"http://127.0.0.1:{free_port()}"
        cfg.retries = 0
        options = K8sOptions(namespace="ml", registry="localhost:5000", artifact_url="http://127.0.0.1:1")
        return KubernetesRuntime(client.ApiClient(cfg), options, blobs=ArtifactStore(tmp_path / "blobs"),
                                 poll_s=60)

    targets = {"on-cluster": "gone", "here": "local"}
    rs = RuntimeSet(LocalRuntime(tmp_path / "home", gpus=lambda: ()), dead_cluster,
                    target_of=lambda s: targets[s])
    try:
        yield rs
    finally:
        rs.close()


def test_an_unreachable_cluster_answers_unhealthy_and_local_is_untouched(runtimes: RuntimeSet) -> None:
    status = runtimes.status(ServiceName("on-cluster"))
    assert status.state == "Unhealthy" and status.replicas == ()
    assert status.error is not None and "compute target gone cannot be reached" in status.error
    with pytest.raises(NotFoundError):  # the local runtime still answers for its own services
        runtimes.status(ServiceName("here"))
    assert runtimes.services() == []
