"""modelhost shim of ``azureml.automl.core.shared``: ``logging_utilities`` and ``log_server`` as no-ops."""
