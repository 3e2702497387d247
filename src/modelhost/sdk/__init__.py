"""modelhost's Python SDK: v1-shaped ``Workspace``, ``Model`` and ``Environment`` over the control plane.

Existing Azure ML v1 code keeps its shape::

    from modelhost.sdk import Workspace, Model, Environment, CondaDependencies

    ws = Workspace.from_config()                      # the local workspace; starts its control plane
    model = Model.register(ws, "model.pkl", "iris", tags={"area": "demo"})
    env = Environment.from_conda_specification("iris-env", "myenv.yml")
    env.build(ws).wait_for_completion(show_output=True)

Every call is an HTTP request to the control plane; errors are the same ``modelhost.errors`` classes
the control plane raised.
"""

from modelhost.sdk.environment import CondaDependencies, Environment, EnvironmentBuild
from modelhost.sdk.model import Model
from modelhost.sdk.workspace import Workspace

__all__ = ["CondaDependencies", "Environment", "EnvironmentBuild", "Model", "Workspace"]
