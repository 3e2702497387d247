"""Snapshots, blob references and garbage collection across the metadata and artifact stores."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from modelhost.errors import NotFoundError, ValidationError
from modelhost.store import ArtifactStore, SnapshotRecord, Store, collect_model, materialize_model

from .conftest import row_counts

WHEN = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


def test_save_snapshot_is_idempotent_by_digest(store: Store) -> None:
    record = SnapshotRecord("e" * 64, 2048, 3, "score.py", WHEN)
    assert store.save_snapshot(record) == record
    later = SnapshotRecord("e" * 64, 2048, 3, "other.py", WHEN + timedelta(days=1))
    assert store.save_snapshot(later) == record
    assert store.get_snapshot("e" * 64) == record


def test_snapshot_times_are_stored_in_utc(store: Store) -> None:
    local = datetime(2026, 2, 3, 6, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    saved = store.save_snapshot(SnapshotRecord("f" * 64, 1, 1, "score.py", local))
    assert saved.created_time == WHEN and saved.created_time.tzinfo == UTC
    assert store.get_snapshot("f" * 64).created_time == WHEN


def test_missing_and_invalid_snapshots(store: Store) -> None:
    with pytest.raises(NotFoundError, match="Snapshot"):
        store.get_snapshot("0" * 64)
    before = row_counts(store)
    for bad in (
        SnapshotRecord("xyz", 1, 1, "score.py", WHEN),
        SnapshotRecord("0" * 64, -1, 1, "score.py", WHEN),
        SnapshotRecord("0" * 64, 1, 1, "", WHEN),
    ):
        with pytest.raises(ValidationError):
            store.save_snapshot(bad)
    assert row_counts(store) == before


def make_model_folder(root: Path) -> Path:
    folder = root / "outputs" / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(1000))
    (folder / "sub" / "config.json").write_text('{"k": 1}')
    tool = folder / "sub" / "run.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    return folder


def test_collect_register_materialize_round_trip(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    folder = make_model_folder(tmp_path)
    manifest = collect_model(folder, artifacts)
    assert (manifest.basename, manifest.is_dir) == ("model", True)
    assert [f.path for f in manifest.files] == [
        "model/sub/config.json",
        "model/sub/run.sh",
        "model/weights.bin",
    ]
    model = store.register_model(name="m", basename=manifest.basename, is_dir=True, files=manifest.files)
    dest = tmp_path / "azureml-models" / model.name / str(model.version)
    materialize_model(model.files, artifacts, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "model/sub/config.json",
        "model/sub/run.sh",
        "model/weights.bin",
    ]
    assert (dest / "model" / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()
    assert stat.S_IMODE((dest / "model" / "sub" / "run.sh").stat().st_mode) == 0o555

    single = collect_model(folder / "weights.bin", artifacts)
    assert (single.basename, single.is_dir, [f.path for f in single.files]) == (
        "weights.bin",
        False,
        ["weights.bin"],
    )


def test_collect_follows_a_linked_folder_once(artifacts: ArtifactStore, tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    manifest = collect_model(folder, artifacts)
    assert len(manifest.files) == 3


def test_garbage_collection_keeps_exactly_the_referenced_blobs(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    kept = collect_model(make_model_folder(tmp_path / "a"), artifacts)
    dropped = collect_model(make_model_folder(tmp_path / "b"), artifacts)
    store.register_model(name="kept", basename="model", is_dir=True, files=kept.files)
    store.register_model(name="dropped", basename="model", is_dir=True, files=dropped.files)
    snapshot = artifacts.put_bytes(b"tar.gz of the source folder")
    store.save_snapshot(SnapshotRecord(snapshot, 28, 1, "score.py", WHEN))
    store.delete_model("dropped", 1)

    referenced = store.referenced_blobs()
    assert referenced == {f.sha256 for f in kept.files} | {snapshot}
    removed = artifacts.remove_unreferenced(referenced, min_age_s=0)
    only_dropped = {f.sha256 for f in dropped.files} - {f.sha256 for f in kept.files}
    assert set(removed) == only_dropped and only_dropped  # the shared config/run.sh blobs stay
    assert all(artifacts.exists(d) for d in referenced)
