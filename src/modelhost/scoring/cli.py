"""The ``modelhost-score`` / ``azmlinfsrv`` command line: v1's arguments, environment merge and banner.

The arguments, their validation, the way they are written into the environment and the start-up
banner are those of azureml-inference-server-http 1.5.1 (``args.py`` and ``amlserver.py``), so tooling
that parses them keeps working. modelhost adds ``--host`` and ``--max_concurrent_requests``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

__all__ = [
    "V1_SERVER_VERSION",
    "CliArgs",
    "banner_lines",
    "merge_into_env",
    "parse_args",
    "validate_env",
]

# The azureml-inference-server-http version whose contract this server implements. It is what the
# banner and the ``x-ms-server-version`` header report, as tooling compares against it.
V1_SERVER_VERSION = "1.5.1"
DEFAULT_PORT = 5001
DEFAULT_HEALTH_PORT = 5000
DEFAULT_WORKER_COUNT = 1
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z", re.I)


@dataclass(frozen=True)
class CliArgs:
    entry_script: str | None = None
    model_dir: str | None = None
    appinsights_instrumentation_key: str | None = None
    port: int | None = None
    health_port: int | None = None
    worker_count: int | None = None
    access_control_allow_origins: str | None = None
    config_file: str | None = None
    rest: bool = False
    host: str = "127.0.0.1"
    max_concurrent_requests: int | None = None


def _port(value: str) -> int:
    port = int(value)
    if port < 1 or port > 65535:
        raise ValueError(
            f"Specified port '{port}' is invalid. Please specify a port within range the [1, 65535] range."
        )
    return port


def _positive(value: str) -> int:
    count = int(value)
    if count <= 0:
        raise ValueError(
            f"Specified worker count '{count}' is invalid. Please specify a worker count greater than zero."
        )
    return count


def _parser(prog: str | None, default_host: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=f"Azure ML Inferencing HTTP server v{V1_SERVER_VERSION}", add_help=True
    )
    parser.add_argument(
        "--entry_script", required=False, help="The relative or absolute path to the scoring script."
    )
    parser.add_argument(
        "--model_dir",
        required=False,
        help=(
            "The relative or absolute path to the model directory. The model directory will be accessible"
            "through the 'AZUREML_MODEL_DIR' environment variable."
        ),
    )
    parser.add_argument(
        "--appinsights_instrumentation_key",
        required=False,
        help=("The instrumentation key to the application insights where the logs will be published."),
    )
    parser.add_argument(
        "--port", required=False, type=_port, help="The serving port of the server. Default is 5001."
    )
    parser.add_argument(
        "--health_port", required=False, type=_port, help="The health port of the server. Default is 5000."
    )
    parser.add_argument(
        "--worker_count",
        required=False,
        type=_positive,
        help=(
            "The number of worker processes, each of which loads the entry script and calls init(). "
            "Default is 1."
        ),
    )
    parser.add_argument(
        "--access_control_allow_origins",
        required=False,
        help=(
            'Enable CORS for the specified origins. Separate multiple origins with ",".'
            'Example: "microsoft.com, bing.com"'
        ),
    )
    parser.add_argument(
        "--config_file", required=False, help="The relative or absolute path to the configuration file"
    )
    parser.add_argument("--rest", default=False, required=False, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--host",
        default=default_host,
        help=(f"modelhost: the address to listen on. Default is {default_host}."),
    )
    parser.add_argument(
        "--max_concurrent_requests",
        required=False,
        type=_positive,
        help=(
            "modelhost: how many run() calls each worker executes at once; further requests wait for a slot. "
            "Default is $MODELHOST_MAX_CONCURRENT_REQUESTS or 1."
        ),
    )
    return parser


def parse_args(
    argv: Sequence[str] | None, *, prog: str | None = None, default_host: str = "127.0.0.1"
) -> CliArgs:
    """Parse like v1: an argparse error prints the help and exits with status 1."""
    parser = _parser(prog, default_host)
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code == 2:
            print()
            parser.usage = argparse.SUPPRESS
            parser.print_help()
            parser.usage = None
            sys.exit(1)
        raise
    return CliArgs(**vars(ns))


def _set(
    env: MutableMapping[str, str], name: str, value: object | None, default: object | None = None
) -> None:
    if value is not None:
        env[name] = str(value)
    elif name in env:
        pass
    elif default is not None:
        env[name] = str(default)


def merge_into_env(args: CliArgs, env: MutableMapping[str, str], cwd: str) -> None:
    """v1's ``merge_configuration``: write the command line into the environment the workers inherit.

    Needs ``--entry_script`` or ``--config_file``; without both it raises SystemExit(1) as v1 does.
    """
    if not (args.entry_script or args.config_file):
        print(
            "Error!\nEither provide an entry_script using --entry_script or provide a path to the "
            "configuration file using --config_file",
            file=sys.stderr,
        )
        sys.exit(1)
    env.setdefault("AML_APP_ROOT", cwd)
    if args.entry_script:
        env["AZUREML_ENTRY_SCRIPT"] = os.path.realpath(args.entry_script)
    _set(env, "TRANSPORT_PROTOCOL", "rest" if args.rest else "grpc")
    _set(env, "AZUREML_MODEL_DIR", args.model_dir)
    _set(env, "WORKER_COUNT", args.worker_count, DEFAULT_WORKER_COUNT)
    if (
        "SERVER_VERSION_LOG_RESPONSE_ENABLED" not in env
        or env["SERVER_VERSION_LOG_RESPONSE_ENABLED"].lower() == "true"
    ):
        env["HTTP_X_MS_SERVER_VERSION"] = f"azmlinfsrv/{V1_SERVER_VERSION}"
    env["SERVER_PORT"] = str(args.port if args.port is not None else DEFAULT_PORT)
    if env.get("SEPERATE_HEALTH_ENDPOINT") == "true":
        env["HEALTH_PORT"] = str(args.health_port if args.health_port is not None else DEFAULT_HEALTH_PORT)
    else:
        _set(env, "HEALTH_PORT", args.port, DEFAULT_PORT)
    if args.appinsights_instrumentation_key is not None:
        env["AML_APP_INSIGHTS_ENABLED"] = "true"
    _set(env, "AML_APP_INSIGHTS_KEY", args.appinsights_instrumentation_key)
    if args.access_control_allow_origins is not None:
        env["AML_CORS_ORIGINS"] = args.access_control_allow_origins
    if args.config_file:
        env["AZUREML_CONFIG_FILE"] = os.path.realpath(args.config_file)
    if args.max_concurrent_requests is not None:
        env["MODELHOST_MAX_CONCURRENT_REQUESTS"] = str(args.max_concurrent_requests)


def validate_env(env: MutableMapping[str, str]) -> list[str]:
    """v1's ``validate_environment_variables``: the lines to print; disables invalid App Insights keys."""
    lines: list[str] = []
    if "AZUREML_MODEL_DIR" not in env:
        lines += [
            "The environment variable 'AZUREML_MODEL_DIR' has not been set.",
            "Use the --model_dir command line argument to set it.",
        ]
    if "AML_APP_INSIGHTS_ENABLED" in env and "AML_APP_INSIGHTS_KEY" in env:
        if env["AML_APP_INSIGHTS_ENABLED"] == "true":
            if _UUID.match(env["AML_APP_INSIGHTS_KEY"]):
                lines.append("Valid Application Insights instrumentation key provided.")
            else:
                env["AML_APP_INSIGHTS_ENABLED"] = "false"
                lines += [
                    "Invalid Application Insights instrumentation key provided.",
                    "Application Insights has been disabled.",
                ]
        else:
            env["AML_APP_INSIGHTS_ENABLED"] = "false"
    else:
        env["AML_APP_INSIGHTS_ENABLED"] = "false"
    return lines


_SETTINGS = (
    ("AZUREML_ENTRY_SCRIPT", "Entry Script Name"),
    ("AZUREML_MODEL_DIR", "Model Directory"),
    ("AZUREML_CONFIG_FILE", "Config File"),
    ("WORKER_COUNT", "Worker Count"),
    ("WORKER_TIMEOUT", "Worker Timeout (seconds)"),
    ("SERVER_PORT", "Server Port"),
    ("HEALTH_PORT", "Health Port"),
    ("AML_APP_INSIGHTS_ENABLED", "Application Insights Enabled"),
    ("AML_APP_INSIGHTS_KEY", "Application Insights Key"),
    ("HTTP_X_MS_SERVER_VERSION", "Inferencing HTTP server version"),
    ("AML_CORS_ORIGINS", "CORS for the specified origins"),
    ("SEPERATE_HEALTH_ENDPOINT", "Create dedicated endpoint for health"),
)


def banner_lines(env: MutableMapping[str, str]) -> list[str]:
    """v1's start-up banner (``print_server_info``, ``print_server_settings``, ``print_routes``)."""
    lines = [
        "",
        f"Azure ML Inferencing HTTP server v{V1_SERVER_VERSION}",
        "",
        "",
        "Server Settings",
        "---------------",
    ]
    for key, label in _SETTINGS:
        if key == "AML_APP_INSIGHTS_KEY" and key in env:
            lines.append(f"{label}: AppInsights key provided")
        elif key == "AML_CORS_ORIGINS" and key in env:
            lines.append(f"{label}: Enabling CORS for {env[key]}")
        else:
            lines.append(f"{label}: {env.get(key)}")
    lines += [
        "",
        "",
        "Server Routes",
        "---------------",
        f"Liveness Probe: GET   127.0.0.1:{env['HEALTH_PORT']}/",
        f"Score:          POST  127.0.0.1:{env['SERVER_PORT']}/score",
        "",
    ]
    return lines
