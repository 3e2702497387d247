"""Decorated script whose sample list mixes element types: swagger 2 cannot describe it."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("items", StandardPythonParameterType([1, "a"]))
def run(items):
    return {"count": len(items)}
