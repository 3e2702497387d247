"""modelhost shim of ``azureml.core.run``: ``Run.get_context()`` gives an offline run (logging is a no-op)."""

from typing import Any

__all__ = ["Run"]


class Run:
    """An offline run: the metric methods accept their arguments and do nothing."""

    id = "OfflineRun"
    experiment = None

    @classmethod
    def get_context(cls, allow_offline: bool = True, **kwargs: Any) -> "Run":
        return cls()

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("log", "tag", "set_tags", "add_properties", "upload", "flush", "complete")):
            return lambda *args, **kwargs: None
        raise AttributeError(name)
