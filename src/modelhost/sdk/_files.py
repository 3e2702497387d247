"""Model files on the client: hash a file or folder into a manifest, upload what the server lacks,
rebuild a model's file or folder from its blobs.

Progress is reported as ``(done_bytes, total_bytes)`` so a caller (the CLI's progress bar) can draw it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhost.errors import ConflictError, ValidationError
from modelhost.sdk._client import ControlClient

__all__ = ["LocalFile", "Progress", "download_model", "scan_model", "upload_files"]

Progress = Callable[[int, int], None]  # (bytes done, bytes total)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LocalFile:
    """One file to register: its manifest path (``<basename>[/<rel>]``) and where it lies here."""

    path: str
    source: Path
    sha256: str
    size: int
    executable: bool

    def manifest(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "executable": self.executable}


def _hash(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _local_file(manifest_path: str, source: Path) -> LocalFile:
    info = source.stat()
    return LocalFile(
        path=manifest_path,
        source=source,
        sha256=_hash(source),
        size=info.st_size,
        executable=bool(info.st_mode & stat.S_IXUSR),
    )


def _folder_files(root: Path, child_paths: Iterable[str] | None) -> list[tuple[str, Path]]:
    if child_paths is not None:
        chosen: list[tuple[str, Path]] = []
        for child in child_paths:
            source = (root / child).resolve()
            if not source.is_file():
                raise ValidationError(
                    f"child path {child!r} is not a file under {root}",
                    hint="child_paths lists files relative to the model folder.",
                )
            chosen.append((source.relative_to(root.resolve()).as_posix(), source))
        return chosen
    found: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            source = Path(folder) / name
            if source.is_file():  # follows file symlinks; skips sockets, fifos, broken links
                found.append((source.relative_to(root).as_posix(), source))
    return found


def scan_model(
    model_path: str | os.PathLike[str],
    child_paths: Iterable[str] | None = None,
) -> tuple[str, bool, list[LocalFile]]:
    """``(basename, is_dir, files)`` for a model file or folder; the path must exist (v1's check)."""
    path = Path(model_path).expanduser()
    if not path.exists():
        raise ValidationError(
            f"model_path {str(model_path)!r} does not exist",
            hint="Pass the path of an existing model file or folder.",
        )
    resolved = path.resolve()
    basename = resolved.name
    if not path.is_dir():
        return basename, False, [_local_file(basename, resolved)]
    files = [_local_file(f"{basename}/{rel}", source) for rel, source in _folder_files(resolved, child_paths)]
    if not files:
        raise ValidationError(
            f"model folder {str(model_path)!r} holds no files",
            hint="Register a folder that contains the model's files.",
        )
    return basename, True, files


def upload_files(client: ControlClient, files: list[LocalFile], progress: Progress | None = None) -> int:
    """Upload the blobs the control plane lacks; returns the bytes sent."""
    by_digest = {f.sha256: f for f in files}
    missing = client.post("/api/v1/blobs/missing", {"digests": list(by_digest)})["missing"]
    todo = [by_digest[d] for d in missing if d in by_digest]
    total = sum(f.size for f in todo)
    done = 0
    if progress is not None:
        progress(0, total)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    for f in todo:
        client.put_blob(f.sha256, f.source, on_bytes=advance)
    return total


def download_model(
    client: ControlClient,
    model: dict[str, Any],
    target_dir: str | os.PathLike[str],
    exist_ok: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Rebuild the model's file or folder under ``target_dir``; returns its path (v1 ``download``)."""
    target = Path(target_dir).expanduser() / str(model["basename"])
    if target.exists() or target.is_symlink():
        if not exist_ok:
            raise ConflictError(
                f"{target} already exists",
                hint="Pass exist_ok=True (--exist-ok) to replace it, or another target_dir.",
            )
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    files = model["files"]
    total, done = sum(int(f["size"]) for f in files), 0
    if progress is not None:
        progress(0, total)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    root = Path(target_dir).expanduser()
    for f in files:
        parts = str(f["path"]).split("/")
        if parts[0] != model["basename"] or any(p in ("", ".", "..") for p in parts):
            raise ValidationError(f"Refusing to write model file {f['path']!r} outside {target}")
        client.download_blob(
            f["sha256"], root.joinpath(*parts), executable=bool(f.get("executable")), on_bytes=advance
        )
    return target
