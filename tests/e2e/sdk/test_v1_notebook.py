"""A v1 notebook, run as written but for its import lines.

The body of :func:`test_model_register_and_deploy_notebook` is the classic Azure ML v1 sample
``how-to-use-azureml/deployment/deploy-to-cloud/model-register-and-deploy.ipynb`` (train a Ridge
regression on the diabetes data, register it, build an environment from a conda file, deploy to
ACI, call it, delete it). Only the ``azureml.*`` imports changed; ``Workspace.from_config()`` finds
the test's workspace through ``MODELHOST_HOME``. The conda file pins the versions installed here so
the build resolves from the local package cache.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.e2e.sdk.conftest import Home

SCORE_PY = """\
import json
import os

import joblib
import numpy as np


def init():
    global model
    # AZUREML_MODEL_DIR is an environment variable created during deployment.
    # It is the path to the model folder (./azureml-models/$MODEL_NAME/$VERSION)
    model_path = os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_regression_model.pkl')
    model = joblib.load(model_path)


def run(data):
    try:
        data = np.array(json.loads(data)['data'])
        result = model.predict(data)
        # You can return any data type, as long as it is JSON serializable.
        return result.tolist()
    except Exception as e:
        error = str(e)
        return error
"""


def _myenv_yml() -> str:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (
        "name: project_environment\n"
        "dependencies:\n"
        f"  - python={python}\n"
        "  - pip:\n"
        "    - azureml-defaults\n"
        f"    - inference-schema[numpy-support]=={version('inference-schema')}\n"
        f"    - joblib=={version('joblib')}\n"
        f"    - numpy=={version('numpy')}\n"
        f"    - scikit-learn=={version('scikit-learn')}\n"
    )


@pytest.mark.slow
def test_model_register_and_deploy_notebook(
    shared_home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("score.py").write_text(SCORE_PY)
    Path("myenv.yml").write_text(_myenv_yml())

    # -- the notebook, cell by cell ----------------------------------------------------------------
    from modelhost.sdk import Workspace  # was: from azureml.core import Workspace

    ws = Workspace.from_config()
    print(ws.name, sep="\n")

    import joblib
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    dataset_x, dataset_y = load_diabetes(return_X_y=True)
    sk_model = Ridge().fit(dataset_x, dataset_y)
    joblib.dump(sk_model, "sklearn_regression_model.pkl")

    from modelhost.sdk import Model  # was: from azureml.core import Model

    model = Model.register(
        model_path="sklearn_regression_model.pkl",
        model_name="sklearn_regression_model",
        tags={"area": "diabetes", "type": "regression"},
        description="Ridge regression model to predict diabetes",
        workspace=ws,
    )

    from modelhost.sdk import Environment  # was: from azureml.core import Environment
    from modelhost.sdk.conda_dependencies import CondaDependencies  # was: azureml.core.conda_dependencies

    environment = Environment("LocalDeploy")
    environment.python.conda_dependencies = CondaDependencies("myenv.yml")

    from modelhost.sdk.model import InferenceConfig  # was: from azureml.core.model import InferenceConfig

    inference_config = InferenceConfig(entry_script="score.py", environment=environment)

    from modelhost.sdk.webservice import (
        AciWebservice,
    )  # was: from azureml.core.webservice import AciWebservice

    aci_config = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1)

    service = Model.deploy(ws, "myservice", [model], inference_config, aci_config)
    service.wait_for_deployment(show_output=True)
    print(service.state)

    import json

    test_sample = json.dumps({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]})
    test_sample_encoded = bytes(test_sample, encoding="utf8")
    prediction = service.run(input_data=test_sample_encoded)
    print(prediction)

    service.delete()
    # -- end of the notebook ---------------------------------------------------------------------

    expected = sk_model.predict([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]).tolist()
    assert prediction == pytest.approx(expected)
    printed = capsys.readouterr().out
    assert 'ACI service creation operation finished, operation "Succeeded"' in printed
    assert "\nHealthy\n" in printed
    assert environment.version is not None  # registered on the way
