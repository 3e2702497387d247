"""modelhost shim of ``azureml.telemetry``: AutoML scoring files read ``INSTRUMENTATION_KEY``."""

INSTRUMENTATION_KEY = ""

__all__ = ["INSTRUMENTATION_KEY"]
