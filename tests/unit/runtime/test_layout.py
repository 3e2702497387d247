"""Replica folders laid out as v1's containers were (real files, no processes)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from modelhost.build.snapshot import extract_snapshot, make_snapshot
from modelhost.errors import EntryScriptError, ValidationError
from modelhost.runtime.base import ModelFileSpec, ModelSpec, ServiceDeployment
from modelhost.runtime.layout import keep_outputs, model_dir, prepare_replica, remove_folder, replica_env
from modelhost.store.artifacts import ArtifactStore
from modelhost.types import ServiceName


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "blobs")


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    src = tmp_path / "project"
    (src / "pkg").mkdir(parents=True)
    (src / "score.py").write_text("def init(): pass\ndef run(x): return x\n")
    (src / "pkg" / "util.py").write_text("X = 1\n")
    return make_snapshot(src, "score.py", tmp_path / "snapshots").path


def _deployment(snapshot: Path | None, models: tuple[ModelSpec, ...] = (), **kw: object) -> ServiceDeployment:
    return ServiceDeployment(
        service=ServiceName("svc"),
        generation=1,
        python=Path("/usr/bin/python3"),
        entry_script=str(kw.pop("entry_script", "score.py")),
        source_dir="src",
        snapshot=snapshot,
        models=models,
        **kw,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "/r/azureml-models"), (1, "/r/azureml-models/m0/7"), (2, "/r/azureml-models")],
)
def test_model_dir(count: int, expected: str) -> None:
    models = tuple(ModelSpec(f"m{i}", 7, ()) for i in range(count))
    assert str(model_dir(Path("/r"), models)) == expected


def test_layout_of_one_model(tmp_path: Path, store: ArtifactStore, snapshot: Path) -> None:
    digest = store.put_bytes(b"weights")
    model = ModelSpec("m", 2, (ModelFileSpec("model/w.bin", sha256=digest),))
    folder = tmp_path / "replicas" / "svc" / "r1"
    layout = prepare_replica(_deployment(snapshot, (model,)), folder, store, extract_snapshot)
    assert layout.app_root == folder
    assert layout.entry_script == folder / "src" / "score.py"
    assert (folder / "src" / "pkg" / "util.py").read_text() == "X = 1\n"
    placed = folder / "azureml-models" / "m" / "2" / "model" / "w.bin"
    assert placed.read_bytes() == b"weights"
    assert placed.stat().st_ino == store.path(digest).stat().st_ino  # a hard link, not a copy
    assert layout.outputs.is_dir()
    env = replica_env(
        _deployment(snapshot, (model,), scoring_timeout_ms=5000), layout, "r1", {"PATH": "/bin"}
    )
    assert env["AZUREML_MODEL_DIR"] == str(folder / "azureml-models" / "m" / "2")
    assert env["AML_APP_ROOT"] == str(folder)
    assert env["AZUREML_ENTRY_SCRIPT"] == "src/score.py"
    assert env["AZUREML_SOURCE_DIRECTORY"] == "src"
    assert env["SCORING_TIMEOUT_MS"] == "5000"
    assert env["MODELHOST_MAX_CONCURRENT_REQUESTS"] == "1"
    assert env["PATH"] == "/bin"


def test_deployment_env_cannot_move_the_model_dir(tmp_path: Path, snapshot: Path) -> None:
    d = _deployment(snapshot, env={"AZUREML_MODEL_DIR": "/elsewhere", "MY_VAR": "1"})
    layout = prepare_replica(d, tmp_path / "r", None, extract_snapshot)
    env = replica_env(d, layout, "r", {})
    assert env["AZUREML_MODEL_DIR"] == str(tmp_path / "r" / "azureml-models")
    assert env["MY_VAR"] == "1"


def test_a_thousand_models_are_laid_out_quickly(tmp_path: Path, store: ArtifactStore, snapshot: Path) -> None:
    models = tuple(
        ModelSpec(f"model-{i}", 1, (ModelFileSpec("model.pkl", sha256=store.put_bytes(b"%d" % i)),))
        for i in range(1000)
    )
    start = time.monotonic()
    layout = prepare_replica(_deployment(snapshot, models), tmp_path / "r", store, extract_snapshot)
    elapsed = time.monotonic() - start
    assert (layout.model_dir / "model-999" / "1" / "model.pkl").read_bytes() == b"999"
    assert len(list(layout.model_dir.iterdir())) == 1000
    assert elapsed < 30, f"laying out 1,000 models took {elapsed:.1f} s"
    start = time.monotonic()
    remove_folder(layout.folder)
    assert not layout.folder.exists()
    assert store.path(models[0].files[0].sha256 or "").is_file()  # removing links leaves the blobs


def test_a_lone_script_without_snapshot(tmp_path: Path) -> None:
    script = tmp_path / "my_score.py"
    script.write_text("def init(): pass\n")
    d = _deployment(None, entry_script=str(script))
    layout = prepare_replica(d, tmp_path / "r", None, extract_snapshot)
    assert layout.entry_script == tmp_path / "r" / "src" / "my_score.py"
    assert layout.entry_script.read_text() == "def init(): pass\n"
    assert replica_env(d, layout, "r", {})["AZUREML_ENTRY_SCRIPT"] == "src/my_score.py"


def test_file_models_from_a_source_path(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("")
    blob = tmp_path / "model.onnx"
    blob.write_bytes(b"onnx")
    model = ModelSpec(
        "onnx",
        0,
        (ModelFileSpec("model.onnx", source=blob), ModelFileSpec("run.sh", source=script, executable=True)),
    )
    layout = prepare_replica(
        _deployment(None, (model,), entry_script=str(script)), tmp_path / "r", None, extract_snapshot
    )
    assert (layout.model_dir / "model.onnx").stat().st_ino == blob.stat().st_ino
    assert os.access(layout.model_dir / "run.sh", os.X_OK)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"entry_script": "missing.py"}, EntryScriptError, "not in the snapshot"),
        ({"entry_script": "../score.py"}, ValidationError, "entry_script '../score.py'"),
        (
            {"models": (ModelSpec("m", 1, (ModelFileSpec("../x", sha256="0" * 64),)),)},
            ValidationError,
            "file of model",
        ),
        ({"models": (ModelSpec("m", 1, (ModelFileSpec("x"),)),)}, ValidationError, "exactly one of"),
        ({"models": (ModelSpec("a/b", 1, ()),)}, ValidationError, "invalid name"),
    ],
    ids=["missing-entry", "escaping-entry", "escaping-model-file", "no-source", "bad-model-name"],
)
def test_bad_specs_leave_nothing_behind(
    tmp_path: Path, snapshot: Path, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    models = kwargs.pop("models", ())
    with pytest.raises(error, match=match):
        prepare_replica(_deployment(snapshot, models, **kwargs), tmp_path / "r", None, extract_snapshot)  # type: ignore[arg-type]
    assert not (tmp_path / "r").exists()


def test_outputs_are_kept_and_read_only_folders_removed(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    (folder / "outputs" / "sub").mkdir(parents=True)
    (folder / "outputs" / "sub" / "a.txt").write_text("a")
    locked = folder / "locked"
    locked.mkdir()
    (locked / "f").write_text("x")
    locked.chmod(0o555)
    keep_outputs(folder, tmp_path / "kept")
    remove_folder(folder)
    assert (tmp_path / "kept" / "sub" / "a.txt").read_text() == "a"
    assert not folder.exists()
