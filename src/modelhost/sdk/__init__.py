"""modelhost's Python SDK: v1-shaped ``Workspace``, ``Model``, ``Environment``, ``InferenceConfig``
and ``Webservice`` over the control plane.

Existing Azure ML v1 code keeps its shape; only the imports and the workspace change::

    from modelhost.sdk import Workspace, Model, Environment, InferenceConfig, AksWebservice

    ws = Workspace.from_config()                      # the local workspace; starts its control plane
    model = Model.register(ws, "model.pkl", "iris", tags={"area": "demo"})
    env = Environment.from_conda_specification("iris-env", "myenv.yml")
    config = InferenceConfig(entry_script="score.py", source_directory="src", environment=env)
    service = Model.deploy(ws, "iris-svc", [model], config,
                           AksWebservice.deploy_configuration(num_replicas=1, autoscale_enabled=False))
    service.wait_for_deployment(show_output=True)     # the operation log, live
    print(service.run('{"data": [[5.1, 3.5, 1.4, 0.2]]}'))

Every call is an HTTP request to the control plane; errors are the same ``modelhost.errors`` classes
the control plane raised (each one a ``WebserviceException``). docs/sdk.md maps v1's import lines.
"""

from modelhost.sdk.compute import AksCompute, ComputeTarget, KubernetesCompute, LocalCompute
from modelhost.sdk.environment import CondaDependencies, Environment, EnvironmentBuild
from modelhost.sdk.inference import InferenceConfig
from modelhost.sdk.model import Model
from modelhost.sdk.webservice import (
    AciWebservice,
    AksWebservice,
    LocalWebservice,
    Webservice,
    WebserviceException,
)
from modelhost.sdk.workspace import Workspace

__all__ = [
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
