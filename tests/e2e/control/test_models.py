"""Models through the real control plane: register, version, filter, download, delete, bad input."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import httpx
import pytest

from modelhost.errors import ConflictError, ModelNotFoundError, ValidationError
from modelhost.sdk import Model, Workspace
from modelhost.store.metadata import Store
from tests.e2e.control.conftest import Home


def _tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under ``root``: relative path -> (content, executable)."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), bool(p.stat().st_mode & stat.S_IXUSR))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _blob_count(home: Home) -> int:
    return sum(1 for p in (home.settings.blobs_dir / "sha256").rglob("*") if p.is_file())


def _state(home: Home, ws: Workspace) -> tuple[list[str], int]:
    return sorted(m.id for m in Model.list(ws)), _blob_count(home)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(bytes(range(256)) * 1000 + os.urandom(100))
    return path


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    root = tmp_path / "resnet"
    (root / "weights" / "deep").mkdir(parents=True)
    (root / "config.json").write_text('{"layers": 50}')
    (root / "weights" / "w.bin").write_bytes(os.urandom(300_000))
    (root / "weights" / "deep" / "empty.txt").write_bytes(b"")
    tool = root / "run.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    return root


def test_file_model_versions_tags_and_download(
    ws: Workspace, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = Model.register(
        ws,
        model_file,
        "fm",
        tags={"stage": "dev"},
        properties={"acc": "0.9"},
        description="first",
        model_framework=Model.Framework.SCIKITLEARN,
        model_framework_version="1.4",
    )
    assert "Registering model fm" in capsys.readouterr().out
    sent: list[tuple[int, int]] = []
    second = Model.register(
        ws, model_file, "fm", tags={"stage": "prod"}, progress=lambda d, t: sent.append((d, t))
    )
    assert (first.version, second.version) == (1, 2)
    assert sent == [(0, 0)]  # identical content: no byte uploaded again
    assert first.id == "fm:1" and first.basename == "model.pkl" and not first.is_dir
    assert first.model_framework == "ScikitLearn" and first.model_framework_version == "1.4"
    assert first.url.endswith("/api/v1/models/fm/1") and first.created_time is not None

    assert Model(ws, "fm").version == 2
    assert Model(ws, id="fm:1").description == "first"
    assert Model(ws, name="fm", tags=[["stage", "dev"]]).version == 1
    assert [m.id for m in Model.list(ws, name="fm", tags=["stage"])] == ["fm:2", "fm:1"]
    assert [m.id for m in Model.list(ws, tags=[["stage", "prod"]])] == ["fm:2"]
    assert [m.id for m in Model.list(ws, properties=[["acc", "0.9"]])] == ["fm:1"]
    assert [m.id for m in Model.list(ws, name="fm", latest=True)] == ["fm:2"]
    assert [m.id for m in Model.list(ws, name="fm", model_framework="ScikitLearn")] == ["fm:1"]

    path = Path(first.download(tmp_path / "out"))
    assert path == tmp_path / "out" / "model.pkl"
    assert path.read_bytes() == model_file.read_bytes()
    with pytest.raises(ConflictError):
        first.download(tmp_path / "out")
    assert Path(first.download(tmp_path / "out", exist_ok=True)).read_bytes() == model_file.read_bytes()

    first.add_tags({"owner": "me"})
    first.remove_tags(["stage"])
    assert Model(ws, id="fm:1").tags == {"owner": "me"}
    assert "fm" in ws.models and ws.models["fm"].version == 2


def test_folder_model_round_trip_is_byte_identical(ws: Workspace, model_folder: Path, tmp_path: Path) -> None:
    model = Model.register(ws, model_folder, "folder-model")
    assert model.is_dir and model.basename == "resnet"
    assert sorted(f["path"] for f in model.files) == [
        "resnet/config.json",
        "resnet/run.sh",
        "resnet/weights/deep/empty.txt",
        "resnet/weights/w.bin",
    ]
    path = Path(Model(ws, "folder-model").download(tmp_path / "dl"))
    assert path == tmp_path / "dl" / "resnet"
    assert _tree(path) == _tree(model_folder)
    assert _tree(path)["run.sh"][1] is True

    subset = Model.register(ws, model_folder, "folder-model", child_paths=["config.json"])
    assert subset.version == 2 and [f["path"] for f in subset.files] == ["resnet/config.json"]


def test_delete_and_delete_refused_while_in_use(ws: Workspace, shared_home: Home, model_file: Path) -> None:
    a = Model.register(ws, model_file, "del-me")
    b = Model.register(ws, model_file, "del-me")
    with Store.open(shared_home.settings.database_url) as store:
        store.set_service_models("svc-one", [("del-me", b.version)])
    with pytest.raises(ConflictError, match="svc-one"):
        b.delete()
    a.delete()
    assert [m.id for m in Model.list(ws, name="del-me")] == ["del-me:2"]
    with pytest.raises(ModelNotFoundError):
        Model(ws, id="del-me:1")
    with Store.open(shared_home.settings.database_url) as store:
        store.clear_service_models("svc-one")
    b.delete()
    assert Model.list(ws, name="del-me") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_name": "-bad"}, "Invalid model name"),
        ({"model_name": "a" * 300}, "Invalid model name"),
        ({"model_path": "does/not/exist"}, "does not exist"),
        ({"model_framework_version": "1.0"}, "model_framework"),
        ({"datasets": [("train", object())]}, "datasets"),
    ],
    ids=["name-start", "name-long", "missing-path", "framework-version-alone", "datasets"],
)
def test_bad_registration_changes_nothing(
    ws: Workspace, shared_home: Home, model_file: Path, kwargs: dict[str, object], message: str
) -> None:
    before = _state(shared_home, ws)
    args: dict[str, object] = {"model_path": model_file, "model_name": "good-name", **kwargs}
    with pytest.raises(ValidationError, match=message) as caught:
        Model.register(ws, **args)  # type: ignore[arg-type]
    assert caught.value.hint
    assert _state(shared_home, ws) == before


def test_unsupported_v1_calls_raise_naming_the_call(ws: Workspace) -> None:
    for call in (Model.profile, Model.package):
        with pytest.raises(ValidationError, match=r"Model\.\w+ is not supported"):
            call(ws, "x")
    with pytest.raises(ValidationError, match="get_model_path"):
        Model.get_model_path("m")


def test_the_api_validates_manifests_and_blobs(ws: Workspace, shared_home: Home) -> None:
    client = httpx.Client(base_url=ws.url, headers={"Authorization": f"Bearer {_token(shared_home)}"})
    with client:
        before = _state(shared_home, ws)
        content = b"some model bytes"
        digest = hashlib.sha256(content).hexdigest()
        wrong = client.put(f"/api/v1/blobs/{'0' * 64}", content=content)
        assert wrong.status_code == 400 and "digest mismatch" in wrong.json()["error"]["message"]
        manifest = {
            "name": "api-model",
            "basename": "m.bin",
            "is_dir": False,
            "files": [{"path": "m.bin", "sha256": digest, "size": len(content)}],
        }
        not_uploaded = client.post("/api/v1/models", json=manifest)
        assert (
            not_uploaded.status_code == 400 and "was not uploaded" in not_uploaded.json()["error"]["message"]
        )
        escape = client.post(
            "/api/v1/models",
            json={
                **manifest,
                "is_dir": True,
                "basename": "d",
                "files": [{"path": "d/../x", "sha256": digest, "size": 1}],
            },
        )
        assert escape.status_code == 400
        bad_name = client.post("/api/v1/models", json={**manifest, "name": "no spaces"})
        assert bad_name.status_code == 400 and bad_name.json()["error"]["code"] == "invalid_input"
        assert client.post("/api/v1/models", content=b"{not json").status_code == 400
        assert _state(shared_home, ws) == before

        assert client.post("/api/v1/blobs/missing", json={"digests": [digest]}).json() == {
            "missing": [digest]
        }
        assert client.put(f"/api/v1/blobs/{digest}", content=content).status_code == 201
        assert client.post("/api/v1/blobs/missing", json={"digests": [digest]}).json() == {"missing": []}
        assert client.get(f"/api/v1/blobs/{digest}").content == content
        created = client.post("/api/v1/models", json=manifest)
        assert created.status_code == 201 and created.json()["id"] == "api-model:1"
        assert client.get("/api/v1/models/api-model/9").json()["error"]["code"] == "model_not_found"


def _token(home: Home) -> str:
    from modelhost.control.discovery import load_or_create_token

    return load_or_create_token(home.settings.home)


def test_cli_model_commands(shared_home: Home, model_folder: Path, tmp_path: Path) -> None:
    reg = shared_home.cli(
        "model",
        "register",
        str(model_folder),
        "--name",
        "cli-model",
        "--tag",
        "team=ml",
        "--property",
        "source=cli",
        "--framework",
        "Custom",
    )
    assert reg.returncode == 0, reg.stderr
    assert "Registered model cli-model:1" in reg.stdout
    assert "uploading resnet" in reg.stderr  # the byte progress bar

    listing = shared_home.cli("model", "list", "--name", "cli-model", "--tag", "team=ml")
    assert listing.returncode == 0 and "cli-model" in listing.stdout and "team=ml" in listing.stdout
    shown = shared_home.cli("model", "show", "cli-model:1")
    assert shown.returncode == 0 and "resnet/weights/w.bin" in shown.stdout and "source=cli" in shown.stdout

    target = tmp_path / "cli-dl"
    down = shared_home.cli("model", "download", "cli-model", "--target-dir", str(target))
    assert down.returncode == 0, down.stderr
    assert _tree(target / "resnet") == _tree(model_folder)
    again = shared_home.cli("model", "download", "cli-model", "--target-dir", str(target))
    assert again.returncode == 1 and "already exists" in again.stderr

    assert shared_home.cli("model", "delete", "cli-model:1").returncode == 0
    gone = shared_home.cli("model", "show", "cli-model")
    assert gone.returncode == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model", "show", "unknown-model"], "ModelNotFound"),
        (["model", "show", "bad name"], "Invalid model name"),
        (["model", "register", "missing.pkl", "--name", "m"], "does not exist"),
        (["model", "register", "{file}", "--name", "-x"], "Invalid model name"),
        (["model", "register", "{file}", "--name", "m", "--framework-version", "1"], "model_framework"),
        (["model", "register", "{file}", "--name", "m", "--tag", "novalue"], "KEY=VALUE"),
        (["model", "delete", "m"], "Give the version"),
        (["model", "list", "--tag", "=x"], "Invalid tag filter"),
    ],
    ids=[
        "unknown",
        "bad-id",
        "missing-path",
        "bad-name",
        "framework-version",
        "bad-tag",
        "delete-no-version",
        "bad-filter",
    ],
)
def test_cli_bad_input_is_one_line_and_changes_nothing(
    shared_home: Home, ws: Workspace, model_file: Path, args: list[str], message: str
) -> None:
    before = _state(shared_home, ws)
    result = shared_home.cli(*[a.replace("{file}", str(model_file)) for a in args])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert _state(shared_home, ws) == before
