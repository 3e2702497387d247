"""The command line: v1's environment merge and banner."""

from __future__ import annotations

import pytest

from modelhost.scoring.cli import CliArgs, banner_lines, merge_into_env, parse_args, validate_env


def test_parse_args_and_modelhost_options() -> None:
    args = parse_args(
        ["--entry_script", "s.py", "--port", "6000", "--max_concurrent_requests", "3"], default_host="0.0.0.0"
    )
    assert (args.entry_script, args.port, args.max_concurrent_requests, args.host) == (
        "s.py",
        6000,
        3,
        "0.0.0.0",
    )


def test_bad_arguments_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(["--port", "70000"])
    assert info.value.code == 1


def test_merge_like_v1() -> None:
    env: dict[str, str] = {"SERVER_PORT": "9999", "WORKER_COUNT": "2"}
    merge_into_env(
        CliArgs(
            entry_script="/x/score.py",
            model_dir="m",
            port=6001,
            access_control_allow_origins="http://a.com",
            max_concurrent_requests=2,
        ),
        env,
        "/cwd",
    )
    assert env["AML_APP_ROOT"] == "/cwd"
    assert env["AZUREML_ENTRY_SCRIPT"] == "/x/score.py"
    assert env["AZUREML_MODEL_DIR"] == "m"
    assert env["SERVER_PORT"] == "6001" and env["HEALTH_PORT"] == "6001"
    assert env["WORKER_COUNT"] == "2"
    assert env["HTTP_X_MS_SERVER_VERSION"] == "azmlinfsrv/1.5.1"
    assert env["AML_CORS_ORIGINS"] == "http://a.com"
    assert env["MODELHOST_MAX_CONCURRENT_REQUESTS"] == "2"


def test_server_port_env_is_ignored_and_version_header_can_be_disabled() -> None:
    env = {"SERVER_PORT": "9999", "SERVER_VERSION_LOG_RESPONSE_ENABLED": "false"}
    merge_into_env(CliArgs(entry_script="s.py"), env, "/cwd")
    assert env["SERVER_PORT"] == "5001"
    assert "HTTP_X_MS_SERVER_VERSION" not in env


def test_missing_entry_script_and_config_file_exits_1() -> None:
    with pytest.raises(SystemExit) as info:
        merge_into_env(CliArgs(), {}, "/cwd")
    assert info.value.code == 1


def test_validate_env_messages() -> None:
    env: dict[str, str] = {"AML_APP_INSIGHTS_ENABLED": "true", "AML_APP_INSIGHTS_KEY": "nope"}
    lines = validate_env(env)
    assert lines[:2] == [
        "The environment variable 'AZUREML_MODEL_DIR' has not been set.",
        "Use the --model_dir command line argument to set it.",
    ]
    assert "Application Insights has been disabled." in lines
    assert env["AML_APP_INSIGHTS_ENABLED"] == "false"


def test_banner() -> None:
    env = {
        "AZUREML_ENTRY_SCRIPT": "/s.py",
        "SERVER_PORT": "5001",
        "HEALTH_PORT": "5001",
        "WORKER_COUNT": "1",
        "AML_APP_INSIGHTS_ENABLED": "false",
        "HTTP_X_MS_SERVER_VERSION": "azmlinfsrv/1.5.1",
    }
    lines = banner_lines(env)
    assert lines[1] == "Azure ML Inferencing HTTP server v1.5.1"
    assert "Entry Script Name: /s.py" in lines
    assert "Model Directory: None" in lines
    assert "Liveness Probe: GET   127.0.0.1:5001/" in lines
    assert lines[-2] == "Score:          POST  127.0.0.1:5001/score"
