"""modelhost shim of ``azureml.core.workspace``."""

from ._unavailable import Workspace

__all__ = ["Workspace"]
