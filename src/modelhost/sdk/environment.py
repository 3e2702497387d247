"""``Environment`` and ``CondaDependencies``: v1's environment objects over the control plane.

The SDK only carries what the user wrote (a conda file's text, a requirements file's text, or
"inherit the current interpreter") to the control plane, which parses, validates and builds it; a
build is an operation whose log streams back live (:class:`EnvironmentBuild`).
"""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

from modelhost.errors import ModelhostError, ValidationError, from_payload
from modelhost.sdk.workspace import Workspace

__all__ = ["CondaDependencies", "Environment", "EnvironmentBuild"]

_DEFAULT_CHANNELS = ["anaconda", "conda-forge"]


def _unsupported(call: str, hint: str) -> NoReturn:
    raise ValidationError(f"{call} is not supported by modelhost", hint=hint)


def _load_yaml(text: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValidationError(
            f"conda file is not valid YAML: {exc}", hint="Check indentation and quoting."
        ) from exc
    if not isinstance(data, dict):
        raise ValidationError("conda file must be a YAML mapping with a 'dependencies' list")
    return data


class CondaDependencies:
    """A conda environment file (v1 ``azureml.core.conda_dependencies.CondaDependencies``)."""

    def __init__(
        self,
        conda_dependencies_file_path: str | os.PathLike[str] | None = None,
        _underlying_structure: dict[str, Any] | None = None,
    ) -> None:
        if conda_dependencies_file_path is not None:
            _underlying_structure = _load_yaml(Path(conda_dependencies_file_path).read_text(encoding="utf-8"))
        data = dict(_underlying_structure or {"name": "project_environment", "dependencies": []})
        data["dependencies"] = list(data.get("dependencies") or [])
        self._data = data

    @staticmethod
    def create(
        pip_indexurl: str | None = None,
        pip_packages: Iterable[str] | None = None,
        conda_packages: Iterable[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        """A new conda file with these packages; Python defaults to this interpreter's version."""
        if pip_indexurl is not None:
            _unsupported("CondaDependencies.create(pip_indexurl=...)", "modelhost installs from PyPI.")
        deps = CondaDependencies(
            _underlying_structure={
                "name": "project_environment",
                "dependencies": [],
                "channels": list(_DEFAULT_CHANNELS),
            }
        )
        deps.set_python_version(python_version or f"{sys.version_info.major}.{sys.version_info.minor}")
        for package in conda_packages or []:
            deps.add_conda_package(package)
        for package in pip_packages or []:
            deps.add_pip_package(package)
        return deps

    def _pip_list(self) -> list[str]:
        for entry in self._data["dependencies"]:
            if isinstance(entry, dict) and "pip" in entry:
                if entry["pip"] is None:
                    entry["pip"] = []
                return list_of(entry["pip"])
        section: dict[str, Any] = {"pip": []}
        self._data["dependencies"].append(section)
        return list_of(section["pip"])

    @property
    def conda_packages(self) -> builtins.list[str]:
        return [
            str(e)
            for e in self._data["dependencies"]
            if not isinstance(e, dict) and not str(e).startswith("python")
        ]

    @property
    def pip_packages(self) -> builtins.list[str]:
        for entry in self._data["dependencies"]:
            if isinstance(entry, dict) and "pip" in entry:
                return [str(p) for p in entry["pip"] or []]
        return []

    def get_python_version(self) -> str | None:
        for entry in self._data["dependencies"]:
            if isinstance(entry, str) and entry.split("=")[0].strip() == "python":
                return entry.partition("=")[2].lstrip("=") or None
        return None

    def set_python_version(self, version: str) -> None:
        deps = [
            e
            for e in self._data["dependencies"]
            if not (isinstance(e, str) and e.split("=")[0].strip() == "python")
        ]
        self._data["dependencies"] = [f"python={version}", *deps]

    def add_conda_package(self, conda_package: str) -> None:
        if conda_package not in self._data["dependencies"]:
            pip_at = next(
                (i for i, e in enumerate(self._data["dependencies"]) if isinstance(e, dict)),
                len(self._data["dependencies"]),
            )
            self._data["dependencies"].insert(pip_at, conda_package)

    def remove_conda_package(self, conda_package: str) -> None:
        self._data["dependencies"] = [e for e in self._data["dependencies"] if e != conda_package]

    def add_pip_package(self, pip_package: str) -> None:
        pip = self._pip_list()
        if pip_package not in pip:
            pip.append(pip_package)

    def remove_pip_package(self, pip_package: str) -> None:
        pip = self._pip_list()
        pip[:] = [p for p in pip if p != pip_package]

    def add_channel(self, channel: str) -> None:
        channels = self._data.setdefault("channels", [])
        if channel not in channels:
            channels.append(channel)

    def serialize_to_string(self) -> str:
        import yaml

        data = dict(self._data)
        data["dependencies"] = [
            e for e in data["dependencies"] if not (isinstance(e, dict) and not e.get("pip"))
        ]
        return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))

    def save(self, path: str | os.PathLike[str]) -> str:
        Path(path).write_text(self.serialize_to_string(), encoding="utf-8")
        return str(path)

    def save_to_file(self, base_directory: str | os.PathLike[str], conda_file_path: str | None = None) -> str:
        return self.save(Path(base_directory) / (conda_file_path or "myenv.yml"))

    def __repr__(self) -> str:
        return self.serialize_to_string()


def list_of(value: Any) -> builtins.list[str]:
    """The same list object, typed (the pip section is edited in place)."""
    assert isinstance(value, list)
    return value


class PythonSection:
    """v1 ``env.python``: the conda dependencies, or a user-managed interpreter."""

    def __init__(self) -> None:
        self.conda_dependencies: CondaDependencies = CondaDependencies.create()
        self.user_managed_dependencies = False
        self.interpreter_path: str | None = None


class DockerSection:
    """v1 ``env.docker``; modelhost runs no containers locally, so a base image is refused at register."""

    def __init__(self) -> None:
        self.enabled = False
        self.base_image: str | None = None
        self.base_dockerfile: str | None = None
        self.base_image_registry: Any = None


class EnvironmentBuild:
    """A build operation of an environment; ``wait_for_completion`` streams its log."""

    def __init__(self, workspace: Workspace, operation: dict[str, Any]) -> None:
        self.workspace = workspace
        self.operation = operation
        self.id: str = operation["id"]
        self._offset = 0

    @property
    def status(self) -> str:
        """``Running``, ``Succeeded`` or ``Failed``."""
        return str(self.operation["state"])

    @property
    def result(self) -> dict[str, Any] | None:
        """On success: ``source`` (built or the cache that hit), ``cache_hit``, ``seconds``, ``path``, ..."""
        result = self.operation.get("result")
        return dict(result) if result else None

    def refresh(self, wait_s: float = 0.0) -> builtins.list[str]:
        """Fetch the state and the log lines that arrived since the last call (long-polls ``wait_s``)."""
        params = {"offset": self._offset, "wait": wait_s}
        self.operation = self.workspace._client.get(
            f"/api/v1/operations/{self.id}", params=params, timeout_s=wait_s + 30.0
        )
        self._offset = int(self.operation["next_offset"])
        return [str(line) for _, line in self.operation["log"]]

    def stream(self, wait_s: float = 20.0) -> Iterator[str]:
        """Yield log lines as they arrive until the build ends."""
        while True:
            yield from self.refresh(wait_s)
            if self.status != "Running":
                yield from self.refresh(0.0)
                return

    def error(self) -> ModelhostError | None:
        """The build's error (the same class the control plane raised), if it failed."""
        payload = self.operation.get("error")
        return None if not payload else from_payload(422, {"error": payload})

    def wait_for_completion(self, show_output: bool = False) -> dict[str, Any]:
        """Wait for the build; print its log live with ``show_output``; raise its error if it failed."""
        for line in self.stream():
            if show_output:
                print(line, flush=True)
        error = self.error()
        if error is not None:
            raise error
        return self.result or {}

    def get_log(self) -> str:
        op = self.workspace._client.get(f"/api/v1/operations/{self.id}")
        return "\n".join(str(line) for _, line in op["log"])


class Environment:
    """A Python environment for models (v1 ``azureml.core.Environment``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version: int | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}
        self.inferencing_stack_version: str | None = None
        self._record: dict[str, Any] | None = None
        # the text the user gave, sent as is while python.conda_dependencies is the object made from it
        self._source: tuple[str, Any, CondaDependencies | None, str] | None = None

    def __repr__(self) -> str:
        return f"Environment(name={self.name!r}, version={self.version})"

    # -- constructors --------------------------------------------------------------------------

    @staticmethod
    def from_conda_specification(name: str, file_path: str | os.PathLike[str]) -> Environment:
        text = _read(file_path, "conda specification")
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(_underlying_structure=_load_yaml(text))
        env._remember("conda_yaml", text)
        return env

    @staticmethod
    def from_pip_requirements(
        name: str, file_path: str | os.PathLike[str], pip_version: str | None = None
    ) -> Environment:
        text = _read(file_path, "pip requirements")
        env = Environment(name)
        lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
        env.python.conda_dependencies = CondaDependencies.create(pip_packages=[ln for ln in lines if ln])
        env._remember("pip_requirements", text)
        return env

    @staticmethod
    def from_current(name: str) -> Environment:
        """An environment that runs in the control plane's own interpreter, as it is (nothing is built)."""
        env = Environment(name)
        env.python.user_managed_dependencies = True
        env._remember("inherit", True)
        return env

    @staticmethod
    def from_docker_image(*args: Any, **kwargs: Any) -> NoReturn:
        _unsupported(
            "Environment.from_docker_image", "Describe the Python packages (conda file or requirements)."
        )

    @staticmethod
    def from_dockerfile(*args: Any, **kwargs: Any) -> NoReturn:
        _unsupported(
            "Environment.from_dockerfile", "Describe the Python packages (conda file or requirements)."
        )

    def _remember(self, kind: str, value: Any) -> None:
        deps = self.python.conda_dependencies
        self._source = (kind, value, deps, deps.serialize_to_string())

    def clone(self, new_name: str) -> Environment:
        import copy

        env = copy.deepcopy(self)
        env.name, env.version, env._record = new_name, None, None
        if env._source is not None:
            env._source = (env._source[0], env._source[1], env.python.conda_dependencies, env._source[3])
        return env

    # -- what goes to the control plane ----------------------------------------------------------

    def _request(self) -> dict[str, Any]:
        if self.docker.base_image or self.docker.base_dockerfile:
            _unsupported(
                "Environment.docker.base_image/base_dockerfile",
                "Leave docker settings unset; modelhost builds Python environments with uv.",
            )
        source = self._source
        deps = self.python.conda_dependencies
        if source is not None and source[0] == "inherit":
            return {"name": self.name, "inherit": True}
        if self.python.user_managed_dependencies:
            return {"name": self.name, "inherit": True}
        unchanged = source is not None and source[2] is deps and source[3] == deps.serialize_to_string()
        if unchanged and not self.environment_variables:
            assert source is not None
            return {"name": self.name, source[0]: source[1]}
        data = _load_yaml(deps.serialize_to_string())
        if self.environment_variables:
            data["variables"] = {**(data.get("variables") or {}), **self.environment_variables}
        import yaml

        return {"name": self.name, "conda_yaml": yaml.safe_dump(data, sort_keys=False)}

    # -- workspace operations ------------------------------------------------------------------

    def register(self, workspace: Workspace) -> Environment:
        """Register this environment (a new version only when its content changed); returns it."""
        record = workspace._client.post("/api/v1/environments", self._request())
        self._apply(record)
        return self

    def build(self, workspace: Workspace, image_build_compute: str | None = None) -> EnvironmentBuild:
        """Register (if needed) and start building; returns at once with the build to wait on."""
        if image_build_compute is not None:
            _unsupported("Environment.build(image_build_compute=...)", "Builds run in the control plane.")
        self.register(workspace)
        return Environment.build_registered(workspace, self.name, self.version)

    @staticmethod
    def build_registered(workspace: Workspace, name: str, version: int | None = None) -> EnvironmentBuild:
        """Start (or join) the build of an environment already registered (the latest without ``version``)."""
        op = workspace._client.post(
            f"/api/v1/environments/{quote(name, safe='')}/build", {"version": version}
        )
        return EnvironmentBuild(workspace, op)

    @staticmethod
    def list_versions(workspace: Workspace) -> builtins.list[Environment]:
        """Every registered environment version, by name, newest version first."""
        return [Environment._from_record(r) for r in workspace._client.get("/api/v1/environments")["value"]]

    @staticmethod
    def prune(workspace: Workspace) -> builtins.list[str]:
        """Remove built environments that no ready environment of the workspace needs; returns their paths."""
        return [str(p) for p in workspace._client.post("/api/v1/environments/prune")["removed"]]

    def build_local(self, workspace: Workspace, platform: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """v1 ``build_local``: build through the control plane and print the log while waiting."""
        return self.build(workspace).wait_for_completion(show_output=True)

    def _apply(self, record: dict[str, Any]) -> None:
        self._record = record
        self.version = int(record["version"])

    @property
    def record(self) -> dict[str, Any]:
        """What the control plane last reported about this version (status, spec, path, log, times)."""
        return dict(self._record or {})

    @property
    def status(self) -> str | None:
        """``building``, ``ready`` or ``failed`` as last fetched from the control plane."""
        return None if self._record is None else str(self._record["status"])

    @property
    def spec(self) -> dict[str, Any] | None:
        """The normalised spec the control plane recorded (requirements, python, notes)."""
        return None if self._record is None else dict(self._record["spec"])

    @staticmethod
    def _from_record(record: dict[str, Any]) -> Environment:
        spec = record.get("spec") or {}
        env = Environment(str(record["name"]))
        if spec.get("inherit"):
            env.python.user_managed_dependencies = True
        else:
            env.python.conda_dependencies = CondaDependencies.create(
                pip_packages=spec.get("requirements") or [], python_version=spec.get("python") or None
            )
        env.environment_variables = dict(spec.get("env_vars") or {})
        env._apply(record)
        return env

    @staticmethod
    def get(
        workspace: Workspace, name: str, version: int | str | None = None, label: str | None = None
    ) -> Environment:
        """A registered environment (the latest version without ``version``)."""
        if label is not None:
            _unsupported("Environment.get(label=...)", "Ask for a version number instead.")
        path = f"/api/v1/environments/{quote(name, safe='')}"
        if version is not None:
            path += f"/{int(version)}"
        return Environment._from_record(workspace._client.get(path))

    @staticmethod
    def list(workspace: Workspace) -> dict[str, Environment]:
        """The latest version of every registered environment, by name (v1 returns a dict)."""
        latest: dict[str, dict[str, Any]] = {}
        for record in workspace._client.get("/api/v1/environments")["value"]:
            if record["name"] not in latest or record["version"] > latest[record["name"]]["version"]:
                latest[record["name"]] = record
        return {name: Environment._from_record(r) for name, r in sorted(latest.items())}


def _read(file_path: str | os.PathLike[str], what: str) -> str:
    path = Path(file_path).expanduser()
    if not path.is_file():
        raise ValidationError(f"{what} file {str(file_path)!r} does not exist", hint="Check the path.")
    return path.read_text(encoding="utf-8")
