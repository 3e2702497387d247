"""The Open Inference Protocol (KServe v2) REST routes, served by the same worker as /score.

``/v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}[/versions/{v}]``
(model metadata), ``.../ready`` and ``.../infer``. Readiness is the same signal as ``/``: 200 once
init() finished, 503 before. ``infer`` goes through the same slots, scoring timeout and ``run()`` as
/score; the tensor mapping is in :mod:`modelhost.scoring.oip_v2`.

The model is named after the registered model of a single-model ``AZUREML_MODEL_DIR``
(``.../azureml-models/<name>/<version>``); otherwise after ``SERVICE_NAME`` when it is set; otherwise
``model``. ``SERVICE_NAME`` is accepted as an alias in every case.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from .config import ScoringSettings
from .entry_script import InputMode, schema_parameter_types
from .invoke import RUN_FAILED, is_response, view_response
from .oip_v2 import Tensor, V2Error, decode_infer_request, encode_infer_response, result_to_tensors
from .protocol import BadInput, extract_parameters, title_case_headers
from .slots import TIMED_OUT, SlotsClosed

__all__ = ["V2Routes", "adapt_tensor", "build_v2_app", "model_identity"]

logger = logging.getLogger("azmlinfsrv")
_EMPTY = inspect.Parameter.empty
_V2_OK = "v2-ok"
_V2_ERROR = "v2-error"


def model_identity(model_dir: str, service_name: str | None) -> tuple[str, str | None, frozenset[str]]:
    """(name, version, accepted names) of the served model; see the module docstring."""
    parts = os.path.normpath(model_dir).split(os.sep) if model_dir else []
    name: str | None = None
    version: str | None = None
    if len(parts) >= 3 and parts[-3] == "azureml-models":
        name, version = parts[-2], parts[-1]
    primary = name or service_name or "model"
    accepted = {primary}
    if service_name:
        accepted.add(service_name)
    return primary, version, frozenset(accepted)


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status, media_type="application/json")


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status, media_type="application/json")


def _describe(param: str, ptype: Any) -> dict[str, Any]:
    """Metadata of one input from its inference-schema type (datatype and shape, -1 for the batch)."""
    sample: Any = getattr(ptype, "sample_input", None)
    kind = type(ptype).__name__
    if kind == "NumpyParameterType" and hasattr(sample, "dtype"):
        from .oip_v2 import NUMPY_TO_V2

        shape = [-1, *[int(d) for d in sample.shape[1:]]] if sample.ndim else [1]
        return {"name": param, "datatype": NUMPY_TO_V2.get(sample.dtype.name, "BYTES"), "shape": shape}
    if kind == "PandasParameterType" and hasattr(sample, "dtypes"):
        names = {dt.name for dt in sample.dtypes}
        from .oip_v2 import NUMPY_TO_V2

        datatype = NUMPY_TO_V2.get(names.pop(), "BYTES") if len(names) == 1 else "BYTES"
        return {"name": param, "datatype": datatype, "shape": [-1, len(sample.columns)]}
    if isinstance(sample, (list, tuple)):
        from .oip_v2 import value_to_tensor

        tensor = value_to_tensor(param, sample)
        return {"name": param, "datatype": tensor.datatype, "shape": [-1, *tensor.shape[1:]]}
    if isinstance(sample, (bool, int, float, str)):
        from .oip_v2 import value_to_tensor

        return {"name": param, "datatype": value_to_tensor(param, sample).datatype, "shape": [1]}
    return {"name": param, "datatype": "BYTES", "shape": [1]}


def adapt_tensor(tensor: Tensor, ptype: Any) -> Any:
    """The value handed to a decorated run()'s parameter for this tensor (see oip_v2's docstring)."""
    value = tensor.nested()
    if ptype is None:
        return value
    kind = type(ptype).__name__
    sample: Any = getattr(ptype, "sample_input", None)
    if (
        kind == "PandasParameterType"
        and getattr(ptype, "orient", "records") == "records"
        and len(tensor.shape) == 2
        and hasattr(sample, "columns")
        and len(sample.columns) == tensor.shape[1]
    ):
        columns = list(sample.columns)
        return [dict(zip(columns, row, strict=True)) for row in value]
    if kind == "StandardPythonParameterType":
        if isinstance(sample, dict) and tensor.datatype == "BYTES" and len(tensor.data) == 1:
            try:
                return json.loads(tensor.data[0])
            except (TypeError, ValueError):
                return tensor.data[0]
        if not isinstance(sample, (list, tuple, dict)) and len(tensor.data) == 1:
            return tensor.data[0]
    return value


class V2Routes:
    """Handlers bound to one worker's state."""

    def __init__(self, state: Any, settings: ScoringSettings) -> None:
        self.state = state
        self.settings = settings
        service = settings.service_name if settings.service_name_set else None
        self.name, self.version, self.names = model_identity(settings.model_dir, service)
        self._param_types: dict[str, Any] | None = None

    def _param_types_of_run(self) -> dict[str, Any]:
        if self._param_types is None:
            invoker = self.state.invoker
            self._param_types = schema_parameter_types(invoker.script.run) if invoker else {}
        return self._param_types

    def _check_model(self, request: Request) -> Response | None:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if name not in self.names or (version is not None and version != (self.version or "1")):
            label = name if version is None else f"{name} version {version}"
            return _error(404, f"Model {label} is not served here; this server serves {self.name!r}.")
        return None

    async def server_metadata(self, request: Request) -> Response:
        import modelhost

        return _json(
            {
                "name": "modelhost-scoring",
                "version": modelhost.__version__,
                "extensions": ["binary_tensor_data"],
            }
        )

    async def live(self, request: Request) -> Response:
        return _json({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = bool(self.state.ready)
        return _json({"ready": ready}, 200 if ready else 503)

    async def model_ready(self, request: Request) -> Response:
        problem = self._check_model(request)
        if problem is not None:
            return problem
        ready = bool(self.state.ready)
        return _json({"name": self.name, "ready": ready}, 200 if ready else 503)

    async def model_metadata(self, request: Request) -> Response:
        problem = self._check_model(request)
        if problem is not None:
            return problem
        inputs: list[dict[str, Any]] = []
        invoker = self.state.invoker
        if invoker is not None and invoker.script.mode is InputMode.OBJECT:
            types = self._param_types_of_run()
            inputs = [_describe(p.name, types.get(p.name)) for p in invoker.script.params]
        return _json(
            {
                "name": self.name,
                "versions": [self.version] if self.version else [],
                "platform": "azureml_v1_entry_script",
                "inputs": inputs,
                "outputs": [],
            }
        )

    async def infer(self, request: Request) -> Response:
        problem = self._check_model(request)
        if problem is not None:
            return problem
        state = self.state
        invoker = state.invoker
        if not state.ready or invoker is None:
            return _error(503, "The model is not ready: init() has not finished.")
        script = invoker.script
        if script.mode is InputMode.RAW:
            return _error(
                400,
                "This entry script uses @rawhttp; call it on /score, the v2 protocol needs "
                "a decorated or undecorated run().",
            )
        body = await request.body()
        length = request.headers.get("inference-header-content-length")
        try:
            infer_request, tensors = decode_infer_request(body, int(length) if length else None)
            kwargs = self._arguments(script, tensors)
        except (V2Error, BadInput, ValueError) as exc:
            return _error(400, str(exc))
        if script.wants_headers:
            kwargs["request_headers"] = title_case_headers(request.scope["headers"])
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())

        def encode(result: Any, run_ms: float) -> tuple[Any, ...]:
            return self._encode(infer_request, result, run_ms)

        try:
            if script.is_async:
                outcome = await state.slots.run_async(lambda: invoker.call_async(kwargs, request_id, encode))
            else:
                outcome = await state.slots.run(invoker.call, kwargs, request_id, encode)
        except SlotsClosed:
            return _error(503, "The scoring worker is restarting; retry shortly.")
        return self._respond(outcome)

    def _arguments(self, script: Any, tensors: list[Tensor]) -> dict[str, Any]:
        if script.mode is InputMode.OBJECT:
            types = self._param_types_of_run()
            values = {t.name: adapt_tensor(t, types.get(t.name)) for t in tensors}
            return extract_parameters(values, [(p.name, p.default) for p in script.params], _EMPTY)
        return {script.first_param: json.dumps({t.name: t.nested() for t in tensors})}

    def _encode(self, infer_request: dict[str, Any], result: Any, run_ms: float) -> tuple[Any, ...]:
        try:
            if is_response(result):
                view = view_response(result)
                raw = view.body if view.stream is None else b"".join(view.stream)
                text = (raw or b"").decode("utf-8", "replace")
                if view.status >= 400:
                    return (_V2_ERROR, view.status, text)
                try:
                    result = json.loads(text)
                except ValueError:
                    result = text
            tensors = result_to_tensors(result)
            body, header_length = encode_infer_response(self.name, self.version, infer_request, tensors)
        except V2Error as exc:
            return (_V2_ERROR, 400, str(exc))
        except Exception as exc:
            logger.error(f"Encountered Exception while encoding v2 outputs: {exc!r}")
            return (_V2_ERROR, 500, f"run()'s result cannot be encoded as v2 tensors: {exc}")
        return (_V2_OK, body, header_length, run_ms)

    def _respond(self, outcome: Any) -> Response:
        if outcome is TIMED_OUT:
            return _error(500, f"Scoring timeout after {self.settings.scoring_timeout_ms} ms")
        kind = outcome[0]
        if kind == _V2_OK:
            headers = {"x-ms-run-fn-exec-ms": f"{outcome[3]:.3f}"}
            if outcome[2] is None:
                return Response(outcome[1], 200, headers=headers, media_type="application/json")
            headers["inference-header-content-length"] = str(outcome[2])
            return Response(outcome[1], 200, headers=headers, media_type="application/octet-stream")
        if kind == _V2_ERROR:
            return _error(outcome[1], outcome[2])
        if kind == RUN_FAILED:
            logger.error(f"Encountered Exception: {outcome[1]}")
            return _error(
                500, "An unexpected error occurred in scoring script. Check the logs for more info."
            )
        return _error(500, "An unexpected internal error occurred. Check the logs for more info.")


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    await _error(404, "Not found: see the Open Inference Protocol's REST paths under /v2.")(
        scope, receive, send
    )


def build_v2_app(state: Any, settings: ScoringSettings) -> Router:
    """The Router for ``/v2...``, bound to a worker's state."""
    routes = V2Routes(state, settings)
    model = "/v2/models/{name}"
    version = "/v2/models/{name}/versions/{version}"
    return Router(
        routes=[
            Route("/v2", routes.server_metadata, methods=["GET"]),
            Route("/v2/health/live", routes.live, methods=["GET"]),
            Route("/v2/health/ready", routes.ready, methods=["GET"]),
            Route(model, routes.model_metadata, methods=["GET"]),
            Route(version, routes.model_metadata, methods=["GET"]),
            Route(model + "/ready", routes.model_ready, methods=["GET"]),
            Route(version + "/ready", routes.model_ready, methods=["GET"]),
            Route(model + "/infer", routes.infer, methods=["POST"]),
            Route(version + "/infer", routes.infer, methods=["POST"]),
        ],
        default=_not_found,
    )
