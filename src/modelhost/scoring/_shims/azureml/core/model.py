"""modelhost shim of ``azureml.core.model``: ``Model.get_model_path`` with azureml-core's local lookup."""

import os
from typing import Any

from azureml.exceptions import ModelNotFoundException, WebserviceException
from modelhost.scoring import model_path as _model_path

__all__ = ["MODELS_DIR", "InferenceConfig", "Model"]

MODELS_DIR = _model_path.models_dir(os.environ.get("AML_APP_ROOT", ""))


class Model:
    """Only the static helpers entry scripts call inside a scoring container are implemented."""

    class Framework:
        CUSTOM = "Custom"
        TENSORFLOW = "TensorFlow"
        SCIKITLEARN = "ScikitLearn"
        ONNX = "Onnx"
        TFKERAS = "TfKeras"
        PYTORCH = "PyTorch"
        MULTI = "Multi"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "azureml.core.Model(workspace, ...) needs an Azure ML workspace and is not available "
            "inside modelhost's scoring server; use Model.get_model_path(name) instead."
        )

    @staticmethod
    def get_model_path(model_name: str, version: Any = None, _workspace: Any = None) -> str:
        """The local path of a registered model (see modelhost.scoring.model_path for the rules)."""
        if version is not None:
            try:
                return _model_path.get_model_path(model_name, version, root=MODELS_DIR)
            except ModelNotFoundException as exc:
                raise WebserviceException(exc.message) from exc
        return _model_path.get_model_path(model_name, version, root=MODELS_DIR)


class InferenceConfig:
    """Importable for scripts that reference it; holds its arguments."""

    def __init__(self, entry_script: str, **kwargs: Any) -> None:
        self.entry_script = entry_script
        self.__dict__.update(kwargs)
