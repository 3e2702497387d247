"""The init container's fetcher (``python -m modelhost.runtime.fetch``) as a real subprocess against
the control plane's real blob handlers and auth (tests/support/blob_server.py): no cluster needed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.build.snapshot import make_snapshot
from modelhost.runtime.base import ModelFileSpec, ModelSpec, ServiceDeployment
from modelhost.runtime.fetch import EXIT_CODES
from modelhost.runtime.k8s_render import fetch_manifest
from modelhost.types import ServiceName
from tests.support.blob_server import BlobServer, start_blob_server
from tests.support.net import free_port


@pytest.fixture
def blobs(tmp_path: Path) -> Iterator[BlobServer]:
    server = start_blob_server(tmp_path / "blobs", admin_token="admin-secret", fetch_token="fetch-secret")
    yield server
    server.stop()


def _deployment(tmp_path: Path, server: BlobServer, models: tuple[ModelSpec, ...]) -> tuple[str, str]:
    """A snapshot and a manifest stored as blobs; returns (manifest digest, snapshot digest)."""
    src = tmp_path / "src-in"
    (src / "pkg").mkdir(parents=True)
    (src / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    (src / "pkg" / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(src / "pkg" / "tool.sh", 0o755)
    snap = make_snapshot(src, "score.py", tmp_path / "snapshots")
    assert server.artifacts.put_file(snap.path) == snap.digest
    d = ServiceDeployment(
        service=ServiceName("fetched"),
        generation=1,
        python=Path(sys.executable),
        entry_script="score.py",
        source_dir="app/src",
        snapshot=snap.path,
        models=models,
    )
    return server.artifacts.put_bytes(fetch_manifest(d, snap.digest)), snap.digest


def _models(server: BlobServer) -> tuple[ModelSpec, ...]:
    put = server.artifacts.put_bytes
    return (
        ModelSpec("m1", 3, (ModelFileSpec("model.pkl", sha256=put(b"one")),)),
        ModelSpec(
            "m2",
            1,
            (
                ModelFileSpec("model/weights.bin", sha256=put(b"two" * 1000)),
                ModelFileSpec("model/run.sh", sha256=put(b"#!/bin/sh\n"), executable=True),
            ),
        ),
    )


def run_fetch(
    server: BlobServer,
    manifest: str,
    app_root: Path,
    token: str | None = None,
    retry_s: float = 5,
    url: str = "",
) -> subprocess.CompletedProcess[str]:
    token_file = app_root.parent / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text((token if token is not None else server.fetch_token) + "\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "modelhost.runtime.fetch",
            "--artifact-url",
            url or server.url,
            "--manifest",
            manifest,
            "--token-file",
            str(token_file),
            "--app-root",
            str(app_root),
            "--retry-for-s",
            str(retry_s),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lays_the_app_root_out_as_v1_and_is_idempotent(tmp_path: Path, blobs: BlobServer) -> None:
    manifest, snapshot = _deployment(tmp_path, blobs, _models(blobs))
    root = tmp_path / "pod" / "app"
    done = run_fetch(blobs, manifest, root)
    assert done.returncode == 0, done.stderr
    assert (root / "app/src/score.py").read_text().startswith("def init()")
    assert os.access(root / "app/src/pkg/tool.sh", os.X_OK)
    models = root / "azureml-models"
    assert (models / "m1/3/model.pkl").read_bytes() == b"one"
    assert (models / "m2/1/model/weights.bin").read_bytes() == b"two" * 1000
    assert stat.S_IMODE((models / "m1/3/model.pkl").stat().st_mode) == 0o444
    assert stat.S_IMODE((models / "m2/1/model/run.sh").stat().st_mode) == 0o555
    assert (root / "outputs").is_dir()
    assert snapshot[:12] in done.stdout and done.stdout.count("fetch: sha256:") == 3  # a line per artifact
    assert "fetch-secret" not in done.stdout + done.stderr
    again = run_fetch(blobs, manifest, root)
    assert again.returncode == 0 and "already fetched" in again.stdout


def test_a_model_file_already_in_place_is_skipped(tmp_path: Path, blobs: BlobServer) -> None:
    manifest, _ = _deployment(tmp_path, blobs, _models(blobs))
    root = tmp_path / "pod" / "app"
    (root / "azureml-models/m1/3").mkdir(parents=True)
    (root / "azureml-models/m1/3/model.pkl").write_bytes(b"one")
    done = run_fetch(blobs, manifest, root)
    assert done.returncode == 0, done.stderr
    assert "model.pkl already present" in done.stdout


def test_wrong_token_exits_at_once_naming_the_secret(tmp_path: Path, blobs: BlobServer) -> None:
    manifest, _ = _deployment(tmp_path, blobs, ())
    done = run_fetch(blobs, manifest, tmp_path / "pod" / "app", token="not-the-token")
    assert done.returncode == EXIT_CODES["unauthorized"]
    assert "fetch_token_secret" in done.stderr and "not-the-token" not in done.stderr


def test_the_fetch_token_opens_blob_reads_only(tmp_path: Path, blobs: BlobServer) -> None:
    digest = blobs.artifacts.put_bytes(b"x")
    auth = {"Authorization": f"Bearer {blobs.fetch_token}"}
    get = urllib.request.Request(f"{blobs.url}/api/v1/blobs/{digest}", headers=auth)
    with urllib.request.urlopen(get, timeout=10) as resp:
        assert resp.read() == b"x"
    data = b"written with the fetch token"
    put = urllib.request.Request(
        f"{blobs.url}/api/v1/blobs/{'0' * 64}", data=data, headers=auth, method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(put, timeout=10)
    refused.value.close()
    assert refused.value.code == 401


def test_unknown_digest_exits_not_found(tmp_path: Path, blobs: BlobServer) -> None:
    done = run_fetch(blobs, "f" * 64, tmp_path / "pod" / "app")
    assert done.returncode == EXIT_CODES["not_found"]
    assert "f" * 64 in done.stderr


def test_corrupted_blob_is_refused(tmp_path: Path, blobs: BlobServer) -> None:
    model = ModelSpec("m1", 1, (ModelFileSpec("model.pkl", sha256=blobs.artifacts.put_bytes(b"good bytes")),))
    manifest, _ = _deployment(tmp_path, blobs, (model,))
    stored = blobs.artifacts.path(model.files[0].sha256 or "")
    os.chmod(stored, 0o644)
    stored.write_bytes(b"rotten bytes")  # bit rot on the artifact store's disk
    root = tmp_path / "pod" / "app"
    done = run_fetch(blobs, manifest, root)
    assert done.returncode == EXIT_CODES["digest_mismatch"]
    assert not (root / "azureml-models/m1/1/model.pkl").exists()


def test_unreachable_artifact_api_is_retried_then_given_up(tmp_path: Path, blobs: BlobServer) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = run_fetch(blobs, "a" * 64, tmp_path / "pod" / "app", retry_s=1.5, url=url)
    assert done.returncode == EXIT_CODES["unavailable"]
    assert "retrying" in done.stdout


def test_snapshot_entry_leaving_the_folder_is_refused(tmp_path: Path, blobs: BlobServer) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../escaped.py", "print('out')")
    snapshot = blobs.artifacts.put_file(evil)
    d = ServiceDeployment(
        service=ServiceName("evil"),
        generation=1,
        python=Path(sys.executable),
        entry_script="score.py",
        source_dir="src",
        snapshot=evil,
    )
    manifest = blobs.artifacts.put_bytes(fetch_manifest(d, snapshot))
    done = run_fetch(blobs, manifest, tmp_path / "pod" / "app")
    assert done.returncode == EXIT_CODES["bad_manifest"]
    assert "unsafe path" in done.stderr
    assert not list(tmp_path.rglob("escaped.py"))
