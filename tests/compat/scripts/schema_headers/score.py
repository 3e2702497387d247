"""Decorated run() that also declares request_headers: it is passed by name, never read from the body."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("items", StandardPythonParameterType([1, 2]))
def run(items, request_headers):
    return {
        "total": sum(items),
        "custom": request_headers.get("X-Custom"),
        "has_host": "Host" in request_headers,
    }
