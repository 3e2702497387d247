"""Content-addressed blobs: ``<root>/sha256/<first 2 hex>/<64 hex>``, read-only (0444).

A write streams into ``<root>/tmp/`` (same file system), is fsynced, made read-only and moved into
place with ``os.replace``, and the folder is fsynced: a crash leaves either no blob or the whole
blob, never a torn one. Storing content that is already there only refreshes the blob's mtime, which
protects it from a garbage collection running before the caller records its reference.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from modelhost.errors import NotFoundError, ValidationError

__all__ = ["ArtifactStore", "is_digest"]

_CHUNK = 1 << 20
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_BLOB_MODE = 0o444
_EXEC_MODE = 0o555


def is_digest(value: object) -> bool:
    """Whether ``value`` is a sha256 digest as the store writes it (64 lowercase hex digits)."""
    return isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None


def _check_digest(digest: str) -> str:
    if not is_digest(digest):
        raise ValidationError(
            f"Invalid sha256 digest {digest!r}: expected 64 lowercase hexadecimal digits",
            hint="Pass the digest the store returned when the content was stored.",
        )
    return digest


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _try_link(source: Path, link: Path) -> bool:
    try:
        os.link(source, link)
    except OSError:  # another file system, no hard links, too many links: copy instead
        return False
    return True


class ArtifactStore:
    """Blobs under ``root`` (``Settings.blobs_dir``); safe for concurrent threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "sha256"
        self._tmp = self.root / "tmp"

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    # -- writing -------------------------------------------------------------------------------

    def put_file(self, path: Path) -> str:
        """Store the content of the file at ``path`` (streamed) and return its sha256."""
        try:
            with open(path, "rb") as source:
                return self.put_stream(iter(lambda: source.read(_CHUNK), b""))
        except FileNotFoundError as error:
            raise NotFoundError(f"cannot store {path}: no such file", hint="Check the path.") from error

    def put_bytes(self, data: bytes) -> str:
        return self.put_stream([data])

    def put_stream(self, chunks: Iterable[bytes], expected_sha256: str | None = None) -> str:
        """Store the concatenated ``chunks`` and return their sha256.

        With ``expected_sha256`` (an upload's claim) a different digest raises ``ValidationError``
        and nothing is stored.
        """
        expected = None if expected_sha256 is None else _check_digest(expected_sha256)
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-", suffix=".part")
        tmp: Path | None = Path(name)
        try:
            digest, size = self._write_chunks(fd, chunks)
            if expected is not None and digest != expected:
                raise ValidationError(
                    f"content digest mismatch: expected sha256 {expected}, received {digest} ({size} bytes)",
                    hint="The upload was corrupted or incomplete; send it again.",
                )
            assert tmp is not None
            self._commit(tmp, digest, size)
            tmp = None
            return digest
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    @staticmethod
    def _write_chunks(fd: int, chunks: Iterable[bytes]) -> tuple[str, int]:
        hasher = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        return hasher.hexdigest(), size

    def _commit(self, tmp: Path, digest: str, size: int) -> None:
        dest = self._blob_path(digest)
        try:
            present = dest.stat().st_size == size
        except FileNotFoundError:
            present = False
        if present:
            os.utime(dest)
            tmp.unlink()
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, _BLOB_MODE)
        os.replace(tmp, dest)  # atomic; also repairs a blob of the wrong size
        _fsync_dir(dest.parent)

    # -- reading -------------------------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        _check_digest(digest)
        return self._blobs / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return is_digest(digest) and self._blob_path(digest).is_file()

    def path(self, digest: str) -> Path:
        """The blob's file (read-only). ``NotFoundError`` if the store does not hold it."""
        blob = self._blob_path(digest)
        if not blob.is_file():
            raise NotFoundError(
                f"blob sha256:{digest} not found in {self._blobs}",
                hint="Upload the content again; it may have been garbage-collected.",
            )
        return blob

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def verify(self, digest: str) -> bool:
        """Whether the blob's content still hashes to its name (reads it whole; for checks)."""
        hasher = hashlib.sha256()
        with open(self.path(digest), "rb") as blob:
            for chunk in iter(lambda: blob.read(_CHUNK), b""):
                hasher.update(chunk)
        return hasher.hexdigest() == digest

    def digests(self) -> Iterator[str]:
        """Every digest stored (in no particular order)."""
        for blob in self._blob_files():
            yield blob.name

    def _blob_files(self) -> Iterator[Path]:
        if not self._blobs.is_dir():
            return
        for prefix in self._blobs.iterdir():
            if not prefix.is_dir():
                continue
            for blob in prefix.iterdir():
                if is_digest(blob.name) and blob.name[:2] == prefix.name:
                    yield blob

    # -- placing -------------------------------------------------------------------------------

    def materialize(self, digest: str, dest: Path, *, executable: bool = False) -> None:
        """Put the blob's content at ``dest`` (replacing what is there), creating parent folders.

        A hard link when the file system allows it and ``executable`` is false (the link shares
        the blob's read-only mode); otherwise a read-only copy, mode 0555 when ``executable``.
        """
        source = self.path(digest)
        dest = Path(dest)
        if not executable and _same_file(source, dest):
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            if executable or not _try_link(source, tmp):
                shutil.copyfile(source, tmp)
                os.chmod(tmp, _EXEC_MODE if executable else _BLOB_MODE)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    # -- garbage collection --------------------------------------------------------------------

    def remove_unreferenced(
        self, referenced: set[str], *, min_age_s: float = 300.0, now: float | None = None
    ) -> list[str]:
        """Delete blobs not in ``referenced`` and stale temp files; return the removed digests.

        Blobs and temp files modified less than ``min_age_s`` seconds before ``now`` (default: the
        wall clock) stay: they may belong to an upload that has not recorded its reference yet.
        """
        clock = time.time() if now is None else now
        keep = {d.lower() for d in referenced}
        removed: list[str] = []
        for blob in self._blob_files():
            if blob.name in keep or not self._old(blob, clock, min_age_s):
                continue
            blob.unlink(missing_ok=True)
            removed.append(blob.name)
        if self._tmp.is_dir():
            for part in self._tmp.iterdir():
                if self._old(part, clock, min_age_s):
                    part.unlink(missing_ok=True)
        return sorted(removed)

    @staticmethod
    def _old(path: Path, now: float, min_age_s: float) -> bool:
        try:
            return now - path.stat().st_mtime >= min_age_s
        except FileNotFoundError:
            return False
