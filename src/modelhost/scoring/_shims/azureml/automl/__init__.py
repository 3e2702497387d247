"""modelhost shim of ``azureml.automl``."""
