"""uv's failure output -> a sentence naming the requirement and a fix (pure; outputs from uv 0.13)."""

from __future__ import annotations

import pytest

from modelhost.build.uv_errors import explain_uv_failure

NO_WHEELS = """\
error: No solution found when resolving dependencies
  cause: Because numpy==1.19.5 has no usable wheels and you require numpy==1.19.5, we can conclude that \
your requirements are unsatisfiable.

hint: Wheels are required for `numpy` because building from source is disabled for `numpy`
"""
NO_WHEELS_RANGE = """\
error: No solution found when resolving dependencies
  cause: Because numpy>=1.19.0,<=1.19.5 has no usable wheels and only the following versions of numpy \
are available:
"""
NO_ABI = """\
error: No solution found when resolving dependencies
  cause: Because torch==2.0.0 has no wheels with a matching Python ABI tag (e.g., `cp312`) and you \
require torch==2.0.0, we can conclude that your requirements are unsatisfiable.
"""
NOT_FOUND = """\
error: No solution found when resolving dependencies
  cause: Because nonexistent-pkg-zzq was not found in the package registry and you require \
nonexistent-pkg-zzq, we can conclude that your requirements are unsatisfiable.
"""
NO_VERSION = """\
error: No solution found when resolving dependencies
  cause: Because there is no version of six==99.0 and you require six==99.0, we can conclude that \
your requirements are unsatisfiable.
"""
BUILD_FAILED = """\
   Building numpy==1.19.5
error: Failed to build `numpy==1.19.5`
  cause: The build backend returned an error
"""
CONFLICT = """\
error: No solution found when resolving dependencies
  cause: Because a==1 depends on b<2 and c==1 depends on b>=2, we can conclude that a==1 and c==1 are \
incompatible.
"""


RELAX = "has no build for Python {0}: relax the pin to {1} or remove it"
CASES = [
    pytest.param(NO_WHEELS, ["numpy==1.19.5"], "3.11",
                 "numpy==1.19.5 " + RELAX.format("3.11", "numpy>=1.23.2"), "numpy==1.19.5", id="no-wheels"),
    pytest.param(NO_WHEELS_RANGE, ["numpy==1.19.*", "six"], "3.12",
                 "numpy==1.19.* " + RELAX.format("3.12", "numpy>=1.26.0"), "numpy==1.19.*", id="range"),
    pytest.param(NO_ABI, ["torch==2.0.0"], "3.12", "torch==2.0.0 " + RELAX.format("3.12", "torch>=2.2.0"),
                 "torch==2.0.0", id="no-abi"),
    pytest.param(BUILD_FAILED, ["numpy==1.19.5"], "3.11", "numpy==1.19.5 has no build for Python 3.11",
                 "numpy==1.19.5", id="build-failed"),
    pytest.param(NOT_FOUND, ["nonexistent-pkg-zzq"], "3.11",
                 "package nonexistent-pkg-zzq does not exist on the package index", "nonexistent-pkg-zzq",
                 id="not-found"),
    pytest.param(NO_VERSION, ["six==99.0"], "3.11", "no release of six matches six==99.0", "six==99.0",
                 id="no-version"),
    pytest.param(CONFLICT, ["a==1", "c==1"], "3.11", "the requirements conflict: Because a==1 depends on b<2",
                 None, id="conflict"),
    pytest.param("error: something else broke\n", ["x"], "3.11",
                 "installing the requirements failed: error: something", None, id="other"),
]


@pytest.mark.parametrize(("output", "requirements", "minor", "message", "requirement"), CASES)
def test_explain(
    output: str, requirements: list[str], minor: str, message: str, requirement: str | None
) -> None:
    failure = explain_uv_failure(output, requirements, minor)
    assert failure.message.startswith(message)
    assert failure.requirement == requirement
    assert failure.hint


def test_unknown_package_gets_a_generic_relax_hint() -> None:
    output = NO_WHEELS.replace("numpy", "rarepkg")
    failure = explain_uv_failure(output, ["RarePkg==0.1"], "3.13")
    assert failure.message == (
        "RarePkg==0.1 has no build for Python 3.13: relax the pin to a rarepkg release with wheels for "
        "Python 3.13 or remove it"
    )
