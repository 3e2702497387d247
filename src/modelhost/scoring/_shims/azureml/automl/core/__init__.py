"""modelhost shim of ``azureml.automl.core`` (imported by AutoML scoring files)."""
