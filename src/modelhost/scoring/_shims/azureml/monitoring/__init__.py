"""modelhost shim of ``azureml.monitoring``: ``ModelDataCollector`` (see modelhost.scoring.data_collector)."""

from azureml.monitoring.modeldatacollector import ModelDataCollector

__all__ = ["ModelDataCollector"]
