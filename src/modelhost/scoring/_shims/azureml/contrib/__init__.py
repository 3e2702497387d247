"""modelhost shim of ``azureml.contrib``."""
