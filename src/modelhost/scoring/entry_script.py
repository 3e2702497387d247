"""Load a v1 entry script and decide, once, how each request is handed to its ``run()``.

The rules are azureml-inference-server-http 1.5.1's (``user_script.py``):

* the script must define ``init()`` and ``run(...)``; a ``driver_module`` attribute holding a module with
  ``run`` (the SDK's generated wrapper) means that module's ``run`` is called, with the wrapper's ``init``;
* ``run`` may not take positional-only parameters, ``*args`` or ``**kwargs`` and needs one parameter
  besides ``request_headers``; a parameter named ``request_headers`` receives the request's headers;
* the input mode is ``RAW`` when ``@rawhttp`` was applied, ``OBJECT`` when inference-schema decorated
  ``run``, else ``JSON_STRING``; both decorators together is an error.

Differences from v1, on purpose: the module is registered in ``sys.modules`` as ``entry_module`` (so
dataclasses and pickles defined in score.py work), and ``async def run`` is supported.
"""

from __future__ import annotations

import enum
import importlib.util
import inspect
import logging
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EntryScript",
    "EntryScriptLoadError",
    "InputMode",
    "RunParam",
    "analyze",
    "load_entry_script",
    "schema_parameter_types",
]

logger = logging.getLogger("azmlinfsrv.user_script")
_EMPTY = inspect.Parameter.empty
_RAW_FLAG_MODULES = (
    "modelhost.scoring.aml_request",
    "azureml_inference_server_http.api.aml_request",
    "azureml.contrib.services.aml_request",
)


class EntryScriptLoadError(Exception):
    """The entry script cannot be served; the message says why (v1 exits with status 3)."""


class InputMode(enum.Enum):
    RAW = "raw"
    OBJECT = "object"
    JSON_STRING = "json_string"


@dataclass(frozen=True)
class RunParam:
    name: str
    default: Any = _EMPTY

    @property
    def required(self) -> bool:
        return self.default is _EMPTY


@dataclass(frozen=True)
class EntryScript:
    """A loaded script with everything the hot path needs precomputed."""

    path: str
    module: types.ModuleType
    init: Callable[[], Any]
    run: Callable[..., Any]
    mode: InputMode
    params: tuple[RunParam, ...]
    wants_headers: bool
    is_async: bool

    @property
    def first_param(self) -> str:
        return self.params[0].name


def _raw_requested() -> bool:
    return any(getattr(sys.modules.get(name), "_rawHttpRequested", False) for name in _RAW_FLAG_MODULES)


def _is_schema_decorated(run: Callable[..., Any]) -> bool:
    from inference_schema.schema_util import is_schema_decorated

    return bool(is_schema_decorated(run))


def _unwrap(run: Callable[..., Any]) -> Callable[..., Any]:
    """The user's own function under decorators (inference-schema's wrapt wrappers set ``__wrapped__``)."""
    try:
        original: Callable[..., Any] = inspect.unwrap(run)
        return original
    except ValueError:
        return run


def schema_parameter_types(run: Callable[..., Any]) -> dict[str, Any]:
    """``{parameter name: inference-schema parameter type}`` from run()'s ``@input_schema`` decorators."""
    found: dict[str, Any] = {}
    fn: Any = run
    for _ in range(64):
        wrapper = getattr(fn, "_self_wrapper", None)
        if wrapper is None:
            break
        code = getattr(wrapper, "__code__", None)
        closure = getattr(wrapper, "__closure__", None)
        if (
            code is not None
            and closure
            and "param_type" in code.co_freevars
            and "param_name" in code.co_freevars
        ):
            cells = dict(zip(code.co_freevars, closure, strict=True))
            found.setdefault(cells["param_name"].cell_contents, cells["param_type"].cell_contents)
        fn = getattr(fn, "__wrapped__", None)
    return found


def analyze(
    run: Callable[..., Any], *, raw_requested: bool, schema_decorated: bool
) -> tuple[InputMode, tuple[RunParam, ...], bool]:
    """Check ``run``'s signature and pick the input mode. Raises :class:`EntryScriptLoadError`."""
    params = list(inspect.signature(run).parameters.values())
    if any(p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
        raise EntryScriptLoadError("run() cannot accept positional-only arguments, *args, or **kwargs.")
    wants_headers = any(p.name == "request_headers" for p in params)
    data_params = tuple(RunParam(p.name, p.default) for p in params if p.name != "request_headers")
    if not data_params:
        if wants_headers:
            raise EntryScriptLoadError('run() needs to accept an argument other than "request_headers".')
        raise EntryScriptLoadError("run() needs to accept an argument for input data.")
    if raw_requested and schema_decorated:
        raise EntryScriptLoadError("run() cannot be decorated with both @rawhttp and @input_schema")
    if raw_requested:
        mode = InputMode.RAW
    elif schema_decorated:
        mode = InputMode.OBJECT
    else:
        mode = InputMode.JSON_STRING
    return mode, data_params, wants_headers


def _import(path: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("entry_module", path)
    if spec is None or spec.loader is None:
        raise EntryScriptLoadError(f"Cannot load the entry script at {path}: not a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules["entry_module"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("entry_module", None)
        raise
    return module


def load_entry_script(path: str | None) -> EntryScript:
    """Import the script (``import main`` when no path is set, as v1) and analyze its ``run``.

    Exceptions raised by the script's own import propagate unchanged; problems with its shape raise
    :class:`EntryScriptLoadError`.
    """
    # v1: no entry script means `import main`
    module: types.ModuleType = _import(path) if path else importlib.import_module("main")
    where = getattr(module, "__file__", path)
    if not hasattr(module, "init"):
        raise EntryScriptLoadError(f"User script at {where} does not have a init() function defined.")
    if not hasattr(module, "run"):
        raise EntryScriptLoadError(f"User script at {where} does not have a run() function defined.")
    driver = getattr(module, "driver_module", None)
    if isinstance(driver, types.ModuleType) and hasattr(driver, "run"):
        run = driver.run
        logger.info(f"Found driver script at {where} and the score script at {driver.__file__}")
    else:
        run = module.run
        logger.info(f"Found user script at {where}")
    schema = _is_schema_decorated(run)
    mode, params, wants_headers = analyze(run, raw_requested=_raw_requested(), schema_decorated=schema)
    if mode is InputMode.RAW:
        logger.info("run() is decorated with @rawhttp. Server will invoke it with the flask request object.")
    elif mode is InputMode.OBJECT:
        logger.info(
            "run() is decorated with @input_schema. Server will invoke it with the following arguments: "
            f"{', '.join(p.name for p in params)}."
        )
    else:
        logger.info("run() is not decorated. Server will invoke it with the input in JSON string.")
    is_async = inspect.iscoroutinefunction(_unwrap(run)) or inspect.iscoroutinefunction(run)
    return EntryScript(
        path=str(where),
        module=module,
        init=module.init,
        run=run,
        mode=mode,
        params=params,
        wants_headers=wants_headers,
        is_async=is_async,
    )
