"""modelhost shim of the ``azureml`` namespace (used only when no real azureml package provides a module)."""
