"""The SDK's public names and its client-side objects that need no control plane."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import modelhost.sdk
from modelhost.control import api
from modelhost.errors import ModelhostError, ValidationError
from modelhost.sdk import CondaDependencies, Environment, Model


def test_exported_names_are_pinned() -> None:
    assert modelhost.sdk.__all__ == [
        "AciWebservice",
        "AksCompute",
        "AksWebservice",
        "ComputeTarget",
        "CondaDependencies",
        "Environment",
        "EnvironmentBuild",
        "InferenceConfig",
        "KubernetesCompute",
        "LocalCompute",
        "LocalWebservice",
        "Model",
        "Webservice",
        "WebserviceException",
        "Workspace",
    ]
    assert Model.Framework.SCIKITLEARN == "ScikitLearn" and Model.Framework.ONNX == "Onnx"


def test_v1_import_lines_map_one_to_one() -> None:
    """Each v1 module a notebook imports from has a modelhost twin with the same names."""
    from modelhost.sdk import conda_dependencies, environment, exceptions, model, webservice, workspace
    from modelhost.sdk.webservice import aci, aks, local

    assert model.Model is Model and model.InferenceConfig is modelhost.sdk.InferenceConfig
    assert environment.Environment is Environment
    assert conda_dependencies.CondaDependencies is CondaDependencies
    assert workspace.Workspace is modelhost.sdk.Workspace
    for name in ("Webservice", "AksWebservice", "AciWebservice", "LocalWebservice"):
        assert getattr(webservice, name) is getattr(modelhost.sdk, name)
    assert aks.AksWebservice is webservice.AksWebservice and aci.AciWebservice is webservice.AciWebservice
    assert local.LocalWebservice is webservice.LocalWebservice
    assert exceptions.WebserviceException is webservice.WebserviceException is ModelhostError
    assert issubclass(ValidationError, exceptions.WebserviceException)


def test_conda_dependencies_build_a_v1_conda_file(tmp_path: Path) -> None:
    deps = CondaDependencies.create(
        pip_packages=["six", "azureml-defaults"], conda_packages=["numpy"], python_version="3.8"
    )
    deps.add_pip_package("six")
    deps.add_conda_package("scikit-learn")
    data = yaml.safe_load(deps.serialize_to_string())
    assert data["dependencies"][:3] == ["python=3.8", "numpy", "scikit-learn"]
    assert data["dependencies"][3] == {"pip": ["six", "azureml-defaults"]}
    assert deps.conda_packages == ["numpy", "scikit-learn"] and deps.pip_packages == [
        "six",
        "azureml-defaults",
    ]
    assert deps.get_python_version() == "3.8"
    deps.remove_pip_package("six")
    saved = CondaDependencies(deps.save(tmp_path / "env.yml"))
    assert saved.pip_packages == ["azureml-defaults"]
    with pytest.raises(ValidationError, match="pip_indexurl"):
        CondaDependencies.create(pip_indexurl="https://example.invalid")


def test_environment_requests_carry_what_the_user_wrote(tmp_path: Path) -> None:
    conda = tmp_path / "env.yml"
    conda.write_text("dependencies:\n  - python=3.11\n  - pip:\n    - six\n")
    env = Environment.from_conda_specification("e", conda)
    assert env._request() == {"name": "e", "conda_yaml": conda.read_text()}
    env.python.conda_dependencies.add_pip_package("numpy")  # edited: the edited file is sent
    assert "numpy" in env._request()["conda_yaml"]

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0  # pinned\n")
    env = Environment.from_pip_requirements("p", requirements)
    assert env._request() == {"name": "p", "pip_requirements": requirements.read_text()}
    assert env.python.conda_dependencies.pip_packages == ["six==1.17.0"]
    env.environment_variables = {"A": "1"}
    assert yaml.safe_load(env._request()["conda_yaml"])["variables"] == {"A": "1"}

    assert Environment.from_current("c")._request() == {"name": "c", "inherit": True}
    with pytest.raises(ValidationError, match="does not exist"):
        Environment.from_pip_requirements("x", tmp_path / "missing.txt")


def test_every_route_documents_itself_for_openapi() -> None:
    schema = api.schemas.get_schema(api.routes())
    assert len(schema["paths"]) >= 14
    assert schema["paths"]["/api/v1/models/{name}/{version}"].keys() >= {"get", "patch", "delete"}
