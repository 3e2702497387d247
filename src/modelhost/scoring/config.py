"""The scoring server's settings: v1's environment variables, config.json and modelhost's own knobs.

azureml-inference-server-http 1.5.1 reads its settings with precedence *CLI > environment > JSON config
file*; the CLI writes its values into the environment first (see :mod:`modelhost.scoring.cli`), so a
worker only has to merge the environment over the config file. The config file is
``AZUREML_CONFIG_FILE`` when it exists and is not empty, else the first non-empty ``config.json`` in
``AML_APP_ROOT`` or in the entry script's folder. Its keys are the environment variable names; like
v1, only the keys below that v1 declares with an alias are honoured from the file.

:func:`resolve_settings` is pure: it takes the environment and the file's values and returns a
:class:`ScoringSettings` or raises :class:`SettingsError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_APP_ROOT",
    "FILE_KEYS",
    "ScoringSettings",
    "SettingsError",
    "find_config_file",
    "load_settings",
    "read_config_file",
    "resolve_settings",
]

DEFAULT_APP_ROOT = "/var/azureml-app"
DEFAULT_SCORING_TIMEOUT_MS = 3_600_000
DEFAULT_STUCK_GRACE_S = 30.0

# The keys v1's pydantic settings accept from the config file (the fields declared with an alias).
FILE_KEYS = (
    "AZUREML_SOURCE_DIRECTORY",
    "AZUREML_ENTRY_SCRIPT",
    "SERVICE_NAME",
    "WORKSPACE_NAME",
    "SERVICE_PATH_PREFIX",
    "SERVICE_VERSION",
    "SCORING_TIMEOUT_MS",
    "AZUREML_LOG_LEVEL",
    "APP_INSIGHTS_LOG_RESPONSE_ENABLED",
    "AZUREML_MODEL_DIR",
    "HOSTNAME",
    "AZUREML_DEBUG_PORT",
)
# Every key v1 knows, for its "extra keys" warning.
_KNOWN_KEYS = frozenset(
    (
        *FILE_KEYS,
        "AML_APP_ROOT",
        "AML_APP_INSIGHTS_ENABLED",
        "AML_APP_INSIGHTS_KEY",
        "AML_MODEL_DC_STORAGE_ENABLED",
        "AML_CORS_ORIGINS",
    )
)


class SettingsError(ValueError):
    """A setting has a value the server cannot use; ``key`` names the environment variable."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class ScoringSettings:
    """Everything a worker needs to load the entry script and serve it."""

    app_root: str = DEFAULT_APP_ROOT
    source_dir: str | None = None
    entry_script: str | None = None
    model_dir: str = ""
    service_name: str = "ML service"
    service_version: str = "1.0"
    service_path_prefix: str = ""
    workspace_name: str = ""
    scoring_timeout_ms: int = DEFAULT_SCORING_TIMEOUT_MS
    cors_origins: tuple[str, ...] | None = None
    server_version: str | None = None
    max_concurrent_requests: int = 1
    stuck_grace_s: float = DEFAULT_STUCK_GRACE_S
    config_file: str | None = None
    extra_config_keys: tuple[str, ...] = ()
    service_name_set: bool = False

    @property
    def entry_script_path(self) -> str | None:
        """The entry script joined onto the app root (an absolute entry script wins), as v1 does."""
        if not self.entry_script:
            return None
        return os.path.join(self.app_root, self.entry_script.replace("/", os.sep))


def _int(key: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise SettingsError(key, "Input should be a valid integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    try:
        return int(str(raw).strip())
    except ValueError:
        raise SettingsError(
            key, "Input should be a valid integer, unable to parse string as an integer"
        ) from None


def _positive_int(key: str, raw: str) -> int:
    value = _int(key, raw)
    if value < 1:
        raise SettingsError(key, f"must be at least 1, got {value}")
    return value


def _seconds(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(key, f"must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise SettingsError(key, f"must not be negative, got {value}")
    return value


def resolve_settings(
    env: Mapping[str, str], file_values: Mapping[str, Any] | None = None, config_file: str | None = None
) -> ScoringSettings:
    """Merge the environment over the config file's values, v1's way. Pure."""
    file_values = file_values or {}

    def get(key: str, default: Any = None) -> Any:
        if key in env:
            return env[key]
        if key in FILE_KEYS and file_values.get(key) is not None:
            return file_values[key]
        return default

    cors_raw = env.get("AML_CORS_ORIGINS")
    cors = tuple(o.strip() for o in cors_raw.split(",")) if cors_raw else None
    server_version = env.get("HTTP_X_MS_SERVER_VERSION") or None
    return ScoringSettings(
        app_root=str(env.get("AML_APP_ROOT", DEFAULT_APP_ROOT)),
        source_dir=get("AZUREML_SOURCE_DIRECTORY"),
        entry_script=get("AZUREML_ENTRY_SCRIPT"),
        model_dir=str(get("AZUREML_MODEL_DIR", "")),
        service_name=str(get("SERVICE_NAME", "ML service")),
        service_version=str(get("SERVICE_VERSION", "1.0")),
        service_path_prefix=str(get("SERVICE_PATH_PREFIX", "")),
        workspace_name=str(get("WORKSPACE_NAME", "")),
        scoring_timeout_ms=_int("SCORING_TIMEOUT_MS", get("SCORING_TIMEOUT_MS", DEFAULT_SCORING_TIMEOUT_MS)),
        cors_origins=cors,
        server_version=server_version,
        max_concurrent_requests=_positive_int(
            "MODELHOST_MAX_CONCURRENT_REQUESTS", env.get("MODELHOST_MAX_CONCURRENT_REQUESTS", "1")
        ),
        stuck_grace_s=_seconds(
            "MODELHOST_STUCK_GRACE_S", env.get("MODELHOST_STUCK_GRACE_S", str(DEFAULT_STUCK_GRACE_S))
        ),
        config_file=config_file,
        extra_config_keys=tuple(k for k in file_values if k not in _KNOWN_KEYS),
        service_name_set=get("SERVICE_NAME") is not None,
    )


def _non_empty_file(path: str | None) -> bool:
    return bool(path) and os.path.isfile(str(path)) and os.stat(str(path)).st_size != 0


def find_config_file(env: Mapping[str, str]) -> str | None:
    """v1's lookup: ``AZUREML_CONFIG_FILE``, else ``config.json`` in the app root or the script's folder."""
    explicit = env.get("AZUREML_CONFIG_FILE")
    if explicit and _non_empty_file(explicit):
        return explicit
    script = env.get("AZUREML_ENTRY_SCRIPT")
    roots = (
        env.get("AML_APP_ROOT", DEFAULT_APP_ROOT),
        os.path.dirname(os.path.abspath(script)) if script else None,
    )
    for root in roots:
        if root and os.path.isdir(root):
            candidate = os.path.join(root, "config.json")
            if _non_empty_file(candidate):
                return candidate
    return None


def read_config_file(path: str) -> dict[str, Any]:
    """The config file's JSON object; raises :class:`SettingsError` when it is not one."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise SettingsError("AZUREML_CONFIG_FILE", f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError("AZUREML_CONFIG_FILE", f"{path} must hold a JSON object")
    return data


def load_settings(env: Mapping[str, str]) -> ScoringSettings:
    """Find and read the config file, then :func:`resolve_settings`."""
    path = find_config_file(env)
    values = read_config_file(path) if path else {}
    return resolve_settings(env, values, path)
