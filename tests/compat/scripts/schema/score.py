"""inference-schema decorated entry script: numpy, pandas and standard Python parameter types."""

import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0]])))
@input_schema("frame", PandasParameterType(pd.DataFrame({"a": [1], "b": ["x"]})))
@input_schema("flag", StandardPythonParameterType(True))
@output_schema(StandardPythonParameterType({"sum": 6.0, "rows": 1, "flag": True, "scale": 1.0}))
def run(data, frame, flag, scale=2.0):
    return {
        "sum": float(data.sum()) * scale,
        "shape": list(data.shape),
        "data_type": type(data).__name__,
        "frame_type": type(frame).__name__,
        "columns": [str(c) for c in frame.columns],
        "rows": len(frame),
        "flag": flag,
        "scale": scale,
    }
