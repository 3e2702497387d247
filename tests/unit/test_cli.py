"""CLI commands that need no control plane (Typer's runner, in process)."""

from __future__ import annotations

from typer.testing import CliRunner

from modelhost.cli import app

runner = CliRunner()


def test_replicas_prints_the_count_and_the_formula() -> None:
    result = runner.invoke(
        app,
        [
            "replicas",
            "--rps",
            "20",
            "--request-seconds",
            "10",
            "--target-utilization",
            "0.7",
            "--max-concurrent",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "286" and "ceil(285.71) = 286" in lines[1]


def test_bad_input_is_one_error_line_and_exit_1() -> None:
    result = runner.invoke(app, ["replicas", "--rps", "-1", "--request-seconds", "10"])
    assert result.exit_code == 1
    assert (
        result.stderr.startswith("error: Invalid replica calculation")
        and len(result.stderr.splitlines()) == 1
    )
    result = runner.invoke(app, ["env", "build", "x", "--inherit", "--pip-file", "r.txt"])
    assert result.exit_code == 1 and "at most one" in result.stderr


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status", "model", "env", "replicas"):
        assert command in result.stdout
