"""modelhost shim of ``azureml.monitoring.modeldatacollector``."""

from modelhost.scoring.data_collector import ModelDataCollector

__all__ = ["ModelDataCollector"]
