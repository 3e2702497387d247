"""``InferenceConfig``: v1's description of what a service runs (entry script, source folder, environment).

The rules are :class:`modelhost.spec.deployment.InferenceConfig`'s (v1's, plus what modelhost cannot
honour: Docker steps, base images, CUDA images, Spark); this facade adds what needs the disk, as v1
does in its constructor: ``source_directory`` is realpath'ed and the entry script must exist in it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelhost.errors import EntryScriptError, ValidationError
from modelhost.spec.deployment import InferenceConfig as InferenceSpec

__all__ = ["InferenceConfig"]


class InferenceConfig:
    """v1 ``azureml.core.model.InferenceConfig`` (same parameters, same order).

    ``entry_script`` is relative to ``source_directory`` when one is given (v1), else a path from
    the current folder; ``conda_file`` likewise. ``environment`` is an :class:`Environment` or the
    name of a registered one (``"name"`` or ``"name:version"``); ``conda_file`` becomes the
    environment ``<service>-env`` at deploy; with neither, the service inherits the control plane's
    interpreter.
    """

    def __init__(
        self,
        entry_script: str,
        runtime: str | None = None,
        conda_file: str | None = None,
        extra_docker_file_steps: str | None = None,
        source_directory: str | os.PathLike[str] | None = None,
        enable_gpu: bool | None = None,
        description: str | None = None,
        base_image: str | None = None,
        base_image_registry: Any = None,
        cuda_version: str | None = None,
        environment: Any = None,
    ) -> None:
        source = None if source_directory is None else os.fspath(source_directory)
        script = None if entry_script is None else os.fspath(entry_script)
        conda = None if conda_file is None else os.fspath(conda_file)
        self.spec = InferenceSpec.checked(
            entry_script=script,
            runtime=runtime,
            conda_file=conda,
            extra_docker_file_steps=extra_docker_file_steps,
            source_directory=source,
            enable_gpu=enable_gpu,
            description=description,
            base_image=base_image,
            base_image_registry=base_image_registry,
            cuda_version=cuda_version,
            environment=environment,
        )
        self.entry_script: str = str(script)
        self.runtime = runtime
        self.conda_file = conda
        self.extra_docker_file_steps = extra_docker_file_steps
        self.source_directory: str | None = os.path.realpath(source) if source else None
        self.enable_gpu = enable_gpu
        self.description = description
        self.base_image = base_image
        self.base_image_registry = base_image_registry
        self.cuda_version = cuda_version
        self.environment = environment
        self.entry_script_path()  # v1 checks the file in the constructor

    def __repr__(self) -> str:
        return (
            f"InferenceConfig(entry_script={self.entry_script!r}, "
            f"source_directory={self.source_directory!r}, "
            f"environment={self.environment!r}, conda_file={self.conda_file!r})"
        )

    def entry_script_path(self) -> Path:
        """The entry script on disk; ``EntryScriptError`` when it is not there."""
        base = Path(self.source_directory) if self.source_directory else Path.cwd()
        if self.source_directory and not base.is_dir():
            raise ValidationError(
                f"source_directory {self.source_directory!r} does not exist or is not a folder",
                hint="Pass the folder that holds the entry script and the files it imports.",
            )
        path = base / self.entry_script
        if not path.is_file():
            where = f"source_directory {self.source_directory}" if self.source_directory else f"{base}"
            raise EntryScriptError(
                f"Entry script {self.entry_script} not found in {where}",
                hint="entry_script is relative to source_directory (or to the current folder without one).",
            )
        return path

    def conda_file_path(self) -> Path | None:
        """The conda file on disk: relative to ``source_directory`` first (v1), then to the current folder."""
        if self.conda_file is None:
            return None
        candidates = [Path(self.conda_file).expanduser()]
        if self.source_directory:
            candidates.insert(0, Path(self.source_directory) / self.conda_file)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise ValidationError(
            f"conda_file {self.conda_file!r} does not exist",
            hint="Give its path relative to source_directory or to the current folder.",
        )

    def serialize(self) -> dict[str, Any]:
        env = self.environment
        return {
            "entryScript": self.entry_script,
            "runtime": self.runtime,
            "condaFile": self.conda_file,
            "sourceDirectory": self.source_directory,
            "description": self.description,
            "environment": env if isinstance(env, str) or env is None else getattr(env, "name", str(env)),
        }
