"""Model.get_model_path's local lookup on real folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.scoring.model_path import (
    ModelNotFoundException,
    WebserviceException,
    get_model_path,
    models_dir,
)


def test_models_dir_follows_aml_app_root() -> None:
    assert models_dir("/var/azureml-app") == "/var/azureml-app/azureml-models"
    assert models_dir(None) == "azureml-models"


def test_latest_version_and_single_entry(tmp_path: Path) -> None:
    root = tmp_path / "azureml-models"
    for version in ("1", "2", "10"):
        (root / "m" / version).mkdir(parents=True)
        (root / "m" / version / f"model-{version}.pkl").write_text(version)
    assert get_model_path("m", root=str(root)) == str(root / "m" / "10" / "model-10.pkl")
    assert get_model_path("m", 2, root=str(root)) == str(root / "m" / "2" / "model-2.pkl")


def test_folder_model_returns_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "azureml-models"
    (root / "m" / "1" / "model").mkdir(parents=True)
    assert get_model_path("m", root=str(root)) == str(root / "m" / "1" / "model")


def test_more_than_one_entry_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "azureml-models"
    (root / "m" / "1").mkdir(parents=True)
    (root / "m" / "1" / "a").write_text("")
    (root / "m" / "1" / "b").write_text("")
    with pytest.raises(WebserviceException, match="can contain only 1 file or folder"):
        get_model_path("m", root=str(root))


def test_falls_back_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local.pkl").write_text("")
    assert get_model_path("local.pkl", root=str(tmp_path / "azureml-models")) == "local.pkl"
    with pytest.raises(ModelNotFoundException, match="Model absent not found in cache"):
        get_model_path("absent", root=str(tmp_path / "azureml-models"))


def test_version_must_be_an_int(tmp_path: Path) -> None:
    with pytest.raises(WebserviceException, match="version should be an int"):
        get_model_path("m", "1", root=str(tmp_path))  # type: ignore[arg-type]
