"""What only the Kubernetes runtime promises, against a real kube-apiserver, controller-manager and
scheduler (1.20, built from Debian's source) and a real registry; the node agent stands in for the
kubelet (pods are local processes on their own 127.1.x.y address). See tests/contract/k8s_harness.py."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ConflictError, NotFoundError, ValidationError
from modelhost.runtime.base import Resources, Runtime
from modelhost.runtime.k8s_render import ServiceKeys
from modelhost.runtime.k8s_status import StatusPolicy
from modelhost.runtime.kubernetes import KubernetesRuntime
from modelhost.runtime.oci import ImageFound, Registry, find_environment_image
from modelhost.types import ReplicaId, ServiceName
from tests.contract.conftest import Harness, healthy, score_at, served_by_replica, wait_status
from tests.contract.k8s_harness import KubernetesParts
from tests.contract.test_runtime_contract import ECHO, FAILING_INIT
from tests.k8s.test_oci import push_image
from tests.support.net import wait_until

pytestmark = pytest.mark.k8s

SELECTOR = "app.kubernetes.io/managed-by=modelhost,modelhost.io/service={}"


@pytest.fixture
def k8s(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KubernetesParts]:
    made: list[Runtime] = []
    parts = KubernetesParts(request, tmp_path / "home", made)
    yield parts
    for rt in made:
        rt.close()


@pytest.fixture
def h(k8s: KubernetesParts, tmp_path: Path) -> Harness:
    return k8s.harness(tmp_path / "work")


def _get(k8s: KubernetesParts, kind: str, name: str | None = None, selector: str | None = None) -> Any:
    """Read an object, or list a kind (JSON), with the official client directly: the runtime's own
    calls are what is under test."""
    from kubernetes import client

    api = client.AppsV1Api(k8s.api) if kind in ("deployment", "replica_set") else client.CoreV1Api(k8s.api)
    if name is not None:
        resp = getattr(api, f"read_namespaced_{kind}")(name, k8s.namespace, _preload_content=False)
    else:
        resp = getattr(api, f"list_namespaced_{kind}")(
            k8s.namespace, label_selector=selector, _preload_content=False
        )
    return json.loads(resp.data)


def _replicas_and_owner(k8s: KubernetesParts, name: str) -> tuple[int, list[str]]:
    """The Deployment's spec.replicas and the field managers that own it."""
    dep = _get(k8s, "deployment", name)
    owners = [
        f["manager"]
        for f in dep["metadata"]["managedFields"]
        if "f:replicas" in (f.get("fieldsV1") or {}).get("f:spec", {})
    ]
    return dep["spec"]["replicas"], owners


def _owns_replicas(k8s: KubernetesParts, name: str) -> tuple[int, bool]:
    """spec.replicas, and whether only the autoscaler's manager (if any) owns it."""
    replicas, owners = _replicas_and_owner(k8s, name)
    return replicas, set(owners) <= {"modelhost-autoscaler"}


def test_apply_is_idempotent_and_never_resets_replicas(k8s: KubernetesParts, h: Harness) -> None:
    rt = k8s.make()
    d = h.deployment("applied", ECHO, replicas=1)
    rt.deploy(d)
    wait_status(rt, "applied", healthy(1), what="one ready replica")
    # 1.20 records no manager for a scale-subresource write (1.22+ records modelhost-autoscaler);
    # what matters: the apply's manager never owns spec.replicas
    assert _owns_replicas(k8s, "applied-g1") == (1, True)
    rt.scale(ServiceName("applied"), 3)
    wait_status(rt, "applied", healthy(3), what="three ready replicas")
    rt.deploy(d)  # a restart of the control plane re-applies what it renders
    rt.deploy(d)
    assert _owns_replicas(k8s, "applied-g1") == (3, True)
    st = wait_status(rt, "applied", healthy(3))
    assert all(served_by_replica(score_at(r, {"x": 1}), r) for r in st.replicas)
    assert len({r.host for r in st.replicas}) == 3 and {r.port for r in st.replicas} == {5001}


def test_unschedulable_reason_is_in_the_status_at_once_then_fails(k8s: KubernetesParts, h: Harness) -> None:
    rt = k8s.make(policy=StatusPolicy(schedule_timeout_s=6))
    rt.deploy(h.deployment("huge", ECHO, resources=Resources(cpu_cores=64)))
    st = wait_status(
        rt,
        "huge",
        lambda s: "Insufficient cpu" in (s.error or ""),
        deadline_s=10,
        what="the scheduler's reason",
    )
    # "0/N nodes": the session's GPU node, when an earlier test asked for it, is one more
    assert st.state == "Transitioning" and "nodes are available" in (st.error or "")
    # get_logs() carries the scheduler's event as well (the issue: both within 10 s)
    logs = rt.logs(ServiceName("huge"))
    assert "==> Kubernetes events <==" in logs
    assert "Insufficient cpu" in logs.split("==> Kubernetes events <==")[1]
    st = wait_status(
        rt, "huge", lambda s: s.state == "Failed", deadline_s=20, what="Failed after the timeout"
    )
    assert "after trying for 00:00:06" in (st.error or "") and "Insufficient cpu" in (st.error or "")


def test_crash_loop_reports_v1_wording_with_init_log_lines_and_events(
    k8s: KubernetesParts, h: Harness
) -> None:
    rt = k8s.make()
    rt.deploy(h.deployment("crashing", FAILING_INIT))
    st = wait_status(rt, "crashing", lambda s: s.state == "Failed", what="a Failed service")
    assert "Your container application crashed" in (st.error or "")
    assert "CrashLoopBackOff" in (st.error or "")
    assert "boom: cannot load the model file" in (st.error or "")  # the container's own last lines
    # pods/log can briefly answer without the crashed run's lines (the stand-in kubelet between two
    # runs): what matters is that get_logs() shows them
    wait_until(lambda: "init attempt" in rt.logs(ServiceName("crashing")), 20, what="init()'s lines")
    logs = rt.logs(ServiceName("crashing"))
    assert "==> Kubernetes events <==" in logs and "crashing-g1" in logs.split("==> Kubernetes events <==")[1]


def test_image_pull_error_names_the_image(k8s: KubernetesParts, h: Harness) -> None:
    rt = k8s.make()
    missing = "e" * 64  # no environment with this hash exists: the "pull" fails
    rt.deploy(replace(h.deployment("pull", ECHO), environment_hash=missing))
    st = wait_status(rt, "pull", lambda s: s.state == "Failed", deadline_s=30, what="Failed on the image")
    assert f"modelhost-env:{missing}" in (st.error or "")
    assert "ImagePullBackOff" in (st.error or "")


def test_delete_leaves_nothing_behind(k8s: KubernetesParts, h: Harness) -> None:
    rt = KubernetesRuntime(
        k8s.api,
        k8s.options,
        blobs=h.artifacts,
        fetch_token=k8s.blobs.fetch_token,
        keys=lambda s: ServiceKeys("p", "s"),
    )
    try:
        rt.deploy(h.deployment("doomed", ECHO, replicas=2))
        wait_status(rt, "doomed", healthy(2))
        rt.delete(ServiceName("doomed"))
        for kind in ("config_map", "secret", "service", "pod", "endpoints", "deployment", "replica_set"):
            left = _get(k8s, kind, selector=SELECTOR.format("doomed"))["items"]
            assert left == [], f"{kind}: {[o['metadata']['name'] for o in left]}"
        with pytest.raises(NotFoundError):
            rt.status(ServiceName("doomed"))
        with pytest.raises(NotFoundError):
            rt.delete(ServiceName("doomed"))
    finally:
        rt.close()


def test_rolling_update_replaces_the_generation_and_removes_its_deployment(
    k8s: KubernetesParts, h: Harness
) -> None:
    rt = k8s.make()
    rt.deploy(h.deployment("roll", ECHO, replicas=1))
    wait_status(rt, "roll", healthy(1))
    rt.deploy(h.deployment("roll", ECHO.replace("VERSION = 1", "VERSION = 2"), generation=2, replicas=1))
    st = wait_status(
        rt, "roll", lambda s: healthy(1)(s) and s.replicas[0].generation == 2, what="generation 2 only"
    )
    assert score_at(st.replicas[0], {})["version"] == 2
    names = [d["metadata"]["name"] for d in _get(k8s, "deployment")["items"]]
    assert names == ["roll-g2"]
    with pytest.raises(ConflictError):
        rt.deploy(h.deployment("roll", ECHO, generation=1))


def test_stop_replica_removes_that_pod_and_wants_one_fewer(k8s: KubernetesParts, h: Harness) -> None:
    rt = k8s.make()
    rt.deploy(h.deployment("stopper", ECHO, replicas=2))
    st = wait_status(rt, "stopper", healthy(2))
    victim, keeper = st.replicas
    rt.stop_replica(victim.id, grace_s=1)
    after = wait_status(rt, "stopper", healthy(1), what="one replica left")
    assert after.desired_replicas == 1 and after.replicas[0].id == keeper.id
    with pytest.raises(NotFoundError):
        rt.stop_replica(ReplicaId("no-such-pod"))


def test_deployment_without_kubernetes_fields_is_refused_and_nothing_is_created(
    k8s: KubernetesParts, h: Harness
) -> None:
    rt = k8s.make()
    d = replace(h.deployment("bare", ECHO), environment_hash=None, snapshot_sha256=None)
    with pytest.raises(ValidationError) as err:
        rt.deploy(d)
    assert "environment_hash and snapshot_sha256" in str(err.value) and err.value.hint
    assert _get(k8s, "config_map", selector=SELECTOR.format("bare"))["items"] == []
    with pytest.raises(ValidationError):
        rt.scale(ServiceName("bare"), -1)


def test_keys_secret_and_no_token_in_repr(k8s: KubernetesParts, h: Harness) -> None:
    rt = KubernetesRuntime(
        k8s.api,
        k8s.options,
        blobs=h.artifacts,
        fetch_token=k8s.blobs.fetch_token,
        keys=lambda s: ServiceKeys("primary-k", "secondary-k"),
    )
    try:
        rt.deploy(h.deployment("keyed", ECHO))
        secret = _get(k8s, "secret", "modelhost-keys-keyed")
        assert base64.b64decode(secret["data"]["primaryKey"]) == b"primary-k"
        assert k8s.blobs.fetch_token not in repr(rt)
        rt.delete(ServiceName("keyed"))
    finally:
        rt.close()


def test_image_found_in_the_registry_runs_by_digest(k8s: KubernetesParts, h: Harness, request: Any) -> None:
    registry = request.getfixturevalue("oci_registry")
    images = request.getfixturevalue("k8s_images")
    digest = push_image(registry, "modelhost-env", k8s.env_hash)
    found = find_environment_image(k8s.env_hash, [Registry(registry.host)])
    assert isinstance(found, ImageFound) and found.digest == digest
    images.register(found.reference, Path(sys.prefix))
    rt = KubernetesRuntime(
        k8s.api,
        k8s.options,
        blobs=h.artifacts,
        fetch_token=k8s.blobs.fetch_token,
        environment_image=lambda d: found.reference,
    )
    try:
        rt.deploy(h.deployment("digested", ECHO))
        wait_status(rt, "digested", healthy(1))
        dep = _get(k8s, "deployment", "digested-g1")
        spec = dep["spec"]["template"]["spec"]
        assert {c["image"] for c in spec["containers"] + spec["initContainers"]} == {found.reference}
        rt.delete(ServiceName("digested"))
    finally:
        rt.close()


def test_adopt_reads_what_exists(k8s: KubernetesParts, h: Harness) -> None:
    rt = k8s.make()
    rt.deploy(h.deployment("kept", ECHO))
    before = wait_status(rt, "kept", healthy(1))
    rt.close()
    second = k8s.make()
    adopted = second.adopt()
    assert [s.service for s in adopted] == ["kept"]
    assert wait_status(second, "kept", healthy(1)).replicas[0].id == before.replicas[0].id
    start = time.monotonic()
    assert second.services()[0].service == "kept" and time.monotonic() - start < 5
