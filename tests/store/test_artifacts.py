"""ArtifactStore: content-addressed, read-only blobs written atomically; materialize; garbage collection."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from modelhost.errors import NotFoundError, ValidationError
from modelhost.store import ArtifactStore


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_bytes_lays_out_a_read_only_blob_by_digest(artifacts: ArtifactStore) -> None:
    digest = artifacts.put_bytes(b"hello")
    assert digest == sha(b"hello")
    blob = artifacts.root / "sha256" / digest[:2] / digest
    assert artifacts.path(digest) == blob
    assert blob.read_bytes() == b"hello"
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444
    assert artifacts.exists(digest)
    assert artifacts.size(digest) == 5
    assert artifacts.verify(digest)
    assert list(artifacts.digests()) == [digest]


def test_put_file_streams_content_larger_than_a_chunk(artifacts: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 123)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    digest = artifacts.put_file(source)
    assert digest == sha(data)
    assert artifacts.path(digest).read_bytes() == data


def test_put_file_of_a_missing_file_is_not_found(artifacts: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        artifacts.put_file(tmp_path / "absent")


def test_put_stream_checks_the_claimed_digest(artifacts: ArtifactStore) -> None:
    chunks = [b"ab", b"cd", b""]
    assert artifacts.put_stream(iter(chunks), expected_sha256=sha(b"abcd")) == sha(b"abcd")


def test_digest_mismatch_stores_nothing(artifacts: ArtifactStore) -> None:
    claimed = sha(b"something else")
    with pytest.raises(ValidationError, match="digest mismatch") as caught:
        artifacts.put_stream([b"abcd"], expected_sha256=claimed)
    assert claimed in caught.value.message and sha(b"abcd") in caught.value.message
    assert not artifacts.exists(sha(b"abcd"))
    assert files_under(artifacts.root) == []  # no blob, no temp file left behind


@pytest.mark.parametrize("claim", ["abc", "G" * 64, "A" * 64, "../" + "a" * 61])
def test_a_malformed_claimed_digest_is_refused(artifacts: ArtifactStore, claim: str) -> None:
    with pytest.raises(ValidationError, match="Invalid sha256 digest"):
        artifacts.put_stream([b"x"], expected_sha256=claim)


def test_an_interrupted_stream_leaves_no_blob(artifacts: ArtifactStore) -> None:
    def chunks() -> object:
        yield b"partial"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        artifacts.put_stream(chunks())  # type: ignore[arg-type]
    assert files_under(artifacts.root) == []


def test_same_content_is_stored_once_and_its_mtime_refreshed(artifacts: ArtifactStore) -> None:
    digest = artifacts.put_bytes(b"same")
    blob = artifacts.path(digest)
    os.utime(blob, (1_000_000, 1_000_000))
    assert artifacts.put_bytes(b"same") == digest
    assert blob.stat().st_mtime > 1_000_000
    assert files_under(artifacts.root) == [blob]


def test_a_torn_blob_of_the_wrong_size_is_repaired(artifacts: ArtifactStore) -> None:
    digest = artifacts.put_bytes(b"complete content")
    blob = artifacts.path(digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"compl")
    assert artifacts.put_bytes(b"complete content") == digest
    assert blob.read_bytes() == b"complete content"
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444


def test_concurrent_puts_of_one_content(artifacts: ArtifactStore) -> None:
    data = os.urandom(200_000)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(artifacts.put_bytes(data))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [sha(data)] * 8
    assert artifacts.path(sha(data)).read_bytes() == data
    assert files_under(artifacts.root) == [artifacts.path(sha(data))]


def test_missing_and_malformed_digests(artifacts: ArtifactStore) -> None:
    absent = sha(b"never stored")
    assert not artifacts.exists(absent)
    assert not artifacts.exists("../../etc/passwd")
    with pytest.raises(NotFoundError, match=absent):
        artifacts.path(absent)
    with pytest.raises(NotFoundError):
        artifacts.size(absent)
    with pytest.raises(ValidationError):
        artifacts.path("../../etc/passwd")


def test_materialize_hard_links_a_read_only_file(artifacts: ArtifactStore, tmp_path: Path) -> None:
    digest = artifacts.put_bytes(b"weights")
    dest = tmp_path / "out" / "azureml-models" / "m" / "1" / "model.pkl"
    artifacts.materialize(digest, dest)
    assert dest.read_bytes() == b"weights"
    assert os.path.samefile(dest, artifacts.path(digest))
    assert stat.S_IMODE(dest.stat().st_mode) == 0o444
    artifacts.materialize(digest, dest)  # again: a no-op
    assert os.path.samefile(dest, artifacts.path(digest))


def test_materialize_executable_copies_with_the_exec_bit(artifacts: ArtifactStore, tmp_path: Path) -> None:
    digest = artifacts.put_bytes(b"#!/bin/sh\necho hi\n")
    dest = tmp_path / "bin" / "run.sh"
    artifacts.materialize(digest, dest, executable=True)
    assert dest.read_bytes() == b"#!/bin/sh\necho hi\n"
    assert not os.path.samefile(dest, artifacts.path(digest))
    assert stat.S_IMODE(dest.stat().st_mode) == 0o555
    assert stat.S_IMODE(artifacts.path(digest).stat().st_mode) == 0o444


def test_materialize_replaces_an_existing_file(artifacts: ArtifactStore, tmp_path: Path) -> None:
    dest = tmp_path / "model.pkl"
    dest.write_bytes(b"old")
    digest = artifacts.put_bytes(b"new")
    artifacts.materialize(digest, dest)
    assert dest.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs", "model.pkl"]  # no temp left


def test_materialize_of_a_missing_blob_is_not_found(artifacts: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        artifacts.materialize(sha(b"absent"), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_remove_unreferenced_keeps_referenced_and_young_blobs(artifacts: ArtifactStore) -> None:
    keep = artifacts.put_bytes(b"referenced")
    old = artifacts.put_bytes(b"old garbage")
    young = artifacts.put_bytes(b"young, maybe an upload in flight")
    now = time.time()
    for digest in (keep, old):
        os.utime(artifacts.path(digest), (now - 3600, now - 3600))
    removed = artifacts.remove_unreferenced({keep}, min_age_s=300, now=now)
    assert removed == [old]
    assert artifacts.exists(keep) and artifacts.exists(young) and not artifacts.exists(old)
    assert artifacts.remove_unreferenced({keep}, min_age_s=0) == [young]


def test_remove_unreferenced_cleans_only_stale_temp_files(artifacts: ArtifactStore) -> None:
    artifacts.put_bytes(b"x")  # creates the temp folder
    tmp_dir = artifacts.root / "tmp"
    stale, fresh = tmp_dir / "put-stale.part", tmp_dir / "put-fresh.part"
    stale.write_bytes(b"crashed upload")
    fresh.write_bytes(b"upload in flight")
    now = time.time()
    os.utime(stale, (now - 3600, now - 3600))
    assert artifacts.remove_unreferenced({sha(b"x")}, min_age_s=300, now=now) == []
    assert not stale.exists() and fresh.exists()
    assert not artifacts.exists(stale.name) and list(artifacts.digests()) == [sha(b"x")]


def test_remove_unreferenced_on_an_empty_root(tmp_path: Path) -> None:
    assert ArtifactStore(tmp_path / "nothing-yet").remove_unreferenced(set()) == []
