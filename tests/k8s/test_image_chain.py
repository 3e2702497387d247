"""Environment images on a Kubernetes deploy: the lookup chain (cluster registry -> shared -> build).

Real parts: a control plane (subprocess), the test API server with its Job controller and scheduler,
Debian's docker-registry (the cluster's and the shared registry are two paths in it), and the node
agent playing the kubelet. Two stand-ins, both because there is no container runtime here: kaniko's
executor is tests/support/k8s/standin_builder.py (it pushes a real manifest and blobs for the tag),
and the "image" a pod runs by digest is the local environment registered for the environment's tag
(the node agent reads the pushed manifest's config label to map the digest back to the hash).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelhost.build.environment import EnvironmentBuilder
from modelhost.runtime.oci import Registry, manifest_digest
from modelhost.spec.environment import EnvironmentSpec
from tests.e2e.deploy.conftest import Plane, aks, make_plane
from tests.k8s.test_oci import push_image
from tests.support.k8s.cluster import K8sCluster
from tests.support.k8s.images import LocalImages
from tests.support.k8s.node_agent import NodeAgent
from tests.support.k8s.registry import OciRegistry
from tests.support.net import free_port

KANIKO = "gcr.io/kaniko-project/executor:v1.23.2"  # BuildOptions' default kaniko image
STANDIN = Path(__file__).parents[1] / "support" / "k8s" / "standin_builder.py"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, k8s_images: LocalImages) -> Iterator[Plane]:
    assert k8s_images.envs_dir is not None
    p = make_plane(tmp_path_factory.mktemp("k8s-images"), k8s_images.envs_dir.parent)
    p.start()
    try:
        yield p
    finally:
        p.stop_all()


def _environment(plane: Plane, name: str) -> str:
    """An inherited environment (this venv) and its real hash, computed as the deployer does."""
    r = plane.client.post("/api/v1/environments", json={"name": name, "inherit": True})
    assert r.status_code == 201, r.text
    return EnvironmentBuilder(plane.settings).spec_hash(EnvironmentSpec.inherit_current(name))


def _attach(plane: Plane, cluster: K8sCluster, namespace: str, **images: Any) -> str:
    target = "img-" + uuid.uuid4().hex[:8]
    body = {"kubeconfig": cluster.kubeconfig.read_text(), "namespace": namespace,
            "cluster_purpose": "DevTest", **images}
    r = plane.client.put(f"/api/v1/compute/{target}", json=body)
    assert r.status_code == 201, r.text
    return target


def _pods(cluster: K8sCluster, namespace: str, selector: str) -> list[Any]:
    from kubernetes import client

    with cluster.api_client() as api:
        return list(client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items)


def _deployments(cluster: K8sCluster, namespace: str) -> list[str]:
    from kubernetes import client

    with cluster.api_client() as api:
        return [d.metadata.name for d in client.AppsV1Api(api).list_namespaced_deployment(namespace).items]


def _register_builder(images: LocalImages, **env: str) -> None:
    images.register(KANIKO, Path(sys.prefix), entrypoint=(sys.executable, str(STANDIN)), env=env)


def _deploy(plane: Plane, service: str, target: str, env_name: str) -> dict[str, Any]:
    return plane.deploy(service, config=aks(compute_target_name=target),
                        environment={"name": env_name, "version": 1})


def test_missing_image_is_built_in_the_cluster_then_run_by_digest(
    plane: Plane, k8s_cluster: K8sCluster, k8s_node: NodeAgent, k8s_namespace: str,
    k8s_images: LocalImages, oci_registry: OciRegistry,
) -> None:
    registry = f"{oci_registry.host}/built-{uuid.uuid4().hex[:6]}"
    env_hash = _environment(plane, "img-built")
    k8s_images.register(f"{registry}/modelhost-env:{env_hash}", Path(sys.prefix))
    _register_builder(k8s_images)
    target = _attach(plane, k8s_cluster, k8s_namespace, registry=registry, builder="kaniko")
    assert plane.client.get(f"/api/v1/compute/{target}").json()["builder"] == "kaniko"

    op = _deploy(plane, "img-a", target, "img-built")
    lines = op["lines"]
    assert op["state"] == "Succeeded", (op.get("error"), lines)
    digest = manifest_digest(Registry(registry), f"{registry.split('/', 1)[1]}/modelhost-env", env_hash)
    assert digest is not None  # the stand-in builder really pushed the tag
    by_digest = f"{registry}/modelhost-env@{digest}"
    assert any("not found in" in line and "building" in line for line in lines), lines
    assert any(line.startswith("build: pod modelhost-build-") for line in lines), lines
    assert any(f"environment image {by_digest} built and pushed" in line for line in lines), lines
    pods = _pods(k8s_cluster, k8s_namespace, "modelhost.io/service=img-a")
    assert {c.image for p in pods for c in p.spec.containers} == {by_digest}
    primary, _ = plane.keys("img-a")
    ok = httpx.post(plane.score_url("img-a"), json={"x": 1}, headers={"Authorization": f"Bearer {primary}"},
                    timeout=30)
    assert ok.status_code == 200, ok.text

    # a second service of the same environment finds the image: no second build
    op = _deploy(plane, "img-b", target, "img-built")
    assert op["state"] == "Succeeded", (op.get("error"), op["lines"][-15:])
    assert any(f"environment image {by_digest} found in {registry}" in line for line in op["lines"])
    assert not any(line.startswith("build:") for line in op["lines"])


def test_image_only_in_the_shared_registry_is_run_from_there(
    plane: Plane, k8s_cluster: K8sCluster, k8s_node: NodeAgent, k8s_namespace: str,
    k8s_images: LocalImages, oci_registry: OciRegistry,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    cluster_reg, shared_reg = f"{oci_registry.host}/cl-{suffix}", f"{oci_registry.host}/sh-{suffix}"
    env_hash = _environment(plane, "img-shared")
    digest = push_image(oci_registry, f"sh-{suffix}/modelhost-env", env_hash)  # labelled with the hash
    k8s_images.register(f"{shared_reg}/modelhost-env:{env_hash}", Path(sys.prefix))
    _register_builder(k8s_images, STANDIN_BUILD_FAIL="the shared image should have been used")
    target = _attach(plane, k8s_cluster, k8s_namespace, registry=cluster_reg, shared_registry=shared_reg,
                     builder="kaniko")
    op = _deploy(plane, "img-s", target, "img-shared")
    assert op["state"] == "Succeeded", (op.get("error"), op["lines"][-15:])
    by_digest = f"{shared_reg}/modelhost-env@{digest}"
    assert any(f"found in {shared_reg} (the shared registry" in line for line in op["lines"]), op["lines"]
    pods = _pods(k8s_cluster, k8s_namespace, "modelhost.io/service=img-s")
    assert {c.image for p in pods for c in p.spec.containers} == {by_digest}


def test_a_failing_build_fails_the_deploy_with_the_builders_message(
    plane: Plane, k8s_cluster: K8sCluster, k8s_node: NodeAgent, k8s_namespace: str,
    k8s_images: LocalImages, oci_registry: OciRegistry,
) -> None:
    registry = f"{oci_registry.host}/fail-{uuid.uuid4().hex[:6]}"
    _environment(plane, "img-fail")
    message = "No matching distribution found for nosuchpackage==9.9"
    _register_builder(k8s_images, STANDIN_BUILD_FAIL=message)
    target = _attach(plane, k8s_cluster, k8s_namespace, registry=registry, builder="kaniko")
    op = _deploy(plane, "img-f", target, "img-fail")
    assert op["state"] == "Failed", op["lines"][-15:]
    error = str(op.get("error"))
    assert message in error and "build Job modelhost-build-" in error, error
    assert plane.service("img-f")["state"] == "Failed"
    assert _deployments(k8s_cluster, k8s_namespace) == []  # nothing of the service was applied


def test_an_unreachable_registry_fails_the_deploy_before_anything_is_applied(
    plane: Plane, k8s_cluster: K8sCluster, k8s_namespace: str,
) -> None:
    _environment(plane, "img-unreach")
    registry = f"127.0.0.1:{free_port()}/ml"
    target = _attach(plane, k8s_cluster, k8s_namespace, registry=registry, builder="kaniko")
    op = _deploy(plane, "img-u", target, "img-unreach")
    assert op["state"] == "Failed"
    error = str(op.get("error"))
    assert f"cannot reach registry {registry.split('/')[0]}" in error, error
    assert "--registry" in error  # the hint names the option to fix
    assert _deployments(k8s_cluster, k8s_namespace) == []


# -- a local build with buildah ------------------------------------------------------------------------

BUILDAH_OPT_IN = "MODELHOST_TEST_BUILDAH"


def test_local_buildah_build_is_pushed_and_found_by_digest(
    tmp_path: Path, oci_registry: OciRegistry
) -> None:
    """Opt-in (``MODELHOST_TEST_BUILDAH=1``, about a minute): needs buildah and PyPI, since the
    rendered Dockerfile pip-installs modelhost's dependencies. The base image is assembled from this
    machine's interpreter (tests/support/k8s/buildah_base.py); modelhost comes from a wheel built
    from this checkout and copied into the build context (``BuildOptions.modelhost_source``)."""
    import os
    import shutil
    import subprocess

    from modelhost.runtime.image_build import LocalBuilder
    from modelhost.runtime.image_chain import EnvironmentImages, ImageSettings
    from modelhost.runtime.k8s_render import BuildOptions
    from tests.support.k8s.buildah_base import assemble_python_base

    if os.environ.get(BUILDAH_OPT_IN) != "1":
        pytest.skip(f"set {BUILDAH_OPT_IN}=1 to run the buildah build (about a minute, needs PyPI)")
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed (apt-get install buildah)")
    store = tmp_path / "buildah"
    buildah = ["buildah", "--root", str(store / "root"), "--runroot", str(store / "run"),
               "--storage-driver", "vfs"]
    try:
        base = assemble_python_base(buildah, "localhost/modelhost-test-base:1", tmp_path / "base")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"no base image could be assembled with buildah: {exc.stderr}")
    wheels = tmp_path / "wheel"
    root = Path(__file__).parents[2]
    subprocess.run([sys.executable, "-m", "uv", "build", "--wheel", "--out-dir", str(wheels), str(root)],
                   check=True, capture_output=True)
    wheel = next(wheels.glob("modelhost-*.whl"))
    registry = Registry(f"{oci_registry.host}/local-{uuid.uuid4().hex[:6]}")
    builder = LocalBuilder(registry, BuildOptions(base_image=base, modelhost_source=wheel.name),
                           buildah_args=buildah[1:], context_files=[wheel])
    images = EnvironmentImages(ImageSettings(registry, None, "local"), lambda _name: builder)
    lines: list[str] = []
    env_hash = "c" * 64
    try:
        reference = images.ensure(env_hash, [], lines.append, python="3.11")
        digest = manifest_digest(registry, f"{registry.path}/modelhost-env", env_hash)
        assert digest is not None and reference == f"{registry.prefix}/modelhost-env@{digest}"
        assert any("on this machine (buildah)" in line for line in lines), lines
        assert any("Successfully installed" in line and "modelhost-" in line for line in lines), lines
        # the image holds the scoring server: import it inside the image
        tagged = f"{registry.prefix}/modelhost-env:{env_hash}"
        ctr = subprocess.run([*buildah, "from", "--pull=false", tagged],
                             check=True, capture_output=True, text=True).stdout.strip()
        ran = subprocess.run([*buildah, "run", "--isolation", "chroot", ctr, "--", "python", "-c",
                              "import modelhost.scoring.app, sys; print(sys.prefix)"],
                             capture_output=True, text=True)
        assert ran.returncode == 0 and ran.stdout.strip() == "/opt/modelhost-env", ran.stderr
    finally:
        subprocess.run([*buildah, "rm", "--all"], capture_output=True)
        subprocess.run([*buildah, "rmi", "--all", "--force"], capture_output=True)
