"""The in-cluster control plane's objects: official schemas, the Role = the attach check, storage,
the admin token only in a Secret, one replica with Recreate; and the in-cluster settings."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from modelhost.control.compute_access import required_checks
from modelhost.control.compute_install import control_options, role_rules
from modelhost.control.in_cluster import InClusterConfig, admin_token
from modelhost.errors import ValidationError
from modelhost.runtime.k8s_render import KUBERNETES_VERSIONS
from modelhost.runtime.k8s_render_control import (
    ADMIN_SECRET,
    CONTROL_NAME,
    ControlOptions,
    render_control,
)
from tests.unit.test_compute import _role_rules
from tests.unit.test_k8s_render import _validate

TOKEN = "adm1n-t0ken-value"
RULES = role_rules(required_checks("ml", in_cluster_build=True))
OPTIONS = {
    "pvc": ControlOptions(namespace="ml", image="registry.example.com/modelhost:1.0"),
    "pvc-class-postgres": ControlOptions(
        namespace="ml", image="modelhost/modelhost:1.0", storage_class="fast", database_secret="pg-url"
    ),
    "emptydir-podip": ControlOptions(
        namespace="ml", image="modelhost/modelhost:1.0", storage="emptyDir",
        artifact_url="http://$(MODELHOST_POD_IP):8790",
    ),
}


def _kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind)


def _env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container = _kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", list(OPTIONS), ids=list(OPTIONS))
def test_objects_validate(case: str, version: str) -> None:
    for obj in render_control(OPTIONS[case], TOKEN, RULES):
        _validate(obj, version)


def test_apply_order_names_and_storage() -> None:
    pvc = render_control(OPTIONS["pvc"], TOKEN, RULES)
    kinds = ["ServiceAccount", "Role", "RoleBinding", "Secret", "PersistentVolumeClaim", "Deployment",
             "Service"]
    assert [o["kind"] for o in pvc] == kinds
    assert {o["metadata"]["name"] for o in pvc} == {CONTROL_NAME, ADMIN_SECRET}
    assert {o["metadata"]["namespace"] for o in pvc} == {"ml"}
    assert _kind(pvc, "PersistentVolumeClaim")["spec"]["resources"]["requests"]["storage"] == "10Gi"
    empty = render_control(OPTIONS["emptydir-podip"], TOKEN, RULES)
    assert "PersistentVolumeClaim" not in [o["kind"] for o in empty]
    volumes = _kind(empty, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "emptyDir": {}} in volumes


def test_one_replica_recreated_never_two_writers() -> None:
    spec = _kind(render_control(OPTIONS["pvc"], TOKEN, RULES), "Deployment")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "modelhost.control"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_role_grants_exactly_what_attach_checks_as_rbac_yaml_does() -> None:
    role = _kind(render_control(OPTIONS["pvc"], TOKEN, RULES), "Role")
    assert _granted(role["rules"]) == _granted(_role_rules())


def test_admin_token_only_in_the_secret_mounted_as_a_file() -> None:
    objects = render_control(OPTIONS["pvc"], TOKEN, RULES)
    secret = _kind(objects, "Secret")
    assert base64.b64decode(secret["data"]["token"]).decode() == TOKEN
    others = json.dumps([o for o in objects if o["kind"] != "Secret"])
    assert TOKEN not in others and base64.b64encode(TOKEN.encode()).decode() not in others
    env = _env(objects)
    assert env["MODELHOST_ADMIN_TOKEN_FILE"] == "/etc/modelhost/admin/token"
    # a new token (re-install after the local copy was lost) restarts the pod, which reads it at start
    template = _kind(objects, "Deployment")["spec"]["template"]["metadata"]
    other = _kind(render_control(OPTIONS["pvc"], "another-token", RULES), "Deployment")
    assert template["annotations"] != other["spec"]["template"]["metadata"]["annotations"]


def test_in_cluster_environment() -> None:
    env = _env(render_control(OPTIONS["pvc-class-postgres"], TOKEN, RULES))
    assert env["MODELHOST_IN_CLUSTER_TARGET"] == "cluster"
    assert env["MODELHOST_IN_CLUSTER_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["MODELHOST_IN_CLUSTER_ARTIFACT_URL"] == "http://modelhost-control.ml.svc:8790"
    assert env["MODELHOST_DATABASE_URL"] == {"secretKeyRef": {"name": "pg-url", "key": "url"}}
    podip = _env(render_control(OPTIONS["emptydir-podip"], TOKEN, RULES))
    assert podip["MODELHOST_IN_CLUSTER_ARTIFACT_URL"] == "http://$(MODELHOST_POD_IP):8790"
    assert "MODELHOST_DATABASE_URL" not in podip


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"image": "has space"}, "image"),
        ({"storage": "hostPath"}, "storage"),
        ({"size": "ten"}, "size"),
        ({"database_secret": "Bad_Name"}, "database secret"),
        ({"artifact_url": "ftp://x"}, "artifact_url"),
        ({"router_port": 8790}, "router_port"),
    ],
    ids=["image", "storage", "size", "db-secret", "artifact-url", "router-port"],
)
def test_bad_options_are_named(changes: dict[str, Any], needle: str) -> None:
    options = ControlOptions(**{"namespace": "ml", "image": "modelhost/modelhost:1.0", **changes})
    with pytest.raises(ValidationError, match=needle) as info:
        render_control(options, TOKEN, RULES)
    assert info.value.hint


def test_install_body() -> None:
    options = control_options("ml", "reg:5000/x", {"storage": "emptyDir", "image": None})
    assert options.storage == "emptyDir" and options.registry == "reg:5000/x"
    assert options.image.startswith("modelhost/modelhost:")
    with pytest.raises(ValidationError, match="unknown key"):
        control_options("ml", "r", {"storage": "pvc", "replicas": 2})
    with pytest.raises(ValidationError, match="size must be a string"):
        control_options("ml", "r", {"size": 10})


def test_in_cluster_config_from_env(tmp_path: Path) -> None:
    assert InClusterConfig.from_env({}) is None
    (tmp_path / "namespace").write_text("ml\n")
    config = InClusterConfig.from_env(
        {"MODELHOST_IN_CLUSTER_TARGET": "cluster", "KUBERNETES_SERVICE_HOST": "10.0.0.1",
         "KUBERNETES_SERVICE_PORT": "443", "MODELHOST_IN_CLUSTER_ARTIFACT_URL": "http://cp:8790"},
        sa_dir=tmp_path,
    )
    assert config == InClusterConfig("cluster", "ml", "localhost:5000", "http://cp:8790", "https://10.0.0.1:443")
    with pytest.raises(ValidationError, match="namespace is unknown"):
        InClusterConfig.from_env({"MODELHOST_IN_CLUSTER_TARGET": "cluster"}, sa_dir=tmp_path / "none")


def test_admin_token_from_file_else_workspace(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert admin_token({"MODELHOST_ADMIN_TOKEN_FILE": str(token_file)}, tmp_path / "home") == TOKEN
    assert not (tmp_path / "home" / "admin.token").exists()
    own = admin_token({}, tmp_path / "home")
    assert own and (tmp_path / "home" / "admin.token").read_text().strip() == own
    with pytest.raises(ValidationError, match="cannot be read") as info:
        admin_token({"MODELHOST_ADMIN_TOKEN_FILE": str(tmp_path / "missing")}, tmp_path / "home")
    assert TOKEN not in str(info.value)
