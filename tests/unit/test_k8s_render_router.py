"""The router's Kubernetes objects: checked against the official schemas, replicas per purpose, TLS."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.errors import ValidationError
from modelhost.runtime.k8s_render import KUBERNETES_VERSIONS
from modelhost.runtime.k8s_render_router import (
    FAST_PROD_REPLICAS,
    ROUTER_NAME,
    RouterOptions,
    render_router,
    router_replicas,
)
from tests.unit.test_k8s_render import _validate

OPTIONS = {
    "fastprod": RouterOptions(namespace="ml", image="registry.example.com/modelhost:1.0"),
    "devtest": RouterOptions(namespace="ml", image="modelhost/modelhost:1.0", cluster_purpose="DevTest"),
    "tls-clusterip": RouterOptions(
        namespace="ml", image="modelhost/modelhost:1.0", tls_secret="router-tls", service_type="ClusterIP"
    ),
}


def _kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", list(OPTIONS), ids=list(OPTIONS))
def test_router_objects_validate(case: str, version: str) -> None:
    for obj in render_router(OPTIONS[case]):
        _validate(obj, version)


def test_apply_order_and_names() -> None:
    objects = render_router(OPTIONS["fastprod"])
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"]
    assert {o["metadata"]["name"] for o in objects} == {ROUTER_NAME}
    assert {o["metadata"]["namespace"] for o in objects} == {"ml"}


def test_fastprod_leaves_replicas_to_the_scale_subresource_devtest_fixes_one() -> None:
    fast = _kind(render_router(OPTIONS["fastprod"]), "Deployment")
    dev = _kind(render_router(OPTIONS["devtest"]), "Deployment")
    assert "replicas" not in fast["spec"] and dev["spec"]["replicas"] == 1
    assert router_replicas("FastProd") == FAST_PROD_REPLICAS >= 3 and router_replicas("DevTest") == 1


def test_the_router_discovers_its_namespace_with_its_own_account() -> None:
    objects = render_router(OPTIONS["fastprod"])
    pod = _kind(objects, "Deployment")["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    assert command[command.index("--discover") + 1] == "kubernetes"
    assert command[command.index("--namespace") + 1] == "ml"
    assert pod["serviceAccountName"] == ROUTER_NAME
    rules = _kind(objects, "Role")["rules"]
    slices = {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}
    assert slices in rules
    assert all("create" not in r["verbs"] and "delete" not in r["verbs"] for r in rules)  # read only
    assert not any(o["kind"] == "HorizontalPodAutoscaler" for o in objects)


def test_tls_mounts_the_secret_as_the_watched_folder() -> None:
    objects = render_router(OPTIONS["tls-clusterip"])
    pod = _kind(objects, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][-2:] == ["--tls-dir", "/etc/modelhost/tls"]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    items = pod["volumes"][0]["secret"]["items"]
    assert {i["path"] for i in items} == {"cert.pem", "key.pem"}
    assert _kind(objects, "Service")["spec"]["ports"][0]["port"] == 443


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (RouterOptions(namespace="Bad_NS", image="x"), "namespace"),
        (RouterOptions(namespace="ml", image="has space"), "router image"),
        (RouterOptions(namespace="ml", image="x", tls_secret="Bad_Secret"), "TLS secret"),
    ],
    ids=["namespace", "image", "tls-secret"],
)
def test_bad_options_are_refused(options: RouterOptions, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        render_router(options)
