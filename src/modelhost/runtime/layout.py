"""A replica's folder, laid out as v1's containers were (``/var/azureml-app``)::

    <folder>/                          AML_APP_ROOT, the working directory
      <source_dir>/...                 the snapshot unpacked; the entry script is in here
      azureml-models/<name>/<version>/<path>   model files, hard links into the artifact store
                                       (private copies with ``private_models``: docs/security.md)
      outputs/                         what the script writes to ./outputs (kept when it stops)

``AZUREML_MODEL_DIR`` is ``<folder>/azureml-models/<name>/<version>`` (no trailing slash) for one
model and ``<folder>/azureml-models`` otherwise, as v1 set it.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from modelhost.errors import EntryScriptError, ValidationError
from modelhost.runtime.base import ModelFileSpec, ModelSpec, ServiceDeployment
from modelhost.runtime.file_copies import private_copy

__all__ = [
    "MODELS_DIR",
    "BlobSource",
    "ReplicaLayout",
    "keep_outputs",
    "layout_for",
    "model_dir",
    "model_file_path",
    "prepare_replica",
    "remove_folder",
    "replica_env",
]

MODELS_DIR = "azureml-models"


class BlobSource(Protocol):
    """Where model bytes come from (``modelhost.store.artifacts.ArtifactStore`` is one)."""

    def materialize(self, digest: str, dest: Path, *, executable: bool = False) -> None: ...


@dataclass(frozen=True)
class ReplicaLayout:
    folder: Path
    model_dir: Path
    entry_script: Path
    source_dir: Path

    @property
    def app_root(self) -> Path:
        return self.folder

    @property
    def outputs(self) -> Path:
        return self.folder / "outputs"


def _relative(value: str, what: str) -> PurePosixPath:
    rel = PurePosixPath(value)
    if not value or rel.is_absolute() or ".." in rel.parts or rel == PurePosixPath("."):
        raise ValidationError(
            f"{what} {value!r} is not a relative path inside the folder",
            hint=f"Give {what} as a path relative to its folder, without '..'.",
        )
    return rel


def _check_model(model: ModelSpec) -> None:
    _relative(model.name, "model name")
    if "/" in model.name or model.version < 0:
        raise ValidationError(
            f"model {model.name}:{model.version} has an invalid name or version",
            hint="Model names hold no '/', versions are integers >= 0.",
        )
    for f in model.files:
        _relative(f.path, f"file of model {model.name}:{model.version}")
        if (f.sha256 is None) == (f.source is None):
            raise ValidationError(
                f"file {f.path!r} of model {model.name}:{model.version} needs exactly one of "
                "sha256 and source",
                hint="Name the blob by its sha256 or give a file path.",
            )


def model_dir(folder: Path, models: tuple[ModelSpec, ...]) -> Path:
    """``AZUREML_MODEL_DIR`` for a replica whose app root is ``folder``."""
    if len(models) == 1:
        return folder / MODELS_DIR / models[0].name / str(models[0].version)
    return folder / MODELS_DIR


def model_file_path(folder: Path, name: str, version: int, path: str) -> Path:
    """Where file ``path`` of model ``name:version`` goes in the app root ``folder``:
    ``<folder>/azureml-models/<name>/<version>/<path>`` (validated: nothing leaves its folder).
    Shared with the Kubernetes init container (``runtime/fetch.py``), which lays models out alike."""
    _check_model(ModelSpec(name=name, version=version, files=(ModelFileSpec(path=path, sha256="-"),)))
    return folder / MODELS_DIR / name / str(version) / _relative(path, f"file of model {name}:{version}")


def layout_for(deployment: ServiceDeployment, folder: Path) -> ReplicaLayout:
    """Where everything of a replica goes (computes paths only; validates the relative ones)."""
    source = _relative(deployment.source_dir, "source_dir")
    if deployment.snapshot is None:
        script = folder / source / Path(deployment.entry_script).name
    else:
        script = folder / source / _relative(deployment.entry_script, "entry_script")
    return ReplicaLayout(
        folder=folder,
        model_dir=model_dir(folder, deployment.models),
        entry_script=script,
        source_dir=folder / source,
    )


def _place(file: ModelFileSpec, dest: Path, blobs: BlobSource | None, private: bool) -> None:
    _link_or_copy(file, dest, blobs)
    if private:
        private_copy(dest)  # a root replica ignores the 0444 mode: it must not write through a link


def _link_or_copy(file: ModelFileSpec, dest: Path, blobs: BlobSource | None) -> None:
    if file.sha256 is not None:
        if blobs is None:
            raise ValidationError(
                f"model file {file.path!r} names blob sha256:{file.sha256} but this runtime "
                "has no artifact store",
                hint="Construct the runtime with the workspace's store.",
            )
        blobs.materialize(file.sha256, dest, executable=file.executable)
        return
    assert file.source is not None
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if file.executable:
            raise OSError("copy to set the mode")
        os.link(file.source, dest)
    except OSError:
        shutil.copyfile(file.source, dest)
        if file.executable:
            os.chmod(dest, 0o555)


def _place_source(
    deployment: ServiceDeployment, layout: ReplicaLayout, extract: Callable[[Path, Path], None]
) -> None:
    layout.source_dir.mkdir(parents=True, exist_ok=True)
    if deployment.snapshot is not None:
        extract(deployment.snapshot, layout.source_dir)
    else:
        lone = Path(deployment.entry_script)
        if not lone.is_absolute() or not lone.is_file():
            raise EntryScriptError(
                f"entry script {deployment.entry_script!r} not found",
                hint="Without a snapshot, give the entry script as an absolute path.",
            )
        shutil.copyfile(lone, layout.entry_script)
    if not layout.entry_script.is_file():
        raise EntryScriptError(
            f"entry script {deployment.entry_script!r} is not in the snapshot of "
            f"service {deployment.service}",
            hint="Name the entry script relative to the source directory.",
        )


def prepare_replica(
    deployment: ServiceDeployment,
    folder: Path,
    blobs: BlobSource | None,
    extract: Callable[[Path, Path], None],
    *,
    private_models: bool = False,
) -> ReplicaLayout:
    """Create ``folder`` and lay the replica out in it; on any error nothing is left behind.

    ``extract(zip_path, dest)`` unpacks a snapshot (``modelhost.build.snapshot.extract_snapshot``).
    ``private_models`` gives the replica copies of its model files instead of hard links into the
    store (for a replica that runs as root: the read-only mode does not stop it).
    """
    for model in deployment.models:
        _check_model(model)
    layout = layout_for(deployment, folder)
    folder.mkdir(parents=True, exist_ok=False)
    try:
        _place_source(deployment, layout, extract)
        for model in deployment.models:
            base = folder / MODELS_DIR / model.name / str(model.version)
            base.mkdir(parents=True, exist_ok=True)
            for f in model.files:
                _place(f, base / f.path, blobs, private_models)
        (folder / MODELS_DIR).mkdir(exist_ok=True)
        layout.outputs.mkdir(exist_ok=True)
    except BaseException:
        remove_folder(folder)
        raise
    return layout


def replica_env(
    deployment: ServiceDeployment, layout: ReplicaLayout, replica_id: str, base: Mapping[str, str]
) -> dict[str, str]:
    """The replica's environment: ``base``, then the deployment's variables, then modelhost's own
    (which win: a script cannot move its model directory by setting ``AZUREML_MODEL_DIR``)."""
    source = deployment.source_dir
    entry = PurePosixPath(source) / (
        Path(deployment.entry_script).name if deployment.snapshot is None else deployment.entry_script
    )
    return {
        **base,
        **deployment.env,
        "AML_APP_ROOT": str(layout.app_root),
        "AZUREML_MODEL_DIR": str(layout.model_dir),
        "AZUREML_ENTRY_SCRIPT": str(entry),
        "AZUREML_SOURCE_DIRECTORY": source,
        "SCORING_TIMEOUT_MS": str(deployment.scoring_timeout_ms),
        "MODELHOST_MAX_CONCURRENT_REQUESTS": str(deployment.max_concurrent_requests),
        "SERVICE_NAME": deployment.service,
        "MODELHOST_REPLICA_ID": replica_id,
        "PYTHONUNBUFFERED": "1",
    }


def keep_outputs(folder: Path, dest: Path) -> None:
    """Copy what the script in replica ``folder`` wrote to ``./outputs`` to ``dest`` (merged)."""
    outputs = folder / "outputs"
    if outputs.is_symlink():
        return  # the script could point it anywhere, and this runs with the control plane's rights
    if outputs.is_dir() and any(outputs.iterdir()):
        shutil.copytree(outputs, dest, dirs_exist_ok=True, symlinks=True)


def remove_folder(folder: Path) -> None:
    """Remove a replica folder, read-only files and folders included."""

    def _writable_then_retry(func: Callable[..., object], path: str, _exc: BaseException) -> None:
        parent = os.path.dirname(path)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        func(path)

    if not folder.exists():
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=_writable_then_retry)
    else:
        shutil.rmtree(folder, onerror=lambda f, p, e: _writable_then_retry(f, p, e[1]))
