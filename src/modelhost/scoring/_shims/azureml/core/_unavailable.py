"""Classes a scoring script may import but cannot use inside modelhost's scoring server."""

from typing import Any


class _Unavailable:
    """Importable, but constructing it says why it cannot work here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            f"azureml.core.{type(self).__name__} is not available inside modelhost's scoring server "
            "(it needs an Azure ML workspace). Install azureml-core in the model's environment if the "
            "entry script really needs it."
        )


class Workspace(_Unavailable):
    @staticmethod
    def from_config(*args: Any, **kwargs: Any) -> "Workspace":
        return Workspace()

    @staticmethod
    def get(*args: Any, **kwargs: Any) -> "Workspace":
        return Workspace()


class Environment(_Unavailable):
    pass


class Experiment(_Unavailable):
    pass


class Dataset(_Unavailable):
    pass


class Datastore(_Unavailable):
    pass


class Webservice(_Unavailable):
    pass
