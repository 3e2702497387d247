"""Open Inference Protocol (KServe v2) codec: tensors in and out, JSON and the binary-data extension. Pure.

Requests and responses are a JSON header, optionally followed by raw tensor bytes (Triton's binary
data extension, what ``tritonclient.http`` sends by default); ``Inference-Header-Content-Length`` gives
the JSON part's size. Tensor data here is a flat, row-major Python list; numpy is never imported by this
module (results that *are* numpy arrays are read through their own ``dtype``/``tolist``).

Mapping to v1 entry scripts (also in docs/scoring.md):

* inputs → ``run()``: each input tensor, reshaped to a nested list, is the value of the ``run()``
  parameter of the same name (a schema-decorated run converts it with its inference-schema type; a
  2-D tensor for a ``PandasParameterType`` becomes records with the sample's column names; a one-element
  tensor for a scalar ``StandardPythonParameterType`` becomes that scalar); an undecorated run receives
  ``json.dumps({name: nested list, ...})``;
* ``run()``'s result → outputs: a dict gives one output per key; a pandas DataFrame one per column;
  anything else one output named ``output-0``. numpy arrays keep their dtype (``float32`` → FP32, ...);
  Python lists get BOOL, INT64, FP64 or BYTES from their elements; a ``str`` that holds JSON (scripts that
  ``return json.dumps(...)``) is decoded first; values that are not rectangular become a BYTES tensor of
  shape ``[1]`` holding their JSON text.
"""

from __future__ import annotations

import array
import json
import math
import struct
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NUMPY_TO_V2",
    "Tensor",
    "V2Error",
    "decode_infer_request",
    "encode_infer_response",
    "flatten",
    "reshape",
    "result_to_tensors",
    "value_to_tensor",
]

NUMPY_TO_V2 = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "object": "BYTES",
    "bytes": "BYTES",
    "str": "BYTES",
}
# array/struct type codes of fixed-size datatypes (little-endian on the wire).
_CODES = {
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "FP32": "f",
    "FP64": "d",
}
_SIZES = {"BOOL": 1, "FP16": 2, **{k: struct.calcsize(c) for k, c in _CODES.items()}}
_LITTLE = sys.byteorder == "little"


class V2Error(ValueError):
    """A malformed inference request; answered with 400 ``{"error": message}``."""


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]
    parameters: dict[str, Any] = field(default_factory=dict)

    def nested(self) -> Any:
        return reshape(self.data, self.shape)


# --- shapes -------------------------------------------------------------------------------------
def flatten(value: Any) -> tuple[list[Any], list[int]]:
    """Row-major flat data and shape of a nested list; raises V2Error when it is not rectangular."""
    if not isinstance(value, (list, tuple)):
        return [value], []
    if not value:
        return [], [0]
    parts = [flatten(v) for v in value]
    inner = parts[0][1]
    if any(p[1] != inner for p in parts):
        raise V2Error("the nested list is not rectangular")
    return [x for p in parts for x in p[0]], [len(value), *inner]


def reshape(flat: Sequence[Any], shape: Sequence[int]) -> Any:
    """A nested list of ``shape`` from row-major ``flat`` data (a scalar for shape ``[]``)."""
    size = math.prod(shape) if shape else 1
    if size != len(flat):
        raise V2Error(f"shape {list(shape)} needs {size} elements, got {len(flat)}")
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = size // shape[0] if shape[0] else 0
    return [reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


# --- binary data ----------------------------------------------------------------------------------
def _from_bytes(datatype: str, raw: bytes) -> list[Any]:
    if datatype == "BYTES":
        out: list[Any] = []
        offset = 0
        while offset < len(raw):
            (length,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            chunk = raw[offset : offset + length]
            offset += length
            try:
                out.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(chunk)
        return out
    if datatype == "BOOL":
        return [b != 0 for b in raw]
    if datatype == "FP16":
        return list(struct.unpack(f"<{len(raw) // 2}e", raw))
    code = _CODES.get(datatype)
    if code is None:
        raise V2Error(f"unsupported datatype {datatype}")
    values = array.array(code)
    values.frombytes(raw)
    if not _LITTLE:
        values.byteswap()
    return values.tolist()


def _to_bytes(datatype: str, data: Sequence[Any]) -> bytes:
    if datatype == "BYTES":
        parts = []
        for item in data:
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    if datatype == "BOOL":
        return bytes(1 if x else 0 for x in data)
    if datatype == "FP16":
        return struct.pack(f"<{len(data)}e", *data)
    values = array.array(_CODES[datatype], data)
    if not _LITTLE:
        values.byteswap()
    return values.tobytes()


# --- requests -------------------------------------------------------------------------------------
def decode_infer_request(body: bytes, header_length: int | None) -> tuple[dict[str, Any], list[Tensor]]:
    """The request's JSON object and its input tensors (binary parts resolved)."""
    head, blob = (body, b"") if header_length is None else (body[:header_length], body[header_length:])
    try:
        request = json.loads(head)
    except ValueError as exc:
        raise V2Error(f"the request is not valid JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise V2Error("the request must be a JSON object with an 'inputs' list")
    tensors: list[Tensor] = []
    offset = 0
    for item in request["inputs"]:
        if not isinstance(item, dict) or not all(k in item for k in ("name", "shape", "datatype")):
            raise V2Error("each input needs 'name', 'shape' and 'datatype'")
        params = item.get("parameters") or {}
        size = params.get("binary_data_size")
        if size is not None:
            raw = blob[offset : offset + int(size)]
            offset += int(size)
            data = _from_bytes(item["datatype"], raw)
        elif "data" in item:
            data, _ = flatten(item["data"])
        else:
            raise V2Error(f"input {item['name']!r} has neither 'data' nor binary data")
        shape = [int(d) for d in item["shape"]]
        if math.prod(shape) != len(data):
            raise V2Error(f"input {item['name']!r}: shape {shape} does not match {len(data)} elements")
        tensors.append(Tensor(str(item["name"]), str(item["datatype"]), shape, data, dict(params)))
    return request, tensors


# --- results --------------------------------------------------------------------------------------
def _python_datatype(flat: Iterable[Any]) -> str | None:
    kinds = {type(x) for x in flat}
    if not kinds:
        return "FP64"
    if kinds == {bool}:
        return "BOOL"
    if kinds <= {int}:
        return "INT64"
    if kinds <= {int, float}:
        return "FP64"
    if kinds <= {str, bytes}:
        return "BYTES"
    return None


def _json_tensor(name: str, value: Any) -> Tensor:
    return Tensor(name, "BYTES", [1], [json.dumps(value, default=str)])


def value_to_tensor(name: str, value: Any) -> Tensor:
    """One output tensor for a value returned by run() (see the module docstring)."""
    module = type(value).__module__.split(".")[0]
    if module in ("numpy", "pandas") and hasattr(value, "dtype"):
        dtype = getattr(value, "dtype", None)
        values = value.to_numpy() if hasattr(value, "to_numpy") else value
        datatype = NUMPY_TO_V2.get(getattr(dtype, "name", ""), "BYTES")
        if getattr(dtype, "kind", "") in ("U", "S", "O"):
            datatype = "BYTES"
        shape = [int(d) for d in getattr(values, "shape", ())] or [1]
        flat = values.reshape(-1).tolist() if hasattr(values, "reshape") else [values.item()]
        if datatype == "BYTES":
            flat = [x if isinstance(x, (str, bytes)) else str(x) for x in flat]
        return Tensor(name, datatype, shape, flat)
    if isinstance(value, (bool, int, float, str, bytes)):
        return Tensor(name, _python_datatype([value]) or "BYTES", [1], [value])
    if isinstance(value, (list, tuple)):
        try:
            flat, shape = flatten(value)
        except V2Error:
            return _json_tensor(name, value)
        list_type = _python_datatype(flat)
        if list_type is None:
            return _json_tensor(name, value)
        return Tensor(name, list_type, shape, flat)
    return _json_tensor(name, value)


def result_to_tensors(result: Any, default_name: str = "output-0") -> list[Tensor]:
    """Output tensors for run()'s result."""
    if isinstance(result, str):
        try:
            decoded = json.loads(result)
        except ValueError:
            return [Tensor(default_name, "BYTES", [1], [result])]
        if isinstance(decoded, (dict, list)):
            result = decoded
    if isinstance(result, Mapping):
        return [value_to_tensor(str(k), v) for k, v in result.items()]
    if type(result).__module__.split(".")[0] == "pandas" and hasattr(result, "columns"):
        return [value_to_tensor(str(c), result[c]) for c in result.columns]
    return [value_to_tensor(default_name, result)]


def encode_infer_response(
    model_name: str, model_version: str | None, request: Mapping[str, Any], tensors: list[Tensor]
) -> tuple[bytes, int | None]:
    """The response body and, when binary data is used, the JSON header's length.

    Outputs are filtered to the request's ``outputs`` when it names any; an output is binary when the
    request asks for ``binary_data_output`` or the output's own ``parameters.binary_data``.
    """
    wanted = request.get("outputs") or []
    params = request.get("parameters") or {}
    binary_default = bool(params.get("binary_data_output", False))
    binary_by_name = {
        str(o.get("name")): bool((o.get("parameters") or {}).get("binary_data", binary_default))
        for o in wanted
        if isinstance(o, Mapping)
    }
    if binary_by_name:
        missing = [n for n in binary_by_name if n not in {t.name for t in tensors}]
        if missing:
            raise V2Error(f"unknown output(s) requested: {', '.join(missing)}")
        tensors = [t for t in tensors if t.name in binary_by_name]
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor in tensors:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if binary_by_name.get(tensor.name, binary_default):
            raw = _to_bytes(tensor.datatype, tensor.data)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in tensor.data]
        outputs.append(entry)
    head: dict[str, Any] = {"model_name": model_name}
    if model_version:
        head["model_version"] = model_version
    if request.get("id") is not None:
        head["id"] = request["id"]
    head["outputs"] = outputs
    text = json.dumps(head).encode("utf-8")
    if not blobs:
        return text, None
    return text + b"".join(blobs), len(text)
