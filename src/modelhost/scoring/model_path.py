"""``Model.get_model_path`` as azureml-core does it inside a scoring container (no Run context).

Lookup under ``models_dir`` (v1: ``$AML_APP_ROOT/azureml-models``, relative to the working directory
when ``AML_APP_ROOT`` is unset):

1. if ``<models_dir>/<name>`` exists, take ``<version>`` (or the highest integer version); that folder
   must hold exactly one entry, whose path is returned (the registered file, or folder);
2. otherwise, if ``<name>`` exists relative to the working directory, return ``<name>``;
3. otherwise raise :class:`ModelNotFoundException`.

A non-int ``version`` raises ``WebserviceException("version should be an int")``. The exception classes
are those of the ``azureml.exceptions`` shim, so scripts catching them keep working.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "AzureMLException",
    "ModelNotFoundException",
    "WebserviceException",
    "get_model_path",
    "models_dir",
]


class AzureMLException(Exception):
    """azureml-core's base exception (``message`` attribute included)."""

    def __init__(self, exception_message: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(exception_message, *args)
        self.message = exception_message


class WebserviceException(AzureMLException):
    def __init__(
        self,
        exception_message: str = "",
        status_code: int | None = None,
        logger: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(exception_message, *args)
        self.status_code = status_code


class ModelNotFoundException(AzureMLException):
    def __init__(self, exception_message: str = "", logger: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(exception_message, *args)


def models_dir(app_root: str | None) -> str:
    """v1's ``MODELS_DIR``: ``os.path.join(os.environ.get('AML_APP_ROOT', ''), 'azureml-models')``."""
    return os.path.join(app_root or "", "azureml-models")


def _latest_version(entries: list[str]) -> int:
    if not entries:
        raise WebserviceException("versions is empty")
    return max(int(v) for v in entries)


def get_model_path(model_name: str, version: int | None = None, *, root: str) -> str:
    """Resolve a registered model's local path under ``root`` (the models dir); see the module docstring."""
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise WebserviceException("version should be an int")
    if model_name is None:
        raise WebserviceException("model_name is None")
    candidate = os.path.join(root, model_name)
    if not os.path.exists(candidate):
        return _from_cwd(model_name, root)
    chosen = _latest_version(os.listdir(candidate)) if version is None else version
    candidate = os.path.join(candidate, str(chosen))
    if not os.path.exists(candidate):
        return _from_cwd(model_name, root)
    entries = os.listdir(candidate)
    if len(entries) != 1:
        raise WebserviceException(f"Dir {candidate} can contain only 1 file or folder. Found {entries}")
    return os.path.join(candidate, entries[0])


def _from_cwd(model_name: str, root: str) -> str:
    if os.path.exists(model_name):
        return model_name
    raise ModelNotFoundException(
        f"Model {model_name} not found in cache at {root} or in current working directory {os.getcwd()}. "
        "For more info, set logging level to DEBUG."
    )
