"""v1's ``InferenceConfig(entry_script, ...)`` as a value with v1's rules and modelhost's limits.

Pure: it checks strings only; the SDK resolves ``source_directory`` and the entry script on disk
and turns ``conda_file`` into an environment. What modelhost cannot honour (Docker steps, base
images, CUDA base images, Spark) is an error that names the parameter, never silently dropped.
"""

from __future__ import annotations

import keyword
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

from modelhost.spec.deployment_aks import build_checked
from modelhost.spec.deployment_rules import PREFIX, Field, Values, field_values

__all__ = ["INFERENCE_FIELDS", "SUPPORTED_CUDA_VERSIONS", "SUPPORTED_RUNTIMES", "InferenceConfig"]

SUPPORTED_RUNTIMES: Final = ("python", "spark-py")
SUPPORTED_CUDA_VERSIONS: Final = ("9.0", "9.1", "10.0")

INFERENCE_FIELDS: Final[tuple[Field, ...]] = (
    Field("entry_script", "str", None),
    Field("runtime", "str", None),
    Field("conda_file", "str", None),
    Field("extra_docker_file_steps", "str", None),
    Field("source_directory", "str", None),
    Field("enable_gpu", "bool", None),
    Field("description", "str", None),
    Field("base_image", "str", None),
    Field("base_image_registry", "object", None),
    Field("cuda_version", "str", None),
    Field("environment", "object", None),
)

# v1: "with environment, none of these" (azureml/core/model.py InferenceConfig.validate_configuration).
_LEGACY: Final = ("runtime", "conda_file", "extra_docker_file_steps", "enable_gpu", "cuda_version",
                  "base_image")

_NO_DOCKER: Final = ("modelhost runs replicas as processes on this machine, not from Docker images; put "
                     "Python packages in the environment (conda_file or Environment) and install system "
                     "packages on the host.")
_UNSUPPORTED: Final[Mapping[str, str]] = {
    "extra_docker_file_steps": _NO_DOCKER,
    "base_image": _NO_DOCKER,
    "base_image_registry": _NO_DOCKER,
    "enable_gpu": "request GPUs with gpu_cores in the deployment configuration; CUDA comes with the "
                  "packages in the environment (for example torch's CUDA wheels).",
    "cuda_version": "CUDA comes with the packages in the environment (for example torch's CUDA wheels); "
                    "request GPUs with gpu_cores in the deployment configuration.",
}


@dataclass(frozen=True)
class InferenceConfig:
    """``InferenceConfig(entry_script, runtime, conda_file, extra_docker_file_steps, source_directory,
    enable_gpu, description, base_image, base_image_registry, cuda_version, environment)``.

    ``entry_script`` is a path relative to ``source_directory`` (or a lone script); ``environment``
    is the SDK's Environment or a registered environment's name; only its presence matters here.
    """

    table: ClassVar[tuple[Field, ...]] = INFERENCE_FIELDS

    entry_script: str | None = None
    runtime: str | None = None
    conda_file: str | None = None
    extra_docker_file_steps: str | None = None
    source_directory: str | None = None
    enable_gpu: bool | None = None
    description: str | None = None
    base_image: str | None = None
    base_image_registry: object | None = None
    cuda_version: str | None = None
    environment: object | None = None

    @classmethod
    def checked(cls, **params: Any) -> InferenceConfig:
        """The configuration, or ``ValidationError`` listing every violation."""
        return build_checked(cls, params, "an InferenceConfig")

    def validate(self) -> list[str]:
        """Every violation: types, the entry script, v1's rules, then what modelhost cannot honour."""
        v = Values(INFERENCE_FIELDS, field_values(self), {})
        problems = v.type_problems() + self._entry_script_problems(v)
        if self.environment is not None:
            problems += [f"{PREFIX}{name} cannot be used together with environment: put it in the "
                         f"Environment instead.{v.got(name)}" for name in _LEGACY if self._is_set(name)]
        runtime = self.runtime
        if v.ok("runtime") and isinstance(runtime, str) and runtime.lower() not in SUPPORTED_RUNTIMES:
            problems.append(f"{PREFIX}Provided runtime not supported. Possible runtimes are: "
                            f"{'|'.join(SUPPORTED_RUNTIMES)}.{v.got('runtime')}")
        cuda = self.cuda_version
        if v.ok("cuda_version") and isinstance(cuda, str) and cuda.lower() not in SUPPORTED_CUDA_VERSIONS:
            problems.append(f"{PREFIX}Provided cuda_version not supported. Possible values are: "
                            f"{'|'.join(SUPPORTED_CUDA_VERSIONS)}.{v.got('cuda_version')}")
        return problems + self._unsupported(v)

    @property
    def entry_module(self) -> str | None:
        """The module name the entry script is imported as (``score`` for ``src/score.py``)."""
        if not isinstance(self.entry_script, str) or not self.entry_script:
            return None
        return posixpath.splitext(self.entry_script.replace("\\", "/").rsplit("/", 1)[-1])[0]

    @property
    def environment_source(self) -> Literal["environment", "conda_file"] | None:
        """Where the replica's packages come from; None: the SDK's default environment."""
        if self.environment is not None:
            return "environment"
        return "conda_file" if self.conda_file is not None else None

    def _is_set(self, name: str) -> bool:
        value = getattr(self, name)
        return value is not None and value is not False

    def _entry_script_problems(self, v: Values) -> list[str]:
        script = self.entry_script
        if script is None or script == "":
            return [f"{PREFIX}entry_script is required: the scoring script's path relative to "
                    f"source_directory, e.g. 'score.py'."]
        if not v.ok("entry_script"):
            return []
        module = self.entry_module or ""
        extension = posixpath.splitext(script)[1]
        problems = []
        if extension != ".py":
            problems.append(f"{PREFIX}entry_script must be a Python file ending in .py: currently only "
                            f"Python drivers are supported.{v.got('entry_script')}")
        if not module.isidentifier() or keyword.iskeyword(module):
            problems.append(f"{PREFIX}entry_script's module name {module!r} is not a valid Python module "
                            f"name: it must be an identifier (letters, digits, '_'; not starting with a "
                            f"digit) and not a Python keyword.{v.got('entry_script')}")
        return problems

    def _unsupported(self, v: Values) -> list[str]:
        problems = []
        runtime = self.runtime
        if isinstance(runtime, str) and runtime.lower() == "spark-py":
            problems.append(f"{PREFIX}runtime 'spark-py' is not supported by modelhost: only Python entry "
                            f"scripts run here; use runtime='python' or leave it out.")
        cuda = self.cuda_version
        v1_cuda = not isinstance(cuda, str) or cuda.lower() in SUPPORTED_CUDA_VERSIONS
        for name, why in _UNSUPPORTED.items():
            if self._is_set(name) and v.ok(name) and (name != "cuda_version" or v1_cuda):
                problems.append(f"{PREFIX}{name} is not supported by modelhost: {why}{v.got(name)}")
        return problems
