"""Compute targets, pure parts: the permission checks against the committed Role, the attach body,
kubeconfig reading and inlining."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from modelhost.control.compute_access import (
    RBAC_MANIFEST,
    AccessCheck,
    missing_message,
    namespace_check,
    required_checks,
)
from modelhost.errors import ValidationError
from modelhost.spec.compute import (
    inline_kubeconfig_files,
    parse_attach_request,
    read_kubeconfig,
    validate_compute_name,
)

ROOT = Path(__file__).resolve().parents[2]

KUBECONFIG = """
apiVersion: v1
kind: Config
current-context: admin
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: ca.crt}
users:
- name: u
  user: {tokenFile: token.txt, client-key: key.pem}
contexts:
- name: admin
  context: {cluster: c, user: u}
- name: other
  context: {cluster: missing, user: u}
"""


def _role_rules() -> list[dict[str, list[str]]]:
    docs = list(yaml.safe_load_all((ROOT / RBAC_MANIFEST).read_text()))
    roles = [d for d in docs if d["kind"] == "Role"]
    assert len(roles) == 1
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert bindings and bindings[0]["roleRef"]["name"] == roles[0]["metadata"]["name"]
    rules: list[dict[str, list[str]]] = roles[0]["rules"]
    return rules


def _granted(rules: list[dict[str, list[str]]], check: AccessCheck) -> bool:
    resource = f"{check.resource}/{check.subresource}" if check.subresource else check.resource
    return any(
        check.group in r["apiGroups"] and resource in r["resources"] and check.verb in r["verbs"]
        for r in rules
    )


@pytest.mark.parametrize(
    "check", required_checks("ml", in_cluster_build=True), ids=lambda c: f"{c.verb}-{c.what}"
)
def test_the_committed_role_grants_every_permission_attach_checks(check: AccessCheck) -> None:
    assert _granted(_role_rules(), check)


def test_the_committed_role_grants_nothing_attach_does_not_check() -> None:
    checks = required_checks("ml", in_cluster_build=True)
    for rule in _role_rules():
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                name, _, sub = resource.partition("/")
                for verb in rule["verbs"]:
                    assert AccessCheck(verb, name, group, sub, "ml") in checks, (verb, resource)


def test_job_rights_are_checked_only_for_targets_that_build_in_the_cluster() -> None:
    jobs = {c.verb for c in required_checks("ml", in_cluster_build=True) if c.resource == "jobs"}
    assert jobs == {"create", "get", "list", "watch", "patch", "delete"}
    assert not [c for c in required_checks("ml") if c.resource == "jobs"]
    assert "cannot create jobs.batch in namespace ml" in {
        c.describe() for c in required_checks("ml", in_cluster_build=True)
    }


def test_checks_cover_the_runtime_and_discovery() -> None:
    described = {c.describe() for c in required_checks("ml")}
    assert "cannot patch deployments/scale in namespace ml" in described
    assert "cannot get pods/log in namespace ml" in described
    assert "cannot watch endpointslices.discovery.k8s.io in namespace ml" in described
    assert namespace_check().describe() == "cannot create namespaces at cluster scope"


def test_missing_message_names_each_refusal_and_the_fix() -> None:
    missing = [AccessCheck("patch", "deployments", "apps", "scale", "ml"), namespace_check()]
    message, details, hint = missing_message(missing, "ml")
    assert details == [
        "cannot patch deployments/scale in namespace ml",
        "cannot create namespaces at cluster scope",
    ]
    assert "2 permission(s)" in message and details[0] in message
    assert "kubectl apply -n ml -f deploy/kubernetes/rbac.yaml" in hint
    assert "kubectl create namespace ml" in hint


@pytest.mark.parametrize(
    ("name", "ok"),
    [("k8s-prod", True), ("a1", True), ("x", False), ("1abc", False), ("a" * 17, False), ("a_b", False)],
)
def test_compute_names_follow_v1(name: str, ok: bool) -> None:
    if ok:
        assert validate_compute_name(name) == name
    else:
        with pytest.raises(ValidationError, match="Invalid compute target name"):
            validate_compute_name(name)


def test_attach_request_defaults_and_hides_the_kubeconfig() -> None:
    req = parse_attach_request("prod", {"kubeconfig": KUBECONFIG})
    assert (req.namespace, req.context, req.cluster_purpose) == ("modelhost", None, "FastProd")
    assert "server" not in repr(req) and "<hidden>" in repr(req)


def test_attach_request_lists_every_problem() -> None:
    with pytest.raises(ValidationError) as info:
        body = {"namespace": "Bad_NS", "cluster_purpose": "Prod", "type": "AmlCompute"}
        parse_attach_request("local", body)
    details = info.value.details
    assert len(details) == 5, details
    assert any("'local' is this machine" in d for d in details)
    assert any("DNS-1123" in d for d in details)
    assert any("FastProd, DevTest" in d for d in details)
    assert any("kubeconfig must be" in d for d in details)


def test_read_kubeconfig_picks_the_context_and_server() -> None:
    view = read_kubeconfig(KUBECONFIG, None)
    assert (view.context, view.server) == ("admin", "https://127.0.0.1:6443")
    with pytest.raises(ValidationError, match=r"context 'nope' is not in it \(contexts: admin, other\)"):
        read_kubeconfig(KUBECONFIG, "nope")
    with pytest.raises(ValidationError, match="names no cluster with a server URL"):
        read_kubeconfig(KUBECONFIG, "other")
    with pytest.raises(ValidationError, match="not valid YAML"):
        read_kubeconfig("a: [", None)


def test_inline_kubeconfig_files_makes_the_copy_self_contained() -> None:
    files = {"ca.crt": b"CA", "token.txt": b"secret-token\n", "key.pem": b"KEY"}
    config = yaml.safe_load(KUBECONFIG)
    out = inline_kubeconfig_files(config, lambda path: files[path])
    cluster = out["clusters"][0]["cluster"]
    user = out["users"][0]["user"]
    assert "certificate-authority" not in cluster
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"CA"
    assert user["token"] == "secret-token" and "tokenFile" not in user
    assert base64.b64decode(user["client-key-data"]) == b"KEY"
    assert config["users"][0]["user"]["tokenFile"] == "token.txt"  # the input is untouched


def test_v1_azure_arguments_are_refused_with_the_modelhost_equivalent() -> None:
    from modelhost.sdk.compute import AksCompute

    with pytest.raises(ValidationError) as info:
        AksCompute.attach_configuration(resource_group="rg", cluster_name="aks1")
    assert "resource_group, cluster_name" in info.value.message
    assert "context='aks1'" in info.value.hint and "az aks get-credentials" in info.value.hint
    with pytest.raises(ValidationError, match="does not create clusters"):
        AksCompute.provisioning_configuration(agent_count=3)
    with pytest.raises(ValidationError, match="FastProd, DevTest"):
        AksCompute.attach_configuration(cluster_purpose="DenseProd")
    assert AksCompute.ClusterPurpose.DEV_TEST == "DevTest"
    assert AksCompute.ClusterPurpose.FAST_PROD == "FastProd"


def test_the_sdk_inlines_files_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    from modelhost.sdk.compute import KubernetesCompute

    (tmp_path / "ca.crt").write_bytes(b"CA")
    (tmp_path / "token.txt").write_text("tok\n")
    (tmp_path / "key.pem").write_bytes(b"KEY")
    (tmp_path / "config").write_text(KUBECONFIG)
    config = KubernetesCompute.attach_configuration(kubeconfig=tmp_path / "config", namespace="ml")
    body = config.to_body()
    sent = yaml.safe_load(body["kubeconfig"])
    assert sent["users"][0]["user"]["token"] == "tok"
    assert (body["namespace"], body["cluster_purpose"], body["type"]) == ("ml", "FastProd", "Kubernetes")
    assert "tok" not in repr(config)
    (tmp_path / "c.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "k.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    config.enable_ssl(ssl_cname="a.example.com", ssl_cert_pem_file=str(tmp_path / "c.pem"),
                      ssl_key_pem_file=str(tmp_path / "k.pem"))
    assert config.ssl_configuration is not None and config.ssl_configuration.cname == "a.example.com"
    assert "PRIVATE" not in repr(config.ssl_configuration)
    with pytest.raises(ValidationError, match="must be provided together"):
        config.enable_ssl(ssl_cname="a.example.com")
    with pytest.raises(ValidationError, match="Microsoft-issued"):
        config.enable_ssl(leaf_domain_label="contoso")


def test_compute_targets_are_v1_deployment_targets() -> None:
    from modelhost.sdk.compute import KubernetesCompute, LocalCompute, _from_payload
    from modelhost.sdk.deploy import deploy_target
    from modelhost.spec.deployment import AksDeploymentConfig, choose_deploy_config

    cluster = _from_payload(None, {"name": "prod", "type": "Kubernetes"})  # type: ignore[arg-type]
    local = _from_payload(None, {"name": "local", "type": "Local"})  # type: ignore[arg-type]
    assert isinstance(cluster, KubernetesCompute) and isinstance(local, LocalCompute)
    config = choose_deploy_config(None, deploy_target(cluster))
    assert isinstance(config, AksDeploymentConfig) and config.compute_target_name == "prod"
    config = choose_deploy_config(AksDeploymentConfig(cpu_cores=1), deploy_target(local))
    assert isinstance(config, AksDeploymentConfig) and config.compute_target_name == "local"
