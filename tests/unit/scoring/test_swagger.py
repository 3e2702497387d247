"""Swagger documents: generated from v1's templates, user files first, v1's error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema

from modelhost.scoring.swagger import SwaggerError, build_swagger_docs, generate_swagger


def _plain_run(data: str) -> str:
    return data


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
def _numpy_run(data: object) -> object:
    return data


@input_schema("mixed", StandardPythonParameterType([1, "a"]))
def _mixed_run(mixed: object) -> object:
    return mixed


def _build(run: object, root: Path, **kw: str) -> object:
    return build_swagger_docs(
        run,
        app_root=str(root),
        service_name=kw.get("name", "svc"),  # type: ignore[arg-type]
        service_version="1.0",
        path_prefix=kw.get("prefix", ""),
    )


def test_undecorated_run_gets_empty_object_schemas(tmp_path: Path) -> None:
    docs = _build(_plain_run, tmp_path)
    v2 = json.loads(docs.get("2"))  # type: ignore[attr-defined]
    assert v2["definitions"]["ServiceInput"] == {"type": "object", "example": {}}
    assert v2["info"] == {
        "title": "svc",
        "description": "API specification for the Azure Machine Learning service svc",
        "version": "1.0",
    }
    assert list(v2["paths"]) == ["/", "/score", "/swagger.json"]
    assert json.loads(docs.get("3.1"))["openapi"] == "3.1.0"  # type: ignore[attr-defined]
    assert docs.get("2.0") == docs.get("2")  # type: ignore[attr-defined]


def test_decorated_schema_and_path_prefix(tmp_path: Path) -> None:
    docs = _build(_numpy_run, tmp_path, prefix="/api/v1/service/svc/")
    v3 = json.loads(docs.get("3"))  # type: ignore[attr-defined]
    assert list(v3["paths"]) == [
        "/api/v1/service/svc/",
        "/api/v1/service/svc/score",
        "/api/v1/service/svc/swagger.json",
    ]
    assert v3["components"]["schemas"]["ServiceInput"]["properties"]["data"]["format"] == "numpy.ndarray"


def test_versions_the_decorators_cannot_describe_are_skipped(tmp_path: Path) -> None:
    docs = _build(_mixed_run, tmp_path)
    assert docs.supported == ("3", "3.1")  # type: ignore[attr-defined]
    with pytest.raises(SwaggerError) as info:
        docs.get("2")  # type: ignore[attr-defined]
    assert info.value.message == (
        "Swagger version [2] is not supported for the scoring script. Supported swagger versions: [3, 3.1]."
    )
    with pytest.raises(
        SwaggerError, match=r"Swagger version \[4\] is not valid. Supported versions: \[3, 3.1\]."
    ):
        docs.get("4")  # type: ignore[attr-defined]


def test_user_files_win(tmp_path: Path) -> None:
    (tmp_path / "swagger2.json").write_text('{"mine": 2}')
    (tmp_path / "swagger3.1.json").write_text('{"mine": 31}')
    docs = _build(_plain_run, tmp_path)
    assert json.loads(docs.get("2")) == {"mine": 2}  # type: ignore[attr-defined]
    assert json.loads(docs.get("3.1")) == {"mine": 31}  # type: ignore[attr-defined]
    assert json.loads(docs.get("3"))["openapi"] == "3.0.3"  # type: ignore[attr-defined]


def test_generate_fills_the_template() -> None:
    spec = generate_swagger("2", {"in": 1}, {"out": 1}, service_name="n", service_version="9", path_prefix="")
    assert spec["definitions"]["ServiceInput"] == {"in": 1}
    assert spec["info"]["version"] == "9"
