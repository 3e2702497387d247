"""A v1 entry script, unchanged from how Azure ML v1 samples wrote it: init() loads, run() predicts."""

import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

model = None


def init():
    global model
    # AZUREML_MODEL_DIR is the folder of the registered model (azureml-models/<name>/<version>)
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_iris.pkl")
    model = joblib.load(model_path)


input_sample = np.array([[5.1, 3.5, 1.4, 0.2]])
output_sample = np.array([0])


@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    result = model.predict(data)
    return result.tolist()
