"""Choosing the interpreter for a spec (pure), and discovering the real ones on this machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelhost.build.interpreters import (
    Interpreter,
    choose_interpreter,
    discover_interpreters,
    quick_interpreters,
)
from modelhost.errors import ValidationError

MACHINE = [
    Interpreter("3.11.2", Path("/usr/bin/python3.11")),
    Interpreter("3.11.7", Path("/opt/py/3.11.7/bin/python3.11")),
    Interpreter("3.12.1", Path("/opt/py/3.12.1/bin/python3.12")),
    Interpreter("3.13.0", Path("/opt/py/3.13.0/bin/python3.13")),
    Interpreter("3.8.18", Path("/opt/py/3.8.18/bin/python3.8")),
]


@pytest.mark.parametrize(
    ("requested", "available", "version", "warns"),
    [
        (None, MACHINE, "3.11.7", False),  # the default minor, newest patch
        ("3.12", MACHINE, "3.12.1", False),
        ("3.12.9", MACHINE, "3.12.1", False),  # the patch is not ours to match
        ("3.6.2", MACHINE, "3.11.7", True),
        ("3.8", MACHINE, "3.11.7", True),  # 3.8 is installed but too old for the runtime
        ("3.14", MACHINE, "3.13.0", True),
        ("3.12", [MACHINE[1], MACHINE[3]], "3.13.0", True),  # ties go to the newer
        (None, [MACHINE[2]], "3.12.1", False),  # default minor missing: the newest there is
    ],
    ids=["default", "exact", "patch", "py36", "py38", "py314", "gap", "default-missing"],
)
def test_choose(requested: str | None, available: list[Interpreter], version: str, warns: bool) -> None:
    choice = choose_interpreter(requested, available, default_minor="3.11")
    assert choice.interpreter.version == version
    assert (choice.warning is not None) == warns
    if warns:
        assert choice.warning is not None and choice.warning.startswith("WARNING:")
        assert f"Python {requested}" in choice.warning and version in choice.warning


def test_strict_refuses_a_missing_minor_naming_what_exists() -> None:
    with pytest.raises(ValidationError) as info:
        choose_interpreter("3.6.2", MACHINE, default_minor="3.11", strict=True)
    assert "Python 3.6.2" in str(info.value) and "3.11, 3.12, 3.13" in str(info.value)
    assert choose_interpreter("3.12", MACHINE, default_minor="3.11", strict=True).warning is None


def test_no_supported_interpreter() -> None:
    with pytest.raises(ValidationError, match=r">= 3\.11"):
        choose_interpreter(None, [MACHINE[4]], default_minor="3.11")


def test_discovery_finds_the_running_interpreter_and_only_supported_ones() -> None:
    from uv import find_uv_bin

    quick = quick_interpreters()
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert running in {i.minor for i in quick}
    found = discover_interpreters(find_uv_bin())
    assert {i.minor for i in quick} <= {i.minor for i in found}
    assert all(i.version_tuple[:2] >= (3, 11) for i in found)
    for interp in found:  # every candidate really is the version it claims
        out = subprocess.run([str(interp.path), "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        assert out == interp.version
