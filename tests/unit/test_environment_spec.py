"""Environment specs: pip and v1 conda parsing, conda -> PyPI translation, hashing (pure)."""

from __future__ import annotations

import json

import pytest

from modelhost.errors import ValidationError
from modelhost.spec.environment import (
    EnvironmentSpec,
    canonical_name,
    conda_to_pip,
    normalize_requirement,
    python_minor,
)

V1_CONDA = """\
name: project_environment
channels:
  - conda-forge
  - anaconda
dependencies:
  - python=3.6.2
  - pip=20.2.4
  - setuptools
  - numpy=1.19
  - scikit-learn==0.22.1
  - conda-forge::pandas>=1.0,<1.2
  - py-xgboost=0.90
  - pytorch
  - pip:
    - azureml-defaults>=1.0.45
    - azureml-core==1.20.0
    - inference-schema[numpy-support]==1.1.0
    - joblib
"""


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("numpy", ("numpy", None)),
        ("numpy=1.19", ("numpy==1.19.*", None)),
        ("numpy=1.19.5", ("numpy==1.19.5", None)),
        ("numpy==1.19.5", ("numpy==1.19.5", None)),
        ("numpy=1.19.*", ("numpy==1.19.*", None)),
        ("numpy>=1.16,<1.20", ("numpy>=1.16,<1.20", None)),
        ("numpy=1.19.5=py36h1bb4a1c_0", ("numpy==1.19.5", None)),
        ("numpy 1.19.* py36_0", ("numpy==1.19.*", None)),
        ("conda-forge::scikit-learn=0.22.1", ("scikit-learn==0.22.1", None)),
        ("pytorch=1.4", ("torch==1.4.*", None)),
        ("py-xgboost", ("xgboost", None)),
        ("tensorflow-gpu=2.4", ("tensorflow==2.4.*", None)),
        ("matplotlib-base", ("matplotlib", None)),
        ("python=3.6.2", (None, "3.6.2")),
        ("python", (None, None)),
        ("pip=20.1.1", (None, None)),
        ("setuptools", (None, None)),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_conda_entry_translation(entry: str, expected: tuple[str | None, str | None]) -> None:
    assert conda_to_pip(entry) == expected


@pytest.mark.parametrize("entry", ["numpy>=1.16|<1.10", "numpy[version='>=1.16']", "=1.2"])
def test_conda_entries_pip_cannot_express_are_refused(entry: str) -> None:
    with pytest.raises(ValidationError):
        conda_to_pip(entry)


def test_v1_conda_file_translates_and_notes_what_it_skipped() -> None:
    spec = EnvironmentSpec.from_conda_yaml("sklearn-env", V1_CONDA)
    assert spec.python == "3.6.2"
    assert spec.requirements == (
        "inference-schema[numpy-support]",
        "joblib",
        "numpy==1.19.*",
        "pandas<1.2,>=1.0",
        "scikit-learn==0.22.1",
        "torch",
        "xgboost==0.90.*",
    )
    notes = "\n".join(spec.notes)
    assert "azureml-defaults>=1.0.45" in notes
    assert "azureml-core==1.20.0" in notes
    assert "inference-schema" in notes and "1.8" in notes
    assert "'py-xgboost'" in notes and "'xgboost'" in notes


def test_conda_only_packages_are_refused_together_naming_each() -> None:
    text = "dependencies: [numpy, cudatoolkit=10.1, mkl, libgcc-ng, openmpi=4.0, r-base]\n"
    with pytest.raises(ValidationError) as info:
        EnvironmentSpec.from_conda_yaml("gpu", text)
    message = str(info.value)
    for name in ("cudatoolkit", "mkl", "libgcc-ng", "openmpi", "r-base"):
        assert name in message
    assert "numpy" not in message
    assert info.value.details == ["cudatoolkit", "libgcc-ng", "mkl", "openmpi", "r-base"]


def test_conda_variant_selectors_are_skipped_with_a_note() -> None:
    spec = EnvironmentSpec.from_conda_yaml("cpu", "dependencies: [pytorch, cpuonly]\n")
    assert spec.requirements == ("torch",)
    assert any("cpuonly" in n for n in spec.notes)


def test_conda_variables_become_env_vars() -> None:
    spec = EnvironmentSpec.from_conda_yaml("v", "dependencies: [six]\nvariables:\n  B: '2'\n  A: one\n")
    assert spec.env_vars == (("A", "one"), ("B", "2"))


@pytest.mark.parametrize(
    "text",
    ["dependencies: numpy", "- just\n- a list", "dependencies:\n  - {conda: x}", "dependencies: [\n"],
    ids=["deps-not-list", "not-mapping", "unknown-mapping", "bad-yaml"],
)
def test_malformed_conda_files_are_validation_errors(text: str) -> None:
    with pytest.raises(ValidationError):
        EnvironmentSpec.from_conda_yaml("bad", text)


def test_pip_requirements_text() -> None:
    text = (
        "# models\nscikit-learn == 1.4.2  # pinned\nNumPy>=1.26\n\n"
        "requests[socks,Security]; python_version >= '3.8'\n"
    )
    spec = EnvironmentSpec.from_pip_requirements("p", text)
    assert spec.requirements == (
        "numpy>=1.26",
        "requests[security,socks]; python_version >= '3.8'",
        "scikit-learn==1.4.2",
    )
    assert spec.python is None and not spec.inherit


@pytest.mark.parametrize("line", ["-r other.txt", "--extra-index-url https://x", "-e ."])
def test_pip_options_are_refused(line: str) -> None:
    with pytest.raises(ValidationError, match="pip option"):
        EnvironmentSpec.from_pip_requirements("p", f"six\n{line}\n")


@pytest.mark.parametrize("line", ["numpy===", "numpy >> 1", "!!!"])
def test_invalid_requirements_are_refused_quoting_the_line(line: str) -> None:
    with pytest.raises(ValidationError) as info:
        EnvironmentSpec.from_pip_requirements("p", line)
    assert line.strip() in str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Scikit_Learn==1.4.2", "scikit-learn==1.4.2"),
        ("numpy >= 1.26 , < 2", "numpy<2,>=1.26"),
        ("pkg @ https://example.org/pkg-1.0.whl", "pkg @ https://example.org/pkg-1.0.whl"),
        ("zope.interface", "zope-interface"),
    ],
)
def test_normalize_requirement(raw: str, expected: str) -> None:
    assert normalize_requirement(raw) == expected


def test_canonical_name_and_python_minor() -> None:
    assert canonical_name("Ruamel_Yaml..X") == "ruamel-yaml-x"
    assert python_minor("3.6.2") == "3.6"
    assert python_minor(">=3.8") == "3.8"
    assert python_minor(None) is None
    with pytest.raises(ValidationError):
        python_minor("three")


def test_hash_ignores_order_case_name_channels_and_env_vars() -> None:
    a = EnvironmentSpec.from_pip_requirements("a", "six\nNumPy==1.26.4\n")
    b = EnvironmentSpec.from_pip_requirements("b", "numpy==1.26.4\nsix\nsix\n")
    c = EnvironmentSpec.from_conda_yaml("c", "channels: [conda-forge]\ndependencies: [six, numpy==1.26.4]\n")
    assert len({s.content_hash("0.1.0", "3.11") for s in (a, b, c)}) == 1
    with_vars = EnvironmentSpec.from_dict({**a.to_dict(), "env_vars": {"X": "1"}})
    assert with_vars.content_hash("0.1.0", "3.11") == a.content_hash("0.1.0", "3.11")


def test_hash_is_stable_across_patch_versions_but_not_minor_or_content() -> None:
    spec = EnvironmentSpec.from_pip_requirements("a", "six\n")
    base = spec.content_hash("0.1.0", "3.11")
    assert spec.content_hash("0.1.9", "3.11") == base
    assert spec.content_hash("0.1.0.post1", "3.11") == base
    assert spec.content_hash("0.2.0", "3.11") != base
    assert spec.content_hash("0.1.0", "3.12") != base
    assert EnvironmentSpec.from_pip_requirements("a", "six==1.17.0").content_hash("0.1.0", "3.11") != base
    assert len(base) == 64 and int(base, 16) >= 0


def test_hash_uses_the_requested_minor_when_none_is_resolved() -> None:
    spec = EnvironmentSpec(name="x", python="3.12.1", requirements=())
    assert spec.content_hash("1.0.0") == spec.content_hash("1.0.0", "3.12")


def test_hash_is_pinned() -> None:
    # Changing this invalidates every cached environment on every machine: bump HASH_FORMAT on purpose.
    spec = EnvironmentSpec(name="other", python=None, requirements=("six",))
    pinned = "94c50d1d5756d1c476f0120e8a573c6628b008ccaa8dd8c82ceaa77f2f15a4dd"
    assert spec.content_hash("0.1.3", "3.11") == pinned


def test_dict_round_trip_is_json_able() -> None:
    spec = EnvironmentSpec.from_conda_yaml("rt", V1_CONDA + "variables:\n  K: v\n")
    data = json.loads(json.dumps(spec.to_dict()))
    again = EnvironmentSpec.from_dict(data)
    assert again == spec
    assert again.notes == spec.notes
    assert again.content_hash("0.1.0", "3.11") == spec.content_hash("0.1.0", "3.11")


def test_inherit_spec() -> None:
    spec = EnvironmentSpec.inherit_current("dev")
    assert spec.inherit and spec.requirements == ()
    plain = EnvironmentSpec("dev", None, ())
    assert spec.content_hash("0.1.0", "3.11") != plain.content_hash("0.1.0", "3.11")
    assert EnvironmentSpec.from_dict(spec.to_dict()).inherit


@pytest.mark.parametrize("data", [{}, {"name": "x", "requirements": ["!!"]}, {"name": "x", "python": "py3"}])
def test_from_dict_validates(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EnvironmentSpec.from_dict(data)
