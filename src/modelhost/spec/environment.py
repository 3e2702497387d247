"""Environment specs: pip requirements, v1 conda files or "inherit the current interpreter".

Pure: parsing, normalisation, the conda -> PyPI translation and the content hash. No I/O.

A v1 conda file (``Environment.from_conda_specification``) lists conda packages under
``dependencies:`` and pip packages under ``- pip: [...]``. modelhost builds every environment with
uv from PyPI, so conda packages are installed from PyPI by the same name, or by the name in
:data:`CONDA_TO_PYPI` where the two differ; packages that only exist on conda (CUDA toolkits, BLAS
and C libraries, MPI, ...) are refused in one error naming each. ``azureml-*`` packages are
provided by modelhost's own runtime and its ``azureml`` shims, so they are skipped with a note.

The content hash covers what decides the built files: canonical requirements (PEP 503 names,
sorted), the resolved Python minor and modelhost's major.minor version. Names, environment
variables and conda channels do not change the build, so they are not hashed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelhost.errors import ValidationError

__all__ = [
    "CONDA_ONLY",
    "CONDA_SKIPPED",
    "CONDA_TO_PYPI",
    "HASH_FORMAT",
    "NOT_PACKAGES",
    "EnvironmentSpec",
    "canonical_name",
    "conda_to_pip",
    "normalize_requirement",
    "parse_conda_entry",
    "python_minor",
    "requirement_name",
]

HASH_FORMAT = 1

# Conda names whose PyPI distribution is called differently.
CONDA_TO_PYPI: Mapping[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "tensorflow-gpu": "tensorflow",
    "tensorflow-mkl": "tensorflow",
    "tensorflow-cpu": "tensorflow",
    "keras-gpu": "keras",
    "matplotlib-base": "matplotlib",
    "opencv": "opencv-python-headless",
    "py-opencv": "opencv-python-headless",
    "libopencv": "opencv-python-headless",
    "pytables": "tables",
    "msgpack-python": "msgpack",
    "ruamel_yaml": "ruamel.yaml",
    "python-graphviz": "graphviz",
    "lightgbm-cpu": "lightgbm",
    "py-lightgbm": "lightgbm",
    "pyqt": "pyqt5",
    "cudf": "cudf-cu12",
    "onnxruntime-gpu": "onnxruntime",
    "jpype1": "JPype1",
    "pywavelets": "PyWavelets",
}

# Conda packages with no PyPI equivalent worth installing: system libraries, toolchains, CUDA.
CONDA_ONLY: frozenset[str] = frozenset(
    {
        "cudatoolkit",
        "cudatoolkit-dev",
        "cuda-toolkit",
        "cuda-nvcc",
        "cuda-runtime",
        "cudnn",
        "nccl",
        "mkl",
        "mkl-include",
        "mkl-devel",
        "blas",
        "libblas",
        "libcblas",
        "liblapack",
        "liblapacke",
        "openblas",
        "libopenblas",
        "libgcc-ng",
        "libgcc",
        "libstdcxx-ng",
        "libgfortran-ng",
        "libgfortran",
        "libgomp",
        "openmpi",
        "mpich",
        "impi-rt",
        "openssl",
        "ca-certificates",
        "zlib",
        "xz",
        "sqlite",
        "readline",
        "ncurses",
        "tk",
        "libffi",
        "bzip2",
        "ld_impl_linux-64",
        "libuuid",
        "gcc",
        "gxx",
        "gcc_linux-64",
        "gxx_linux-64",
        "gfortran",
        "make",
        "git",
        "nodejs",
        "r-base",
        "ffmpeg",
        "libxml2",
        "hdf5",
        "icu",
        "jpeg",
        "libjpeg-turbo",
        "libpng",
        "libtiff",
        "freetype",
        "arrow-cpp",
        "libprotobuf",
        "libboost",
        "boost-cpp",
        "tbb-devel",
        "libiconv",
        "libedit",
        "anaconda",
        "conda",
        "conda-build",
        "magma-cuda100",
        "magma-cuda101",
        "magma-cuda110",
    }
)

# Conda entries that are not packages to install (the interpreter and the packaging tools).
NOT_PACKAGES: frozenset[str] = frozenset({"python", "pip", "setuptools", "wheel"})

# Conda metapackages that only select a build variant; PyPI has no such switch.
CONDA_SKIPPED: Mapping[str, str] = {
    "cpuonly": "conda's CPU-build selector for pytorch has no PyPI equivalent",
    "nomkl": "conda's no-MKL selector has no PyPI equivalent (PyPI wheels bundle OpenBLAS)",
}

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REQUIREMENT = re.compile(
    rf"^\s*(?P<name>{_NAME})\s*(?:\[(?P<extras>[^\]]*)\])?\s*(?P<rest>[^;]*?)\s*(?:;\s*(?P<marker>.*?))?\s*$"
)
_SPECIFIER = re.compile(r"^(?:(?:===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*,?\s*)*$")


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name: lower case, runs of ``-_.`` collapsed to ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_minor(version: str | None) -> str | None:
    """``"3.6.2"`` -> ``"3.6"``; ``None`` stays ``None``; anything else is a ValidationError."""
    if version is None:
        return None
    match = re.match(r"^\s*[<>=~!]*\s*(\d+)\.(\d+)", version)
    if not match:
        raise ValidationError(
            f"python version {version!r} is not a version like 3.11",
            hint="Pin Python as 'python=3.11' (conda) or leave it out.",
        )
    return f"{match.group(1)}.{match.group(2)}"


def requirement_name(requirement: str) -> str:
    """The canonical project name of a PEP 508 requirement string."""
    match = _REQUIREMENT.match(requirement)
    if not match:
        raise ValidationError(
            f"requirement {requirement!r} is not a valid PEP 508 requirement",
            hint="Write requirements as pip does, e.g. 'numpy>=1.26' or 'scikit-learn==1.4.2'.",
        )
    return canonical_name(match.group("name"))


def normalize_requirement(requirement: str) -> str:
    """Canonical text of a PEP 508 requirement: PEP 503 name, sorted extras, no blanks in specifiers.

    Direct references (``name @ url``) keep their URL. Raises ValidationError naming the line.
    """
    match = _REQUIREMENT.match(requirement)
    if not match:
        raise ValidationError(
            f"requirement {requirement!r} is not a valid PEP 508 requirement",
            hint="Write requirements as pip does, e.g. 'numpy>=1.26' or 'scikit-learn==1.4.2'.",
        )
    name = canonical_name(match.group("name"))
    raw_extras = (match.group("extras") or "").split(",")
    extras = sorted({canonical_name(e.strip()) for e in raw_extras if e.strip()})
    rest = match.group("rest").strip()
    if rest.startswith("@"):
        spec = " @ " + rest[1:].strip()
    else:
        if rest.startswith("(") and rest.endswith(")"):
            rest = rest[1:-1]
        if not _SPECIFIER.match(rest):
            raise ValidationError(
                f"requirement {requirement!r} has an invalid version specifier {rest!r}",
                hint="Use PEP 440 specifiers such as '==1.2.*', '>=1.0,<2'.",
            )
        spec = ",".join(sorted(part.replace(" ", "") for part in rest.split(",") if part.strip()))
    marker = match.group("marker")
    text = name + (f"[{','.join(extras)}]" if extras else "") + spec
    if marker:
        text += "; " + " ".join(marker.split())
    return text


def _conda_version(name: str, version: str) -> str:
    """Translate a conda version constraint to a PEP 440 specifier string (without the name)."""
    version = version.strip()
    if not version or version == "*":
        return ""
    if "|" in version:
        raise ValidationError(
            f"conda package {name!r} uses an 'or' constraint {version!r} that pip cannot express",
            hint=f"Replace it with one range, e.g. '{name}>=X,<Y'.",
        )
    if version.startswith("=="):
        return version
    if version.startswith("="):
        version = version[1:]
    elif re.match(r"^[<>!~]", version):
        return version.replace(" ", "")
    if version.endswith(".*") or version.endswith("*"):
        return "==" + version.rstrip("*").rstrip(".") + ".*"
    # conda's `=1.19` is the prefix match 1.19.*; a full three-part version is taken as exact.
    return f"=={version}" if version.count(".") >= 2 else f"=={version}.*"


def parse_conda_entry(entry: str) -> tuple[str, str]:
    """A conda match spec -> (conda name as written, conda version constraint or "").

    Accepts ``name``, ``name=1.2``, ``name==1.2.3``, ``name>=1.2,<2``, ``name=1.2=build``,
    ``name 1.2.* build`` and a ``channel::`` prefix (dropped).
    """
    text = entry.strip().split("::")[-1]
    if " " in text:
        name, _, rest = text.partition(" ")
        version = rest.split()[0] if rest.split() else ""
    else:
        match = re.match(_NAME, text)
        if not match:
            raise ValidationError(
                f"conda dependency {entry!r} is not a conda match spec",
                hint="Write conda dependencies as 'name', 'name=1.2' or 'name>=1.2'.",
            )
        name, version = match.group(0), text[match.end() :]
        if version.startswith("=") and not version.startswith("=="):
            version = "=" + version[1:].split("=", 1)[0]
        elif version.startswith("=="):
            version = "==" + version[2:].split("=", 1)[0]
    if not re.fullmatch(_NAME, name) or re.search(r"[\s\[\]'\"]", version):
        raise ValidationError(
            f"conda dependency {entry!r} is not a conda match spec",
            hint="Write conda dependencies as 'name', 'name=1.2' or 'name>=1.2'.",
        )
    return name, version


def conda_to_pip(entry: str) -> tuple[str | None, str | None]:
    """One conda dependency line -> (pip requirement or None, python version or None).

    Returns ``(None, version)`` for ``python``, ``(None, None)`` for other non-packages. Conda-only
    packages are *not* refused here (the caller collects them all to name them in one error).
    """
    raw_name, version = parse_conda_entry(entry)
    name = canonical_name(raw_name)
    if name == "python":
        return None, version.lstrip("=<>!~ ").rstrip(".*") or None
    if name in NOT_PACKAGES:
        return None, None
    pypi = CONDA_TO_PYPI.get(name, raw_name)
    return f"{pypi}{_conda_version(name, version)}", None


def _clean_pip_lines(text: str) -> list[str]:
    """Requirement lines of a requirements.txt: comments, blanks and continuations removed."""
    joined = re.sub(r"\\\r?\n", "", text)
    lines: list[str] = []
    for raw in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            raise ValidationError(
                f"pip option {line.split()[0]!r} is not supported in an environment spec",
                hint="List requirements only (one per line); modelhost installs them from PyPI with uv.",
            )
        lines.append(line)
    return lines


def _screen(requirements: Iterable[str]) -> tuple[list[str], list[str]]:
    """Drop what modelhost's runtime provides; returns (kept requirements, notes)."""
    kept: list[str] = []
    notes: list[str] = []
    for requirement in requirements:
        normalized = normalize_requirement(requirement)
        name = requirement_name(normalized)
        if name.startswith("azureml-") or name == "azureml":
            notes.append(f"skipped {requirement.strip()!r}: modelhost's runtime provides azureml.*")
            continue
        if name == "modelhost":
            notes.append(f"skipped {requirement.strip()!r}: modelhost installs itself in every environment")
            continue
        if name == "inference-schema":
            match = _REQUIREMENT.match(normalized)
            assert match is not None
            if match.group("rest"):
                extras = match.group("extras")
                normalized = "inference-schema" + (f"[{extras}]" if extras else "")
                notes.append(
                    f"relaxed {requirement.strip()!r} to {normalized!r}: "
                    "modelhost's runtime needs inference-schema>=1.8"
                )
        kept.append(normalized)
    return kept, notes


@dataclass(frozen=True)
class EnvironmentSpec:
    """What an environment contains. ``requirements`` are canonical PEP 508 strings, sorted, unique.

    ``python`` is the requested version as written (``"3.6.2"``) or None for "the default".
    ``inherit`` means "run in the current interpreter" (development): nothing is built.
    ``notes`` record what the translation skipped or changed, for the build log.
    """

    name: str
    python: str | None
    requirements: tuple[str, ...]
    inherit: bool = False
    env_vars: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        python_minor(self.python)  # validates
        object.__setattr__(self, "requirements", tuple(sorted(set(self.requirements))))
        object.__setattr__(self, "env_vars", tuple(sorted(self.env_vars)))

    @classmethod
    def from_pip_requirements(cls, name: str, text: str, *, python: str | None = None) -> EnvironmentSpec:
        """A spec from the text of a requirements.txt (options such as ``-r`` are refused)."""
        kept, notes = _screen(_clean_pip_lines(text))
        return cls(name=name, python=python, requirements=tuple(kept), notes=tuple(notes))

    @classmethod
    def from_conda_yaml(cls, name: str, text: str) -> EnvironmentSpec:
        """A spec from a v1 conda environment file; refuses conda-only packages, naming each."""
        data = _load_yaml(text)
        deps = data.get("dependencies") or []
        if not isinstance(deps, list):
            raise ValidationError(
                "conda file: 'dependencies' must be a list", hint="See a v1 myenv.yml for the shape."
            )
        python: str | None = None
        requirements: list[str] = []
        pip_requirements: list[str] = []
        conda_only: list[str] = []
        notes: list[str] = []
        for entry in deps:
            if isinstance(entry, dict):
                pip_requirements.extend(_pip_section(entry))
                continue
            if not isinstance(entry, str | int | float):
                raise ValidationError(f"conda file: dependency {entry!r} is not a string or a pip section")
            requirement, version = conda_to_pip(str(entry))
            if version is not None:
                python = version
            if requirement is None:
                continue
            conda_name = canonical_name(parse_conda_entry(str(entry))[0])
            if conda_name in CONDA_ONLY or conda_name.startswith(("r-", "_", "m2w64-", "cuda-")):
                conda_only.append(conda_name)
            elif conda_name in CONDA_SKIPPED:
                notes.append(f"skipped conda package {conda_name!r}: {CONDA_SKIPPED[conda_name]}")
            else:
                if conda_name in CONDA_TO_PYPI:
                    pypi = CONDA_TO_PYPI[conda_name]
                    notes.append(f"conda package {conda_name!r} installed from PyPI as {pypi!r}")
                requirements.append(requirement)
        if conda_only:
            raise ValidationError(
                f"conda file lists packages that exist only on conda: {', '.join(sorted(set(conda_only)))}",
                hint="modelhost installs from PyPI: remove these (PyPI wheels bundle their libraries).",
                details=sorted(set(conda_only)),
            )
        kept, screened = _screen([*requirements, *pip_requirements])
        env_vars = _conda_variables(data.get("variables"))
        return cls(
            name=name, python=python, requirements=tuple(kept), env_vars=env_vars, notes=(*notes, *screened)
        )

    @classmethod
    def inherit_current(cls, name: str) -> EnvironmentSpec:
        """Run in the interpreter that runs modelhost (development); nothing is built."""
        return cls(name=name, python=None, requirements=(), inherit=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnvironmentSpec:
        """Inverse of :meth:`to_dict`; validates every field."""
        try:
            name = str(d["name"])
            python = d.get("python")
            requirements = [normalize_requirement(str(r)) for r in d.get("requirements") or []]
            env_vars = tuple((str(k), str(v)) for k, v in dict(d.get("env_vars") or {}).items())
            notes = tuple(str(n) for n in d.get("notes") or [])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(
                f"environment spec is malformed: {exc}", hint="Send name, python and requirements."
            ) from exc
        return cls(
            name=name,
            python=None if python is None else str(python),
            requirements=tuple(requirements),
            inherit=bool(d.get("inherit", False)),
            env_vars=env_vars,
            notes=notes,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the store and the REST API."""
        return {
            "name": self.name,
            "python": self.python,
            "requirements": list(self.requirements),
            "inherit": self.inherit,
            "env_vars": dict(self.env_vars),
            "notes": list(self.notes),
        }

    def content_hash(self, modelhost_version: str, python_minor: str | None = None) -> str:
        """sha256 hex of what decides the built files.

        ``python_minor`` is the interpreter the build resolved to (e.g. ``"3.11"``); without it the
        requested minor is used. Only modelhost's major.minor enters, so patch releases reuse builds.
        """
        payload = {
            "format": HASH_FORMAT,
            "inherit": self.inherit,
            "python": python_minor if python_minor is not None else _minor_of(self.python),
            "requirements": sorted(self.requirements),
            "modelhost": _major_minor(modelhost_version),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _minor_of(version: str | None) -> str | None:
    return python_minor(version)


def _major_minor(version: str) -> str:
    match = re.match(r"^\s*(\d+)\.(\d+)", version)
    if not match:
        raise ValidationError(f"modelhost version {version!r} is not a version like 1.2.3")
    return f"{match.group(1)}.{match.group(2)}"


def _load_yaml(text: str) -> dict[str, Any]:
    import yaml  # the server extra; imported here so the pure pip path needs nothing

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(
            f"conda file is not valid YAML: {exc}", hint="Check indentation and quoting."
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError("conda file must be a YAML mapping with a 'dependencies' list")
    return data


def _pip_section(entry: Mapping[Any, Any]) -> list[str]:
    if set(entry) != {"pip"} or not isinstance(entry["pip"], list | None):
        raise ValidationError(
            f"conda file: unexpected mapping in dependencies: {dict(entry)!r}",
            hint="Only '- pip: [...]' may appear as a mapping under dependencies.",
        )
    return _clean_pip_lines("\n".join(str(x) for x in entry["pip"] or []))


def _conda_variables(variables: object) -> tuple[tuple[str, str], ...]:
    if variables is None:
        return ()
    if not isinstance(variables, dict):
        raise ValidationError("conda file: 'variables' must be a mapping of NAME: value")
    return tuple((str(k), str(v)) for k, v in variables.items())
