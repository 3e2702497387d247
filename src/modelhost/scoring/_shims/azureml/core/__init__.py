"""modelhost shim of ``azureml.core``: ``Model`` (``get_model_path``), ``Workspace``, ``Run``."""

from azureml.core.model import InferenceConfig, Model
from azureml.core.run import Run
from azureml.core.workspace import Workspace

from ._unavailable import Dataset, Datastore, Environment, Experiment, Webservice

__all__ = [
    "Dataset",
    "Datastore",
    "Environment",
    "Experiment",
    "InferenceConfig",
    "Model",
    "Run",
    "Webservice",
    "Workspace",
]
