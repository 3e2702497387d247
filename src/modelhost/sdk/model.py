"""``Model``: v1's registered model (``azureml.core.Model``) over the control plane's model API.

Registration hashes every file here, uploads only the blobs the control plane lacks, then posts the
manifest; the control plane validates and records it. v1 calls modelhost does not offer raise a
``ValidationError`` naming the call, never a silent no-op.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

from modelhost.errors import ModelNotFoundError, ValidationError
from modelhost.sdk._files import Progress, download_model, scan_model, upload_files
from modelhost.sdk.inference import InferenceConfig
from modelhost.sdk.workspace import Workspace
from modelhost.spec.names import parse_model_id, validate_model_name

if TYPE_CHECKING:
    from modelhost.sdk.webservice import Webservice

__all__ = ["InferenceConfig", "Model"]

TagFilter = Iterable[str | tuple[str, str] | list[str]] | Mapping[str, str] | None


def _unsupported(call: str, hint: str = "modelhost does not offer it; see docs/cli.md.") -> NoReturn:
    raise ValidationError(f"{call} is not supported by modelhost", hint=hint)


def _filters(value: TagFilter, what: str) -> list[str]:
    """v1 tag/property filters (``['k', ['k2', 'v2']]`` or ``{'k': 'v'}``) -> ``['k', 'k2=v2']``."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list | tuple) and len(item) == 2:
            out.append(f"{item[0]}={item[1]}")
        else:
            raise ValidationError(f"Invalid {what} filter {item!r}: use 'key' or ['key', 'value']")
    return out


class Model:
    """A registered model version (v1 ``Model``)."""

    class Framework:
        CUSTOM = "Custom"
        TENSORFLOW = "TensorFlow"
        SCIKITLEARN = "ScikitLearn"
        ONNX = "Onnx"
        TFKERAS = "TfKeras"
        PYTORCH = "PyTorch"
        MULTI = "Multi"

    def __init__(
        self,
        workspace: Workspace,
        name: str | None = None,
        id: str | None = None,
        tags: TagFilter = None,
        properties: TagFilter = None,
        version: int | None = None,
        run_id: str | None = None,
        model_framework: str | None = None,
        expand: bool = True,
        *,
        _payload: Mapping[str, Any] | None = None,
    ) -> None:
        self.workspace = workspace
        if _payload is None:
            if run_id is not None:
                _unsupported("Model(run_id=...)", "modelhost has no runs; look models up by name or id.")
            _payload = self._find(workspace, name, id, version, tags, properties, model_framework)
        self._load(_payload)

    @staticmethod
    def _find(
        ws: Workspace,
        name: str | None,
        model_id: str | None,
        version: int | None,
        tags: TagFilter,
        properties: TagFilter,
        framework: str | None,
    ) -> dict[str, Any]:
        if model_id is not None:
            name, version = parse_model_id(model_id)
        if name is not None and version is not None:
            validate_model_name(name)
            return dict(ws._client.get(f"/api/v1/models/{quote(name, safe='')}/{int(version)}"))
        if name is None and tags is None and properties is None:
            raise ValidationError("Model(...) needs a name, an id, tags or properties to look up")
        if name is not None and tags is None and properties is None and framework is None:
            validate_model_name(name)
            return dict(ws._client.get(f"/api/v1/models/{quote(name, safe='')}"))
        found = Model._query(ws, name, tags, properties, False, framework)
        if not found:
            what = f"name {name}" if name else "the given tags/properties"
            raise ModelNotFoundError(f"ModelNotFound: Model with {what} not found in provided workspace")
        return max(found, key=lambda m: (m["created_time"] or "", m["version"]))

    def _load(self, payload: Mapping[str, Any]) -> None:
        self._payload = dict(payload)
        self.name: str = payload["name"]
        self.version: int = int(payload["version"])
        self.id: str = payload["id"]
        self.tags: dict[str, str] = dict(payload.get("tags") or {})
        self.properties: dict[str, str] = dict(payload.get("properties") or {})
        self.description: str | None = payload.get("description")
        self.model_framework: str | None = payload.get("framework")
        self.model_framework_version: str | None = payload.get("framework_version")
        raw_time = payload.get("created_time")
        self.created_time: datetime | None = datetime.fromisoformat(raw_time) if raw_time else None
        self.basename: str = payload["basename"]
        self.is_dir: bool = bool(payload["is_dir"])
        self.size: int = int(payload.get("size") or 0)
        self.url: str = f"{self.workspace.url}/api/v1/models/{quote(self.name, safe='')}/{self.version}"

    @property
    def files(self) -> list[dict[str, Any]]:
        """The model's files: ``path`` (with the basename), ``sha256``, ``size``, ``executable``."""
        return [dict(f) for f in self._payload["files"]]

    def serialize(self) -> dict[str, Any]:
        return dict(self._payload)

    def __repr__(self) -> str:
        return (
            f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, version={self.version}, "
            f"tags={self.tags}, properties={self.properties})"
        )

    # -- registration and queries -----------------------------------------------------------------

    @staticmethod
    def register(
        workspace: Workspace,
        model_path: str | os.PathLike[str],
        model_name: str,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        datasets: Any = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        child_paths: Iterable[str] | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
        *,
        progress: Progress | None = None,
        show_output: bool = True,
    ) -> Model:
        """Register the file or folder at ``model_path`` as a new version of ``model_name``.

        Checks v1's rules before uploading anything: the name, framework version only with a
        framework, the path exists. ``progress(done, total)`` reports upload bytes.
        """
        for arg, value in (
            ("datasets", datasets),
            ("sample_input_dataset", sample_input_dataset),
            ("sample_output_dataset", sample_output_dataset),
            ("resource_configuration", resource_configuration),
        ):
            if value is not None:
                _unsupported(
                    f"Model.register({arg}=...)",
                    "Leave it out: modelhost has no datasets or resource configurations.",
                )
        validate_model_name(model_name)
        if model_framework_version and not model_framework:
            raise ValidationError(
                "model_framework_version is set but model_framework is not",
                hint="Pass model_framework as well (e.g. Model.Framework.SCIKITLEARN).",
            )
        basename, is_dir, files = scan_model(model_path, child_paths)
        if show_output:
            print(f"Registering model {model_name}")
        upload_files(workspace._client, files, progress)
        manifest = {
            "name": model_name,
            "basename": basename,
            "is_dir": is_dir,
            "files": [f.manifest() for f in files],
            "tags": dict(tags or {}),
            "properties": dict(properties or {}),
            "description": description,
            "framework": model_framework,
            "framework_version": model_framework_version,
        }
        return Model(workspace, _payload=workspace._client.post("/api/v1/models", manifest))

    @staticmethod
    def _query(
        ws: Workspace,
        name: str | None,
        tags: TagFilter,
        properties: TagFilter,
        latest: bool,
        framework: str | None,
    ) -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = [("tag", t) for t in _filters(tags, "tag")]
        params += [("property", p) for p in _filters(properties, "property")]
        if name is not None:
            params.append(("name", name))
        if latest:
            params.append(("latest", "true"))
        if framework is not None:
            params.append(("framework", framework))
        return list(ws._client.get("/api/v1/models", params=params)["value"])

    @staticmethod
    def list(
        workspace: Workspace,
        name: str | None = None,
        tags: TagFilter = None,
        properties: TagFilter = None,
        run_id: str | None = None,
        latest: bool = False,
        dataset_id: str | None = None,
        expand: bool = True,
        page_count: int = 255,
        model_framework: str | None = None,
    ) -> builtins.list[Model]:
        """Registered model versions, filtered as v1 does (tags, properties: ``'k'`` or ``['k', 'v']``)."""
        if run_id is not None or dataset_id is not None:
            _unsupported("Model.list(run_id=/dataset_id=...)", "modelhost has no runs or datasets.")
        return [
            Model(workspace, _payload=p)
            for p in Model._query(workspace, name, tags, properties, latest, model_framework)
        ]

    # -- instance operations -------------------------------------------------------------------

    def download(
        self,
        target_dir: str | os.PathLike[str] = ".",
        exist_ok: bool = False,
        exists_ok: bool | None = None,
        *,
        progress: Progress | None = None,
    ) -> str:
        """Rebuild the model's file or folder under ``target_dir``; returns its path (v1)."""
        ok = exist_ok if exists_ok is None else exists_ok
        return str(download_model(self.workspace._client, self._payload, target_dir, ok, progress))

    def delete(self) -> None:
        """Delete this version (refused with ``ConflictError`` while a service uses it)."""
        self.workspace._client.delete(f"/api/v1/models/{quote(self.name, safe='')}/{self.version}")

    def _patch(self, body: dict[str, Any]) -> None:
        self._load(
            self.workspace._client.patch(f"/api/v1/models/{quote(self.name, safe='')}/{self.version}", body)
        )

    def add_tags(self, tags: Mapping[str, str]) -> None:
        self._patch({"add_tags": dict(tags)})

    def remove_tags(self, tags: Iterable[str]) -> None:
        self._patch({"remove_tags": list(tags)})

    def add_properties(self, properties: Mapping[str, str]) -> None:
        self._patch({"add_properties": dict(properties)})

    def update(
        self,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
    ) -> None:
        """v1 ``update``: replaces tags (description updates are not supported)."""
        if (
            description is not None
            or sample_input_dataset is not None
            or sample_output_dataset is not None
            or resource_configuration is not None
        ):
            _unsupported(
                "Model.update(description/datasets/resource_configuration=...)",
                "Register a new version with the new description instead.",
            )
        if tags is not None:
            self._patch({"remove_tags": [k for k in self.tags if k not in tags], "add_tags": dict(tags)})

    @staticmethod
    def get_model_path(
        model_name: str, version: int | None = None, _workspace: Workspace | None = None
    ) -> str:
        """Inside a deployed replica (score.py) the model's local path; elsewhere a clear error."""
        if os.environ.get("AZUREML_MODEL_DIR"):
            from modelhost.scoring.model_path import get_model_path, models_dir

            return get_model_path(model_name, version, root=models_dir(os.environ.get("AML_APP_ROOT")))
        raise ValidationError(
            "Model.get_model_path works inside a deployed service's entry script only",
            hint="In a notebook, use Model(ws, name).download(target_dir) to get the files.",
        )

    # -- v1 calls modelhost does not offer ------------------------------------------------------

    @staticmethod
    def deploy(
        workspace: Workspace,
        name: str,
        models: Any,
        inference_config: InferenceConfig | None = None,
        deployment_config: object = None,
        deployment_target: object = None,
        overwrite: bool = False,
        show_output: bool = False,
    ) -> Webservice:
        """Deploy ``models`` as service ``name`` (v1); returns the ``Webservice`` before the
        deployment finishes: call ``wait_for_deployment(show_output=True)`` on it."""
        from modelhost.sdk.deploy import deploy

        return deploy(
            workspace,
            name,
            models,
            inference_config,
            deployment_config,
            deployment_target,
            overwrite,
            show_output,
        )

    @staticmethod
    def package(*args: Any, **kwargs: Any) -> NoReturn:
        _unsupported("Model.package", "modelhost serves models itself; it builds no Docker images.")

    @staticmethod
    def profile(*args: Any, **kwargs: Any) -> NoReturn:
        _unsupported("Model.profile", "Measure a deployed service with a load generator instead.")

    def add_dataset_references(self, *args: Any, **kwargs: Any) -> NoReturn:
        _unsupported("Model.add_dataset_references", "modelhost has no datasets.")
