"""The model registration manifest parser (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.control.models import parse_filters, parse_manifest
from modelhost.errors import ValidationError

SHA = "a" * 64


def manifest(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "m",
        "basename": "model",
        "is_dir": True,
        "files": [{"path": "model/a.bin", "sha256": SHA, "size": 3}],
    }
    return {**base, **changes}


def test_a_valid_folder_manifest() -> None:
    parsed = parse_manifest(manifest(tags={"k": "v", "n": 1}, framework="Onnx", framework_version="1.14"))
    assert parsed.name == "m" and parsed.is_dir and parsed.files[0].path == "model/a.bin"
    assert parsed.tags == {"k": "v", "n": "1"} and parsed.framework_version == "1.14"
    assert parse_manifest(
        manifest(
            is_dir=False,
            basename="m.pkl",
            files=[{"path": "m.pkl", "sha256": SHA, "size": 0, "executable": True}],
        )
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "-x"}, "Invalid model name"),
        ({"name": None}, "Invalid model name"),
        ({"basename": "a/b"}, "basename"),
        ({"basename": ".."}, "basename"),
        ({"is_dir": "yes"}, "is_dir"),
        ({"files": []}, "holds no files"),
        ({"files": [{"path": "model/../x", "sha256": SHA, "size": 1}]}, "Invalid file path"),
        ({"files": [{"path": "/etc/passwd", "sha256": SHA, "size": 1}]}, "Invalid file path"),
        ({"files": [{"path": "other/a", "sha256": SHA, "size": 1}]}, "outside the model folder"),
        ({"files": [{"path": "model", "sha256": SHA, "size": 1}]}, "outside the model folder"),
        ({"files": [{"path": "model/a", "sha256": "xyz", "size": 1}]}, "digest"),
        ({"files": [{"path": "model/a", "sha256": SHA, "size": -1}]}, "size"),
        ({"files": [{"path": "model/a", "sha256": SHA, "size": 1}] * 2}, "twice"),
        ({"framework_version": "1.0"}, "model_framework"),
        ({"tags": ["a"]}, "'tags' must be a mapping"),
        ({"description": 5}, "'description' must be a string"),
    ],
    ids=[
        "name",
        "no-name",
        "basename-slash",
        "basename-dots",
        "is-dir",
        "empty",
        "dotdot",
        "absolute",
        "outside",
        "dir-itself",
        "digest",
        "size",
        "duplicate",
        "framework-version",
        "tags",
        "description",
    ],
)
def test_bad_manifests_name_the_problem(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_manifest(manifest(**changes))


def test_a_file_model_holds_exactly_its_file() -> None:
    with pytest.raises(ValidationError, match="exactly its own file"):
        parse_manifest(
            manifest(is_dir=False, basename="m.pkl", files=[{"path": "other.pkl", "sha256": SHA, "size": 1}])
        )


def test_filters() -> None:
    assert parse_filters(["k", "k2=v", "k3=a=b", "k4="], "tag") == [
        "k",
        ["k2", "v"],
        ["k3", "a=b"],
        ["k4", ""],
    ]
    with pytest.raises(ValidationError, match="tag filter"):
        parse_filters(["=v"], "tag")
