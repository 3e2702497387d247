"""No-op ``log_server`` for AutoML scoring files (telemetry is not sent)."""

from typing import Any

__all__ = ["enable_telemetry", "set_verbosity", "update_custom_dimensions"]


def enable_telemetry(*args: Any, **kwargs: Any) -> None:
    return None


def set_verbosity(*args: Any, **kwargs: Any) -> None:
    return None


def update_custom_dimensions(*args: Any, **kwargs: Any) -> None:
    return None


def __getattr__(name: str) -> Any:
    return lambda *args, **kwargs: None
