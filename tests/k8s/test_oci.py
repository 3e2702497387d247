"""Environment images looked up by tag in a real OCI registry (Debian's docker-registry), after a real
push of a minimal OCI image through the Distribution API (config blob, an empty layer, a manifest)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.parse
import urllib.request

import pytest

from modelhost.errors import ModelhostError, ValidationError
from modelhost.runtime.oci import ImageFound, NeedsBuild, Registry, find_environment_image, manifest_digest
from tests.support.k8s.registry import OciRegistry
from tests.support.net import free_port

ENV_A = "a" * 64
ENV_B = "b" * 64


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_blob(registry: OciRegistry, repo: str, data: bytes) -> str:
    digest = _sha(data)
    start = urllib.request.Request(f"{registry.url}/v2/{repo}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(start, timeout=10) as resp:
        assert resp.status == 202
        location = urllib.parse.urljoin(registry.url, resp.headers["Location"])
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(
        f"{location}{sep}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(put, timeout=10) as resp:
        assert resp.status == 201
    return digest


def push_image(registry: OciRegistry, repo: str, tag: str) -> str:
    """Push a minimal OCI image; returns the manifest's digest as the registry must report it."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w"):
        pass
    layer = gzip.compress(tar.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [_sha(tar.getvalue())]},
            "config": {"Labels": {"io.modelhost.environment": tag}},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _push_blob(registry, repo, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _push_blob(registry, repo, layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    put = urllib.request.Request(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        data=manifest,
        method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(put, timeout=10) as resp:
        assert resp.status == 201
    return _sha(manifest)


def test_tag_lookup_returns_the_pushed_manifest_digest(oci_registry: OciRegistry) -> None:
    digest = push_image(oci_registry, "ml/modelhost-env", ENV_A)
    registry = Registry(f"{oci_registry.host}/ml")
    assert manifest_digest(registry, "ml/modelhost-env", ENV_A) == digest
    assert manifest_digest(registry, "ml/modelhost-env", ENV_B) is None
    assert manifest_digest(registry, "ml/never-pushed", ENV_A) is None


def test_chain_cluster_registry_then_shared_then_needs_build(oci_registry: OciRegistry) -> None:
    shared_digest = push_image(oci_registry, "shared/modelhost-env", ENV_B)
    cluster_digest = push_image(oci_registry, "cluster/modelhost-env", ENV_A)
    chain = [Registry(f"{oci_registry.host}/cluster"), Registry(f"{oci_registry.host}/shared")]
    assert find_environment_image(ENV_A, chain) == ImageFound(
        f"{oci_registry.host}/cluster/modelhost-env@{cluster_digest}",
        f"{oci_registry.host}/cluster",
        cluster_digest,
    )
    found = find_environment_image(ENV_B, chain)
    assert isinstance(found, ImageFound) and found.registry == f"{oci_registry.host}/shared"
    assert found.reference == f"{oci_registry.host}/shared/modelhost-env@{shared_digest}"
    missing = find_environment_image("c" * 64, chain)
    assert missing == NeedsBuild(
        f"{oci_registry.host}/cluster/modelhost-env:{'c' * 64}",
        (f"{oci_registry.host}/cluster", f"{oci_registry.host}/shared"),
    )


def test_unreachable_registry_is_a_clear_error() -> None:
    with pytest.raises(ModelhostError) as err:
        find_environment_image(ENV_A, [Registry(f"127.0.0.1:{free_port()}/x")], timeout_s=2)
    assert "cannot reach registry" in str(err.value) and err.value.hint


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValidationError):
        find_environment_image("not-a-hash", [Registry("127.0.0.1:1")])
    with pytest.raises(ValidationError):
        find_environment_image(ENV_A, [])


def test_credentials_stay_out_of_reprs() -> None:
    assert "s3cret" not in repr(Registry("r.example/ml", username="u", password="s3cret"))
