"""v1's ``azureml.core.conda_dependencies``: ``CondaDependencies``."""

from modelhost.sdk.environment import CondaDependencies

__all__ = ["CondaDependencies"]
