"""The azureml imports v1 scripts execute, served by modelhost's shims (no azureml package installed)."""

import json
import os

import azureml.train.automl  # noqa: F401  (AutoML scoring files import it for side effects)
from azureml.automl.core.shared import log_server, logging_utilities
from azureml.core import Run, Workspace  # noqa: F401
from azureml.core.model import Model
from azureml.monitoring import ModelDataCollector
from azureml.telemetry import INSTRUMENTATION_KEY
from sklearn.externals import joblib

log_server.enable_telemetry(INSTRUMENTATION_KEY)
log_server.set_verbosity("INFO")
log_server.update_custom_dimensions({"model_name": "m"})


def init():
    global model, inputs_dc
    path = Model.get_model_path("sklearn_model")
    model = joblib.load(os.path.join(path, "model.joblib") if os.path.isdir(path) else path)
    inputs_dc = ModelDataCollector("sklearn_model", identifier="inputs", feature_names=["a", "b"])


def run(raw):
    data = json.loads(raw)["data"]
    try:
        correlation = inputs_dc.collect(data[0])
        prediction = model.predict(data).tolist()
        return {"prediction": prediction, "collected": correlation is not None, "joblib": joblib.__name__}
    except Exception as exc:
        logging_utilities.log_traceback(exc, None)
        return {"error": str(exc)}
