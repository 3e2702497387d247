"""Which Python builds an environment.

v1 specs usually pin Python 3.6-3.8; modelhost's runtime needs >= 3.11. :func:`choose_interpreter`
(pure) picks the requested minor when the machine has it, else the nearest supported one with a
``WARNING:`` line for the build log, or refuses under ``strict``. :func:`discover_interpreters`
(I/O) lists candidates: ``uv python list --only-installed``, pyenv's versions folder, ``python3.X``
on PATH, and the interpreter running modelhost.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelhost.errors import ValidationError

__all__ = [
    "MIN_SUPPORTED",
    "Interpreter",
    "InterpreterChoice",
    "choose_interpreter",
    "discover_interpreters",
    "quick_interpreters",
]

MIN_SUPPORTED = (3, 11)
_PROBE_MINORS = range(11, 16)


@dataclass(frozen=True)
class Interpreter:
    """A CPython found on this machine: full version (``"3.12.1"``) and an executable path."""

    version: str
    path: Path

    @property
    def minor(self) -> str:
        major, minor = self.version_tuple[:2]
        return f"{major}.{minor}"

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", self.version)[:3])


@dataclass(frozen=True)
class InterpreterChoice:
    """The interpreter to build with; ``warning`` (starts ``WARNING:``) when not the one asked for."""

    interpreter: Interpreter
    requested: str | None
    warning: str | None


def _minor_tuple(version: str) -> tuple[int, int]:
    match = re.match(r"^\s*(\d+)\.(\d+)", version)
    if not match:
        raise ValidationError(f"python version {version!r} is not a version like 3.11")
    return int(match.group(1)), int(match.group(2))


def _best_per_minor(available: Sequence[Interpreter]) -> dict[tuple[int, int], Interpreter]:
    best: dict[tuple[int, int], Interpreter] = {}
    for interp in available:
        key = _minor_tuple(interp.version)
        if key < MIN_SUPPORTED:
            continue
        if key not in best or interp.version_tuple > best[key].version_tuple:
            best[key] = interp
    return best


def choose_interpreter(
    requested: str | None, available: Sequence[Interpreter], *, default_minor: str, strict: bool = False
) -> InterpreterChoice:
    """Pick the interpreter for ``requested`` (``"3.6.2"``, ``"3.11"`` or None for ``default_minor``).

    Only CPython >= 3.11 qualifies. Without an exact minor: the nearest one (ties go to the newer),
    with a warning; under ``strict`` a ValidationError instead. Pure.
    """
    best = _best_per_minor(available)
    if not best:
        raise ValidationError(
            "no Python >= 3.11 found on this machine to build environments with",
            hint="Install one (e.g. 'uv python install 3.12') and try again.",
        )
    found = ", ".join(f"{a}.{b}" for a, b in sorted(best))
    wanted = _minor_tuple(requested if requested is not None else default_minor)
    if wanted in best:
        return InterpreterChoice(best[wanted], requested, None)
    if requested is None:
        return InterpreterChoice(best[max(best)], requested, None)
    if strict:
        raise ValidationError(
            f"Python {requested} is not available: modelhost builds with Python >= 3.11 "
            f"and this machine has {found}",
            hint=f"Pin python to one of {found}, or build without strict_python to use the nearest.",
        )
    nearest = min(best, key=lambda k: (abs((k[0] - wanted[0]) * 100 + k[1] - wanted[1]), -k[1]))
    chosen = best[nearest]
    too_old = wanted < MIN_SUPPORTED
    reason = "is older than modelhost supports (>= 3.11)" if too_old else "is not installed here"
    warning = (
        f"WARNING: the spec asks for Python {requested}, which {reason}; building with Python "
        f"{chosen.version} instead (the nearest available). Pins made for Python {requested} may not "
        f"install on {chosen.minor}: relax them if the build fails."
    )
    return InterpreterChoice(chosen, requested, warning)


def _from_uv(uv_bin: str) -> list[Interpreter]:
    try:
        proc = subprocess.run(
            [uv_bin, "python", "list", "--only-installed", "--output-format", "json"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        rows = json.loads(proc.stdout) if proc.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return []
    return [
        Interpreter(str(row["version"]), Path(row["path"]))
        for row in rows
        if row.get("implementation") == "cpython"
        and row.get("variant", "default") == "default"
        and row.get("path")
    ]


def _from_pyenv(environ: Mapping[str, str]) -> list[Interpreter]:
    home = Path(environ.get("HOME", "~")).expanduser()
    root = Path(environ.get("PYENV_ROOT") or home / ".pyenv") / "versions"
    found = []
    for version_dir in sorted(root.glob("*")) if root.is_dir() else []:
        match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version_dir.name)
        exe = version_dir / "bin" / f"python{match.group(1)}.{match.group(2)}" if match else None
        if exe is not None and exe.is_file():
            found.append(Interpreter(version_dir.name, exe))
    return found


def _probe(exe: str) -> Interpreter | None:
    try:
        proc = subprocess.run(
            [exe, "-c", "import platform as p; print(p.python_implementation(), p.python_version())"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = proc.stdout.split()
    if proc.returncode != 0 or len(parts) != 2 or parts[0] != "CPython":
        return None
    return Interpreter(parts[1], Path(exe))


def _running() -> Interpreter:
    # A venv's python works with `uv venv --python`, but its base interpreter says what it is.
    base = getattr(sys, "_base_executable", None) or sys.executable
    return Interpreter(".".join(str(x) for x in sys.version_info[:3]), Path(base))


def quick_interpreters(environ: Mapping[str, str] | None = None) -> list[Interpreter]:
    """The cheap candidates (no subprocess): pyenv's versions folder and the running interpreter."""
    env = os.environ if environ is None else environ
    found = [*_from_pyenv(env), _running()]
    return [i for i in found if i.version_tuple[:2] >= MIN_SUPPORTED]


def discover_interpreters(uv_bin: str, environ: Mapping[str, str] | None = None) -> list[Interpreter]:
    """All CPython >= 3.11: :func:`quick_interpreters`, ``uv python list`` and ``python3.X`` on PATH.

    ``uv python list`` probes every interpreter on PATH (about a second here), so callers first try
    :func:`quick_interpreters` and come here only when it lacks the minor they want.
    """
    env = os.environ if environ is None else environ
    found = [*quick_interpreters(env), *_from_uv(uv_bin)]
    have = {i.minor for i in found}
    for minor in _PROBE_MINORS:
        exe = shutil.which(f"python3.{minor}", path=env.get("PATH"))
        if f"3.{minor}" not in have and exe and (probed := _probe(exe)) is not None:
            found.append(probed)
    return [i for i in found if i.version_tuple[:2] >= MIN_SUPPORTED]
