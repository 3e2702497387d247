"""Import shims for the ``azureml.*`` modules v1 entry scripts import, used only when the real ones are
absent.

:func:`install_shims` appends a meta-path finder to the **end** of ``sys.meta_path``: Python asks it only
after every real finder failed to find a module, so an installed package (``azureml-core``,
``azureml-monitoring``, ...) always wins and is never shadowed. The shim sources live in ``_shims/``
with the real package layout. Two kinds of names are served:

* shim modules (``azureml.core.model``, ``azureml.monitoring``, ``azureml.automl.core.shared.log_server``,
  ``azureml.telemetry``, ...), loaded from ``_shims/`` under their ``azureml`` names;
* aliases: ``azureml.contrib.services.aml_request|aml_response`` and
  ``azureml_inference_server_http.api.aml_request|aml_response`` are the server's own
  :mod:`modelhost.scoring.aml_request` / :mod:`modelhost.scoring.aml_response` (as v1 aliases them in
  ``sys.modules``), and ``sklearn.externals.joblib[.*]`` is ``joblib[.*]`` when scikit-learn is installed
  without it (it was removed in 0.23; 26 of 85 public v1 scripts still import it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["SHIM_ALIASES", "ShimFinder", "install_shims", "shim_names"]

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_shims")

SHIM_ALIASES = {
    "azureml.contrib.services.aml_request": "modelhost.scoring.aml_request",
    "azureml.contrib.services.aml_response": "modelhost.scoring.aml_response",
    "azureml_inference_server_http.api.aml_request": "modelhost.scoring.aml_request",
    "azureml_inference_server_http.api.aml_response": "modelhost.scoring.aml_response",
}
_PREFIX_ALIASES = {"sklearn.externals.joblib": "joblib"}


def _shim_file(fullname: str) -> tuple[str, bool] | None:
    base = os.path.join(_ROOT, *fullname.split("."))
    package = os.path.join(base, "__init__.py")
    if os.path.isfile(package):
        return package, True
    if os.path.isfile(base + ".py"):
        return base + ".py", False
    return None


def shim_names() -> list[str]:
    """Every module name the shims can provide (for docs and tests)."""
    names: list[str] = []
    for folder, _dirs, files in os.walk(_ROOT):
        rel = os.path.relpath(folder, _ROOT)
        parts = [] if rel == "." else rel.split(os.sep)
        for name in files:
            if name == "__init__.py" and parts:
                names.append(".".join(parts))
            elif name.endswith(".py") and name != "__init__.py":
                names.append(".".join([*parts, name[:-3]]))
    return sorted(names + list(SHIM_ALIASES))


class _AliasLoader(importlib.abc.Loader):
    """Makes ``fullname`` the very module object of ``target`` (imported on demand)."""

    def __init__(self, target: str) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self._target)

    def exec_module(self, module: ModuleType) -> None:
        return None


class ShimFinder(importlib.abc.MetaPathFinder):
    """The fallback finder; see the module docstring."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        alias = SHIM_ALIASES.get(fullname)
        if alias is not None:
            return importlib.util.spec_from_loader(fullname, _AliasLoader(alias))
        for prefix, real in _PREFIX_ALIASES.items():
            if fullname == prefix or fullname.startswith(prefix + "."):
                real_name = real + fullname[len(prefix) :]
                if importlib.util.find_spec(real.split(".")[0]) is None:
                    return None
                return importlib.util.spec_from_loader(fullname, _AliasLoader(real_name))
        found = _shim_file(fullname)
        if found is None:
            return None
        filename, is_package = found
        return importlib.util.spec_from_file_location(
            fullname, filename, submodule_search_locations=[] if is_package else None
        )


class _AliasChildFinder(importlib.abc.MetaPathFinder):
    """Submodules of an active prefix alias (``sklearn.externals.joblib.numpy_pickle``) are the real ones.

    Without it Python would load ``joblib``'s files a second time under the alias's name (the alias
    module carries joblib's ``__path__``), giving two copies of every class. It sits first on
    ``sys.meta_path`` but only answers while the alias module is the real module, which happens only
    when the package had no such submodule of its own.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        for prefix, real in _PREFIX_ALIASES.items():
            if (
                fullname.startswith(prefix + ".")
                and prefix in sys.modules
                and sys.modules[prefix] is sys.modules.get(real)
            ):
                return importlib.util.spec_from_loader(fullname, _AliasLoader(real + fullname[len(prefix) :]))
        return None


_installed: ShimFinder | None = None


def install_shims() -> ShimFinder:
    """Append the fallback finder to ``sys.meta_path`` once (the alias-children finder goes first)."""
    global _installed
    if _installed is None:
        _installed = ShimFinder()
        sys.meta_path.append(_installed)
        sys.meta_path.insert(0, _AliasChildFinder())
    return _installed
