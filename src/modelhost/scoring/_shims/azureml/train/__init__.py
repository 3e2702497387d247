"""modelhost shim of ``azureml.train``."""
