"""The renderer's data path (modelhost.runtime.k8s_render_upload via k8s_render): a collecting
service's pod gets the data volume, the upload sidecar and the upload token Secret, validated against
the official schemas (kubernetes-validate, strict); a service that does not collect gets none of it."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from modelhost.runtime.base import ServiceDeployment
from modelhost.runtime.k8s_render import KUBERNETES_VERSIONS, K8sObject, K8sOptions, render_service
from modelhost.runtime.k8s_render_upload import (
    DATA_DIR,
    ROTATE_S,
    render_upload_token_secret,
    upload_secret_name,
)
from modelhost.scoring.data_spool import ROTATE_ENV

OPTIONS = K8sOptions(
    namespace="ml-serving", registry="registry.example.com/ml", artifact_url="http://modelhost.ml:8080"
)
COLLECT_ENV = {
    "MODELHOST_DATA_COLLECTION_DIR": "/home/me/.modelhost/data", "AML_MODEL_DC_STORAGE_ENABLED": "true"
}
UID = "0b0c5d5e-1111-4222-8333-944455556666"


def _deployment(**changes: Any) -> ServiceDeployment:
    base = ServiceDeployment(
        service="svc-one",  # type: ignore[arg-type]
        generation=1,
        python=Path("/unused"),
        entry_script="score.py",
        source_dir="src",
        snapshot=Path("/snapshots/x.zip"),
    )
    return replace(base, **changes)


def _render(d: ServiceDeployment, options: K8sOptions = OPTIONS) -> K8sObject:
    objects = render_service(d, options, environment="e" * 64, snapshot="5" * 64, owner_uid=UID)
    return next(o for o in objects if o["kind"] == "Deployment")


def _pod(d: ServiceDeployment, options: K8sOptions = OPTIONS) -> K8sObject:
    spec: K8sObject = _render(d, options)["spec"]["template"]["spec"]
    return spec


def _env(container: K8sObject) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_collecting_pod_and_token_secret_validate(version: str) -> None:
    kubernetes_validate.validate(_render(_deployment(env=COLLECT_ENV)), version, strict=True)
    secret = render_upload_token_secret("svc-one", "t0k", OPTIONS, UID)
    kubernetes_validate.validate(secret, version, strict=True)


def test_collecting_pod_writes_into_its_volume_and_runs_the_uploader() -> None:
    pod = _pod(_deployment(env=COLLECT_ENV))
    scoring, upload = pod["containers"]
    assert (scoring["name"], upload["name"]) == ("scoring", "upload")
    env = _env(scoring)
    # the control plane's own folder would be lost with the pod: the pod's volume instead
    assert env["MODELHOST_DATA_COLLECTION_DIR"] == DATA_DIR and env[ROTATE_ENV] == str(ROTATE_S)
    assert env["AML_MODEL_DC_STORAGE_ENABLED"] == "true"
    assert [e["name"] for e in scoring["env"]].count("MODELHOST_DATA_COLLECTION_DIR") == 1
    assert {"name": "data", "mountPath": DATA_DIR} in scoring["volumeMounts"]
    assert {"name": "data", "mountPath": DATA_DIR} in upload["volumeMounts"]
    assert upload["command"] == ["python", "-m", "modelhost.runtime.upload"]
    args = upload["args"]
    assert args[args.index("--service") + 1] == "svc-one" and args[args.index("--data-dir") + 1] == DATA_DIR
    # the sidecar stops sending just before the kubelet's SIGKILL
    assert 0 < float(args[args.index("--drain-s") + 1]) < pod["terminationGracePeriodSeconds"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert volumes["upload-token"]["secret"]["secretName"] == upload_secret_name("svc-one")
    # the upload token only where it is used
    assert not any(m["name"] == "upload-token" for m in scoring["volumeMounts"])


def test_sidecar_uses_the_fetch_image_when_one_is_set() -> None:
    options = replace(OPTIONS, fetch_image="registry.example.com/ml/modelhost-fetch:0.1")
    assert _pod(_deployment(env=COLLECT_ENV), options)["containers"][1]["image"] == options.fetch_image


def test_pod_without_collection_has_no_sidecar_or_data_volume() -> None:
    pod = _pod(_deployment(env={"MY_FLAG": "1"}))
    assert [c["name"] for c in pod["containers"]] == ["scoring"]
    assert {v["name"] for v in pod["volumes"]} == {"app", "fetch-token"}
    assert "MODELHOST_DATA_COLLECTION_DIR" not in _env(pod["containers"][0])


def test_upload_token_secret_holds_the_token_and_belongs_to_the_service() -> None:
    secret = render_upload_token_secret("svc-one", "t0k", OPTIONS, UID)
    assert secret["metadata"]["name"] == "modelhost-upload-svc-one"
    assert base64.b64decode(secret["data"]["token"]) == b"t0k"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == UID
    assert secret["metadata"]["labels"]["modelhost.io/service"] == "svc-one"
