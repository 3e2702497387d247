"""Turn uv's resolver and build errors into one sentence naming the requirement, and a fix. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modelhost.errors import ValidationError
from modelhost.spec.environment import canonical_name, requirement_name

__all__ = ["FIRST_WHEELS", "ONLY_BINARY", "UvFailure", "explain_uv_failure"]

# Compiled packages whose old releases cannot build from source on a new interpreter (or take many
# minutes to fail): modelhost installs them from wheels only, so a too-old pin fails fast and clearly.
ONLY_BINARY: tuple[str, ...] = (
    "numpy", "scipy", "pandas", "scikit-learn", "matplotlib", "torch", "torchvision", "torchaudio",
    "tensorflow", "xgboost", "lightgbm", "catboost", "pyarrow", "h5py", "opencv-python",
    "opencv-python-headless", "onnxruntime", "numba", "llvmlite", "statsmodels", "pillow", "tables",
)

# A release known to ship wheels for each Python minor (checked against PyPI with uv), for hints.
FIRST_WHEELS: Mapping[str, Mapping[str, str]] = {
    "numpy": {"3.11": "1.23.2", "3.12": "1.26.0", "3.13": "2.1.0"},
    "pandas": {"3.11": "1.5.1", "3.12": "2.1.1", "3.13": "2.2.3"},
    "scipy": {"3.11": "1.9.2", "3.12": "1.11.2", "3.13": "1.14.1"},
    "scikit-learn": {"3.11": "1.1.3", "3.12": "1.3.1", "3.13": "1.5.2"},
    "matplotlib": {"3.11": "3.6.1", "3.12": "3.8.0", "3.13": "3.9.2"},
    "torch": {"3.11": "2.0.0", "3.12": "2.2.0", "3.13": "2.5.0"},
}


_NO_WHEELS = re.compile(
    r"Because (?:only )?(\S+?)(?:[<>=!~]\S*)? has no (?:usable wheels|wheels with a matching)"
)
_PYTHON_TOO_NEW = re.compile(
    r"Because the current Python version \(([^)]+)\) does not satisfy (.+?) and ([A-Za-z0-9._-]+)"
)


@dataclass(frozen=True)
class UvFailure:
    """What went wrong (``message``), how to fix it (``hint``) and the requirement involved, if known."""

    message: str
    hint: str
    requirement: str | None


def _as_written(name: str, requirements: Sequence[str]) -> str | None:
    wanted = canonical_name(name)
    for requirement in requirements:
        try:
            if requirement_name(requirement) == wanted:
                return requirement
        except ValidationError:
            continue
    return None


def _relax_hint(name: str, python_minor: str) -> str:
    first = FIRST_WHEELS.get(canonical_name(name), {}).get(python_minor)
    if first:
        return f"relax the pin to {canonical_name(name)}>={first} or remove it"
    return f"relax the pin to a {name} release with wheels for Python {python_minor} or remove it"


def _no_build(name: str, written: str | None, python_minor: str) -> UvFailure:
    shown = written or name
    hint = _relax_hint(name, python_minor)
    message = f"{shown} has no build for Python {python_minor}: {hint}"
    return UvFailure(message, f"In the spec, {hint}.", shown)


def explain_uv_failure(output: str, requirements: Sequence[str], python_minor: str) -> UvFailure:
    """Explain a failed ``uv pip install`` from its output.

    ``requirements`` are the spec's requirements as written, so the message quotes the user's pin
    (``numpy==1.19.5``) rather than uv's rewording (``numpy>=1.19.0,<=1.19.5``).
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", output)
    if m := _NO_WHEELS.search(text):
        name = m.group(1)
        return _no_build(name, _as_written(name, requirements), python_minor)
    if m := re.search(r"Failed to build `([A-Za-z0-9._-]+)", text):
        name = m.group(1).split("==")[0]
        return _no_build(name, _as_written(name, requirements), python_minor)
    if m := re.search(r"Because ([A-Za-z0-9._-]+) was not found in the package registry", text):
        name = m.group(1)
        return UvFailure(
            f"package {name} does not exist on the package index",
            f"Check the spelling of {name!r}; conda-only packages have no PyPI release: remove it.",
            _as_written(name, requirements) or name,
        )
    if m := re.search(r"Because there is no version of ([A-Za-z0-9._-]+)(\S*)", text):
        name = m.group(1)
        written = _as_written(name, requirements) or name + m.group(2)
        return UvFailure(
            f"no release of {name} matches {written}",
            f"Pin a version of {name} that exists on PyPI (see https://pypi.org/project/{name}/#history).",
            written,
        )
    if m := _PYTHON_TOO_NEW.search(text):
        name = m.group(3)
        written = _as_written(name, requirements) or name
        return UvFailure(
            f"{written} requires {m.group(2)}, but the environment uses Python {m.group(1)}",
            f"Pin a release of {name} that supports Python {python_minor}, or remove the pin.",
            written,
        )
    if "No solution found when resolving dependencies" in text:
        cause = next((line.strip() for line in text.splitlines() if "cause:" in line), "")
        return UvFailure(
            "the requirements conflict: " + cause.removeprefix("cause:").strip(),
            "Relax the pins named above so one set of versions satisfies them all.",
            None,
        )
    errors = [line.strip() for line in text.splitlines() if line.strip().startswith("error")]
    last = errors[-1] if errors else ""
    return UvFailure(
        "installing the requirements failed" + (f": {last}" if last else ""),
        "Read the build log for the failing step.",
        None,
    )
