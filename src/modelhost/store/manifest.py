"""Pure checks for a model's file manifest (no I/O).

A model keeps its original base name: a file model ``model.pkl`` has one file whose path is
``model.pkl``; a folder model ``outputs/model/`` has basename ``model`` and files
``model/<path inside the folder>``. That is the layout under ``azureml-models/<name>/<version>/``.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelhost.errors import ValidationError
from modelhost.store.artifacts import is_digest
from modelhost.store.records import ModelFile

__all__ = ["check_basename", "check_model_files"]

_HINT = "Register the model from a file or a folder; modelhost builds the manifest itself."


def _invalid(message: str) -> ValidationError:
    return ValidationError(message, hint=_HINT)


def check_basename(basename: object) -> str:
    """A model's basename: one non-empty path segment (no '/', not '.' or '..')."""
    if (
        not isinstance(basename, str)
        or basename in ("", ".", "..")
        or "/" in basename
        or "\0" in basename
        or len(basename) > 1024
    ):
        raise _invalid(f"Invalid model basename {basename!r}: expected the name of one file or folder")
    return basename


def _check_path(path: object) -> str:
    if not isinstance(path, str) or not path or "\0" in path or len(path) > 4096:
        raise _invalid(f"Invalid model file path {path!r}")
    if path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")):
        raise _invalid(
            f"Invalid model file path {path!r}: expected a relative posix path without '.' or '..'"
        )
    return path


def _check_file(file: object) -> ModelFile:
    if not isinstance(file, ModelFile):
        raise _invalid(f"Invalid model file {file!r}: expected a ModelFile")
    _check_path(file.path)
    if not is_digest(file.sha256):
        raise _invalid(f"Invalid sha256 {file.sha256!r} for model file {file.path!r}")
    if isinstance(file.size, bool) or not isinstance(file.size, int) or file.size < 0:
        raise _invalid(f"Invalid size {file.size!r} for model file {file.path!r}")
    if not isinstance(file.executable, bool):
        raise _invalid(f"Invalid executable flag {file.executable!r} for model file {file.path!r}")
    return file


def check_model_files(basename: str, is_dir: bool, files: Sequence[ModelFile]) -> tuple[ModelFile, ...]:
    """Validate a manifest and return it sorted by path; ``ValidationError`` names the first problem."""
    check_basename(basename)
    checked = sorted((_check_file(f) for f in files), key=lambda f: f.path)
    paths = [f.path for f in checked]
    if not is_dir:
        if paths != [basename]:
            raise _invalid(
                f"A file model {basename!r} has exactly one file, named {basename!r}; got {paths!r}"
            )
        return tuple(checked)
    prefix = basename + "/"
    for path in paths:
        if not path.startswith(prefix):
            raise _invalid(f"Model file {path!r} lies outside the model folder {basename!r}")
    seen = set(paths)
    if len(seen) != len(paths):
        raise _invalid(f"Model folder {basename!r} lists a file twice")
    for path in paths:
        parts = path.split("/")
        for end in range(1, len(parts)):
            if "/".join(parts[:end]) in seen:
                raise _invalid(f"Model file {'/'.join(parts[:end])!r} is also a folder of {path!r}")
    return tuple(checked)
