"""modelhost shim of ``azureml.exceptions``."""

from modelhost.scoring.model_path import AzureMLException, ModelNotFoundException, WebserviceException

__all__ = [
    "AzureMLException",
    "ModelNotFoundException",
    "RunEnvironmentException",
    "UserErrorException",
    "WebserviceException",
]


class UserErrorException(AzureMLException):
    pass


class RunEnvironmentException(AzureMLException):
    pass
