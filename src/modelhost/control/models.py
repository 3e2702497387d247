"""Model registry service: validate a registration manifest, record it, list, fetch and delete models.

Files reach the control plane as content-addressed blobs first (``/api/v1/blobs``); a registration
is then a manifest naming those blobs. Every check runs before anything is written, so bad input
changes nothing stored. The manifest parser is pure; :class:`ModelService` does the I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from modelhost.errors import ValidationError
from modelhost.spec.names import validate_model_name, validate_model_version
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.metadata import ModelFile, ModelRecord, Store

__all__ = [
    "ModelManifest",
    "ModelService",
    "model_to_dict",
    "parse_filters",
    "parse_manifest",
    "validate_digest",
]

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelManifest:
    """A validated registration request."""

    name: str
    basename: str
    is_dir: bool
    files: tuple[ModelFile, ...]
    tags: dict[str, str]
    properties: dict[str, str]
    description: str | None
    framework: str | None
    framework_version: str | None


def validate_digest(digest: object) -> str:
    if not isinstance(digest, str) or _SHA256_RE.fullmatch(digest) is None:
        raise ValidationError(f"Invalid blob digest {digest!r}: expected 64 lowercase hex digits (sha256)")
    return digest


def _str_map(payload: Mapping[str, Any], key: str) -> dict[str, str]:
    value = payload.get(key) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in value.items()
    ):
        raise ValidationError(f"'{key}' must be a mapping of strings to strings, got {value!r}")
    return {k: str(v) for k, v in value.items()}


def _opt_str(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"'{key}' must be a string, got {value!r}")
    return value or None


def _check_path(path: str, basename: str, is_dir: bool) -> None:
    pure = PurePosixPath(path)
    bad = (
        not path or path.startswith("/") or "\\" in path or any(p in ("..", ".", "") for p in path.split("/"))
    )
    if bad:
        raise ValidationError(
            f"Invalid file path {path!r} in the model: paths are relative, '/'-separated, "
            "without '.' or '..' parts"
        )
    if is_dir and (len(pure.parts) < 2 or pure.parts[0] != basename):
        raise ValidationError(f"File {path!r} lies outside the model folder {basename!r}")
    if not is_dir and path != basename:
        raise ValidationError(f"A file model holds exactly its own file {basename!r}, not {path!r}")


def _parse_file(raw: object, basename: str, is_dir: bool) -> ModelFile:
    if not isinstance(raw, dict):
        raise ValidationError(f"Each entry of 'files' must be an object, got {raw!r}")
    path, size, executable = raw.get("path"), raw.get("size"), raw.get("executable", False)
    if not isinstance(path, str):
        raise ValidationError(f"File entry {raw!r} lacks a 'path' string")
    _check_path(path, basename, is_dir)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValidationError(f"File {path!r}: 'size' must be an integer >= 0, got {size!r}")
    if not isinstance(executable, bool):
        raise ValidationError(f"File {path!r}: 'executable' must be true or false")
    return ModelFile(path=path, sha256=validate_digest(raw.get("sha256")), size=size, executable=executable)


def parse_manifest(payload: object) -> ModelManifest:
    """Validate a registration body (pure): name rules, file layout, v1's framework rule."""
    if not isinstance(payload, dict):
        raise ValidationError("The registration body must be a JSON object")
    name = payload.get("name")
    validate_model_name(name)
    assert isinstance(name, str)
    basename, is_dir = payload.get("basename"), payload.get("is_dir")
    if not isinstance(basename, str) or not basename or "/" in basename or basename in (".", ".."):
        raise ValidationError(f"Invalid model basename {basename!r}: the file or folder name, without '/'")
    if not isinstance(is_dir, bool):
        raise ValidationError("'is_dir' must be true (a folder) or false (a single file)")
    raw_files = payload.get("files")
    if not isinstance(raw_files, list) or not raw_files:
        what = f"folder {basename!r} holds no files" if is_dir else "'files' is empty"
        raise ValidationError(
            f"Cannot register model {name!r}: {what}", hint="Register a non-empty file or folder."
        )
    files = tuple(_parse_file(raw, basename, is_dir) for raw in raw_files)
    if len({f.path for f in files}) != len(files):
        raise ValidationError(f"Model {name!r} lists a file path twice")
    framework, framework_version = _opt_str(payload, "framework"), _opt_str(payload, "framework_version")
    if framework_version and not framework:
        raise ValidationError(
            "model_framework_version is set but model_framework is not",
            hint="Pass model_framework as well (e.g. Model.Framework.SCIKITLEARN).",
        )
    return ModelManifest(
        name=name,
        basename=basename,
        is_dir=is_dir,
        files=files,
        tags=_str_map(payload, "tags"),
        properties=_str_map(payload, "properties"),
        description=_opt_str(payload, "description"),
        framework=framework,
        framework_version=framework_version,
    )


def parse_filters(pairs: list[str], what: str) -> list[str | list[str]]:
    """Query filters ``["k", "k=v"]`` (``?tag=k&tag=k=v``) -> the store's ``["k", ["k", "v"]]``."""
    out: list[str | list[str]] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key:
            raise ValidationError(f"Invalid {what} filter {pair!r}: expected 'key' or 'key=value'")
        out.append([key, value] if sep else key)
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def model_to_dict(record: ModelRecord) -> dict[str, Any]:
    """The JSON view of a model version."""
    return {
        "id": record.id,
        "name": record.name,
        "version": record.version,
        "basename": record.basename,
        "is_dir": record.is_dir,
        "size": record.size,
        "files": [
            {"path": f.path, "sha256": f.sha256, "size": f.size, "executable": f.executable}
            for f in record.files
        ],
        "tags": dict(record.tags),
        "properties": dict(record.properties),
        "description": record.description,
        "framework": record.framework,
        "framework_version": record.framework_version,
        "created_time": _iso(record.created_time),
    }


class ModelService:
    """Registers and serves models over the store and the artifact store."""

    def __init__(self, store: Store, artifacts: ArtifactStore) -> None:
        self._store = store
        self._artifacts = artifacts

    def missing_blobs(self, digests: list[object]) -> list[str]:
        """The digests (validated) that the artifact store does not hold yet, in request order."""
        checked = [validate_digest(d) for d in digests]
        return [d for d in dict.fromkeys(checked) if not self._artifacts.exists(d)]

    def register(self, payload: object) -> ModelRecord:
        """Validate the manifest and its blobs, then record a new version of the model."""
        manifest = parse_manifest(payload)
        for f in manifest.files:
            if not self._artifacts.exists(f.sha256):
                raise ValidationError(
                    f"File {f.path!r} of model {manifest.name!r} was not uploaded "
                    f"(blob {f.sha256[:12]}… missing)",
                    hint="Upload it with PUT /api/v1/blobs/<sha256> first.",
                )
            if self._artifacts.size(f.sha256) != f.size:
                raise ValidationError(f"File {f.path!r}: size {f.size} does not match the uploaded blob")
        return self._store.register_model(
            name=manifest.name,
            basename=manifest.basename,
            is_dir=manifest.is_dir,
            files=manifest.files,
            tags=manifest.tags,
            properties=manifest.properties,
            description=manifest.description,
            framework=manifest.framework,
            framework_version=manifest.framework_version,
        )

    def get(self, name: str, version: int | None = None) -> ModelRecord:
        validate_model_name(name)
        if version is not None:
            validate_model_version(version)
        return self._store.get_model(name, version)

    def list(
        self,
        *,
        name: str | None = None,
        tags: list[str] | None = None,
        properties: list[str] | None = None,
        latest: bool = False,
        framework: str | None = None,
    ) -> list[ModelRecord]:
        if name is not None:
            validate_model_name(name)
        return list(
            self._store.list_models(
                name=name,
                tags=parse_filters(tags or [], "tag"),
                properties=parse_filters(properties or [], "property"),
                latest=latest,
                framework=framework,
            )
        )

    def delete(self, name: str, version: int) -> None:
        self.get(name, version)  # a clear ModelNotFoundError first
        self._store.delete_model(name, version)

    def update_tags(self, name: str, version: int, payload: object) -> ModelRecord:
        """Apply ``{"add_tags": {...}, "remove_tags": [...], "add_properties": {...}}`` to a model version."""
        if not isinstance(payload, dict):
            raise ValidationError("The update body must be a JSON object")
        remove = payload.get("remove_tags") or []
        if not isinstance(remove, list) or not all(isinstance(k, str) for k in remove):
            raise ValidationError("'remove_tags' must be a list of tag names")
        add_tags, add_props = _str_map(payload, "add_tags"), _str_map(payload, "add_properties")
        record = self.get(name, version)
        if add_props:
            record = self._store.add_model_properties(name, version, add_props)
        if add_tags or remove:
            record = self._store.update_model_tags(name, version, add=add_tags, remove=remove)
        return record
