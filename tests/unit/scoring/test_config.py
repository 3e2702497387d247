"""Settings: environment over config.json, v1's file lookup, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.scoring.config import SettingsError, find_config_file, resolve_settings


def test_defaults() -> None:
    settings = resolve_settings({})
    assert (settings.app_root, settings.scoring_timeout_ms, settings.service_name) == (
        "/var/azureml-app",
        3_600_000,
        "ML service",
    )
    assert (settings.max_concurrent_requests, settings.stuck_grace_s, settings.cors_origins) == (
        1,
        30.0,
        None,
    )


def test_environment_beats_the_file_and_only_aliased_keys_come_from_the_file() -> None:
    settings = resolve_settings(
        {"SCORING_TIMEOUT_MS": "500"},
        {"SCORING_TIMEOUT_MS": 900, "SERVICE_NAME": "svc", "AML_CORS_ORIGINS": "x", "OTHER": 1},
    )
    assert settings.scoring_timeout_ms == 500
    assert settings.service_name == "svc"
    assert settings.cors_origins is None
    assert settings.extra_config_keys == ("OTHER",)


def test_cors_and_modelhost_knobs() -> None:
    settings = resolve_settings(
        {
            "AML_CORS_ORIGINS": "http://a.com, http://b.com",
            "MODELHOST_MAX_CONCURRENT_REQUESTS": "4",
            "MODELHOST_STUCK_GRACE_S": "2.5",
        }
    )
    assert settings.cors_origins == ("http://a.com", "http://b.com")
    assert (settings.max_concurrent_requests, settings.stuck_grace_s) == (4, 2.5)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SCORING_TIMEOUT_MS": "soon"}, "SCORING_TIMEOUT_MS"),
        ({"MODELHOST_MAX_CONCURRENT_REQUESTS": "0"}, "MODELHOST_MAX_CONCURRENT_REQUESTS"),
        ({"MODELHOST_STUCK_GRACE_S": "-1"}, "MODELHOST_STUCK_GRACE_S"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        resolve_settings(env)
    assert info.value.key == key


def test_config_file_lookup(tmp_path: Path) -> None:
    root, scripts = tmp_path / "root", tmp_path / "scripts"
    root.mkdir()
    scripts.mkdir()
    (scripts / "config.json").write_text("{}")
    env = {"AML_APP_ROOT": str(root), "AZUREML_ENTRY_SCRIPT": str(scripts / "score.py")}
    assert find_config_file(env) == str(scripts / "config.json")
    (root / "config.json").write_text("")  # empty files are skipped
    assert find_config_file(env) == str(scripts / "config.json")
    (root / "config.json").write_text("{}")
    assert find_config_file(env) == str(root / "config.json")
    explicit = tmp_path / "explicit.json"
    explicit.write_text("{}")
    assert find_config_file({**env, "AZUREML_CONFIG_FILE": str(explicit)}) == str(explicit)
