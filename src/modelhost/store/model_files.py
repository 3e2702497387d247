"""Moving a model's files between the local disk and the artifact store.

``collect_model`` stores every file of a model path as a blob and returns the manifest that
:meth:`Store.register_model` takes; ``materialize_model`` lays a registered model out again, as
``<dest>/<basename>[/...]`` (the ``azureml-models/<name>/<version>/`` folder of a replica).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelhost.errors import NotFoundError, ValidationError
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.manifest import check_model_files
from modelhost.store.records import ModelFile

__all__ = ["ModelManifest", "collect_model", "materialize_model"]


@dataclass(frozen=True)
class ModelManifest:
    basename: str
    is_dir: bool
    files: tuple[ModelFile, ...]


def _stored(artifacts: ArtifactStore, path: Path, rel: str) -> ModelFile:
    digest = artifacts.put_file(path)
    mode = path.stat().st_mode
    return ModelFile(
        path=rel, sha256=digest, size=artifacts.size(digest), executable=bool(mode & stat.S_IXUSR)
    )


def _first_visit(seen: set[str], folder: Path) -> bool:
    real = os.path.realpath(folder)
    if real in seen:
        return False
    seen.add(real)
    return True


def collect_model(path: Path, artifacts: ArtifactStore) -> ModelManifest:
    """Store the file or folder at ``path`` (symlinks followed) and return its manifest."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"model path {path} does not exist", hint="Pass an existing file or folder.")
    basename = path.resolve().name if path.name in ("", ".", "..") else path.name
    if path.is_file():
        return ModelManifest(basename, False, (_stored(artifacts, path, basename),))
    if not path.is_dir():
        raise ValidationError(f"model path {path} is neither a file nor a folder")
    files: list[ModelFile] = []
    seen = {os.path.realpath(path)}
    for folder, dirs, names in os.walk(path, followlinks=True):
        # follow linked folders once each, so a link cycle cannot recurse forever
        dirs[:] = [d for d in dirs if _first_visit(seen, Path(folder) / d)]
        for name in names:
            full = Path(folder) / name
            rel = full.relative_to(path).as_posix()
            files.append(_stored(artifacts, full, f"{basename}/{rel}"))
    return ModelManifest(basename, True, check_model_files(basename, True, files))


def materialize_model(files: Iterable[ModelFile], artifacts: ArtifactStore, dest: Path) -> None:
    """Place each file at ``dest / file.path`` (hard links to the blobs where possible)."""
    for file in files:
        artifacts.materialize(file.sha256, Path(dest) / file.path, executable=file.executable)
