"""The data path back out of a pod: what :mod:`.k8s_render` adds when a service collects model data.

With ``collect_model_data=True`` (the control plane sets ``MODELHOST_DATA_COLLECTION_DIR`` in the
deployment's environment) a replica pod gets:

- an ``emptyDir`` volume ``data`` mounted at :data:`DATA_DIR` in the scoring container, whose
  ``MODELHOST_DATA_COLLECTION_DIR`` points there (not at the control plane's folder) and whose data
  writer seals a file at least every :data:`ROTATE_S` seconds;
- a sidecar ``upload`` (the fetch image) running :mod:`modelhost.runtime.upload` on the same volume;
- the per-service Secret ``modelhost-upload-<service>`` (:func:`render_upload_token_secret`) holding
  the service's upload token, mounted read-only in the sidecar only.

Pure: functions of their arguments. This module imports :mod:`.k8s_render` only inside
:func:`render_upload_token_secret`, since ``k8s_render`` calls the others.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from modelhost.runtime import k8s_names as names
from modelhost.scoring.data_spool import ROTATE_ENV

__all__ = [
    "DATA_DIR",
    "DATA_DIR_ENV",
    "ROTATE_S",
    "UPLOAD_TOKEN_DIR",
    "UPLOAD_TOKEN_KEY",
    "collects",
    "data_volumes",
    "pod_data_env",
    "render_upload_token_secret",
    "upload_secret_name",
    "uploader_container",
]

K8sObject = dict[str, Any]

DATA_DIR = "/var/modelhost-data"
DATA_DIR_ENV = "MODELHOST_DATA_COLLECTION_DIR"
ROTATE_S = 10
"""Seconds a data file stays open in a pod at most: the delay before rows reach the workspace."""
UPLOAD_TOKEN_DIR = "/var/run/secrets/modelhost/upload"
UPLOAD_TOKEN_KEY = "token"
_UPLOAD_INTERVAL_S = 2
_EXIT_MARGIN_S = 2  # the uploader stops this long before the kubelet's SIGKILL


def collects(env: Mapping[str, str]) -> bool:
    """Whether a deployment's environment turns model data collection on."""
    return bool(env.get(DATA_DIR_ENV))


def upload_secret_name(service: str) -> str:
    return f"modelhost-upload-{names.validate_dns_label(service, 'service name')}"


def pod_data_env(env: list[K8sObject]) -> list[K8sObject]:
    """The scoring container's environment with the data folder inside the pod and rotation on."""
    out = [e for e in env if e["name"] not in (DATA_DIR_ENV, ROTATE_ENV)]
    return [*out, {"name": DATA_DIR_ENV, "value": DATA_DIR}, {"name": ROTATE_ENV, "value": str(ROTATE_S)}]


def data_mount() -> K8sObject:
    return {"name": "data", "mountPath": DATA_DIR}


def data_volumes(service: str) -> list[K8sObject]:
    return [
        {"name": "data", "emptyDir": {}},
        {
            "name": "upload-token",
            "secret": {
                "secretName": upload_secret_name(service),
                "items": [{"key": UPLOAD_TOKEN_KEY, "path": UPLOAD_TOKEN_KEY}],
                "defaultMode": 0o440,
            },
        },
    ]


def uploader_container(
    service: str,
    image: str,
    pull_policy: str,
    artifact_url: str,
    grace_s: int,
    security_context: K8sObject,
) -> K8sObject:
    """The sidecar that sends sealed data files to ``artifact_url`` and drains them on SIGTERM."""
    return {
        "name": "upload",
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": ["python", "-m", "modelhost.runtime.upload"],
        "args": [
            "--artifact-url",
            artifact_url.replace("$(", "$$("),  # $(VAR) would be expanded by the kubelet
            "--service",
            service,
            "--token-file",
            f"{UPLOAD_TOKEN_DIR}/{UPLOAD_TOKEN_KEY}",
            "--data-dir",
            DATA_DIR,
            "--interval-s",
            str(_UPLOAD_INTERVAL_S),
            "--drain-s",
            str(max(1, grace_s - _EXIT_MARGIN_S)),
        ],
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": dict(security_context),
        "volumeMounts": [
            data_mount(),
            {"name": "upload-token", "mountPath": UPLOAD_TOKEN_DIR, "readOnly": True},
        ],
    }


def render_upload_token_secret(
    service: str, token: str, options: Any, owner_uid: str | None = None
) -> K8sObject:
    """The Secret ``modelhost-upload-<service>`` with the service's upload token (key ``token``),
    owned by the service's anchor so deleting the service deletes it."""
    from modelhost.runtime import k8s_render  # it imports this module

    labels = names.object_labels(service, "upload-token", options.extra_labels)
    refs = k8s_render._owner_references(service, owner_uid)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": k8s_render._metadata(upload_secret_name(service), options, labels, refs),
        "type": "Opaque",
        "data": {UPLOAD_TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }
