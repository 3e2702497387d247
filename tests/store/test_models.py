"""Model registry with v1 semantics, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from modelhost.errors import ConflictError, ModelNotFoundError, ValidationError
from modelhost.spec.names import MODEL_NAME_PATTERN
from modelhost.store import ModelFile, ModelRecord, Store
from modelhost.store import schema as t

from .conftest import row_counts

A, B, C = "a" * 64, "b" * 64, "c" * 64


def register_file(
    store: Store, name: str = "m", basename: str = "model.pkl", **kwargs: object
) -> ModelRecord:
    return store.register_model(
        name=name,
        basename=basename,
        is_dir=False,
        files=[ModelFile(basename, A, 10)],
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_file_model_keeps_its_basename(store: Store) -> None:
    model = register_file(
        store,
        tags={"stage": "dev"},
        properties={"auc": "0.9"},
        description="first",
        framework="ScikitLearn",
        framework_version="1.4",
    )
    assert (model.name, model.version, model.id) == ("m", 1, "m:1")
    assert (model.basename, model.is_dir, model.size) == ("model.pkl", False, 10)
    assert model.files == (ModelFile("model.pkl", A, 10),)
    assert store.get_model("m") == model
    assert model.created_time.tzinfo is not None and model.created_time.utcoffset() == timedelta(0)


def test_a_folder_model_keeps_its_top_folder(store: Store) -> None:
    files = [ModelFile("model/sub/w.bin", B, 5, executable=True), ModelFile("model/config.json", C, 2)]
    model = store.register_model(name="m", basename="model", is_dir=True, files=files)
    assert model.is_dir and model.basename == "model" and model.size == 7
    assert [f.path for f in model.files] == ["model/config.json", "model/sub/w.bin"]
    assert store.get_model("m", 1).files == model.files
    assert store.get_model("m", 1).files[1].executable


def test_versions_increment_per_name(store: Store) -> None:
    assert [register_file(store, "m").version for _ in range(3)] == [1, 2, 3]
    assert register_file(store, "other").version == 1
    assert store.get_model("m").version == 3
    assert store.get_model("m", 2).version == 2


def test_a_deleted_version_number_is_never_handed_out_again(store: Store) -> None:
    register_file(store)
    register_file(store)
    store.delete_model("m", 2)
    assert register_file(store).version == 3
    store.delete_model("m", 1)
    store.delete_model("m", 3)
    assert register_file(store).version == 4


def test_unknown_models_use_v1_wording(store: Store) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        store.get_model("nope")
    assert caught.value.message == "ModelNotFound: Model with name nope not found in provided workspace"
    register_file(store, "m")
    with pytest.raises(ModelNotFoundError) as caught:
        store.get_model("m", 2)
    assert (
        caught.value.message
        == "ModelNotFound: Model with name m and version 2 not found in provided workspace"
    )
    assert caught.value.status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "-bad"}, "'-bad'"),
        ({"name": "a" * 256}, "must match"),
        ({"basename": "a/b"}, "Invalid model basename"),
        ({"files": [ModelFile("other.pkl", A, 1)]}, "exactly one file"),
        ({"files": [ModelFile("model.pkl", "A" * 64, 1)]}, "Invalid sha256"),
        ({"files": [ModelFile("model.pkl", A, -1)]}, "Invalid size"),
        ({"files": []}, "exactly one file"),
        ({"tags": {"k": 1}}, "Invalid tags"),
        ({"properties": {"": "v"}}, "Invalid properties"),
        ({"framework_version": "1.0"}, "without model_framework"),
        ({"description": 5}, "Invalid description"),
    ],
    ids=[
        "bad-name",
        "long-name",
        "basename-slash",
        "path-not-basename",
        "upper-digest",
        "negative-size",
        "no-file",
        "int-tag",
        "empty-property-key",
        "version-without-framework",
        "int-description",
    ],
)
def test_invalid_registrations_write_nothing(store: Store, kwargs: dict[str, object], match: str) -> None:
    register_file(store)
    before = row_counts(store)
    args: dict[str, object] = {
        "name": "m",
        "basename": "model.pkl",
        "is_dir": False,
        "files": [ModelFile("model.pkl", A, 1)],
        **kwargs,
    }
    with pytest.raises(ValidationError, match=match):
        store.register_model(**args)  # type: ignore[arg-type]
    assert row_counts(store) == before
    assert register_file(store).version == 2  # the failed call consumed no version


def test_the_name_error_quotes_name_and_rule(store: Store) -> None:
    with pytest.raises(ValidationError) as caught:
        register_file(store, "bad name")
    assert "'bad name'" in caught.value.message and MODEL_NAME_PATTERN in caught.value.message


@pytest.mark.parametrize(
    "files",
    [
        [ModelFile("other/x", A, 1)],
        [ModelFile("model/../x", A, 1)],
        [ModelFile("model//x", A, 1)],
        [ModelFile("/model/x", A, 1)],
        [ModelFile("model/x", A, 1), ModelFile("model/x", B, 1)],
        [ModelFile("model/x", A, 1), ModelFile("model/x/y", B, 1)],
        [ModelFile("model", A, 1)],
    ],
    ids=["outside", "dotdot", "empty-segment", "absolute", "duplicate", "file-and-folder", "folder-itself"],
)
def test_invalid_folder_manifests(store: Store, files: list[ModelFile]) -> None:
    with pytest.raises(ValidationError):
        store.register_model(name="m", basename="model", is_dir=True, files=files)
    assert row_counts(store)["models"] == 0


def test_list_is_newest_first_with_name_and_framework_filters(ticking_store: Store) -> None:
    store = ticking_store
    register_file(store, "a", framework="Onnx")
    register_file(store, "b")
    register_file(store, "a")
    assert [m.id for m in store.list_models()] == ["a:2", "b:1", "a:1"]
    assert [m.id for m in store.list_models(name="a")] == ["a:2", "a:1"]
    assert [m.id for m in store.list_models(framework="Onnx")] == ["a:1"]
    assert [m.id for m in store.list_models(latest=True)] == ["a:2", "b:1"]
    assert store.list_models(name="nothing") == []


def test_list_filters_by_tags_and_properties_v1_style(ticking_store: Store) -> None:
    store = ticking_store
    register_file(store, "a", tags={"stage": "prod", "team": "x"}, properties={"auc": "0.9"})
    register_file(store, "a", tags={"stage": "dev"})
    register_file(store, "b", tags={"stage": "prod"}, properties={"auc": "0.8"})
    ids = lambda **kw: [m.id for m in store.list_models(**kw)]  # noqa: E731
    assert ids(tags=["stage"]) == ["b:1", "a:2", "a:1"]
    assert ids(tags=[["stage", "prod"]]) == ["b:1", "a:1"]
    assert ids(tags=[("stage", "prod"), "team"]) == ["a:1"]
    assert ids(tags=["missing"]) == []
    assert ids(properties=[["auc", "0.8"]]) == ["b:1"]
    assert ids(properties=["auc"], tags=[["stage", "prod"]]) == ["b:1", "a:1"]
    # latest applies to the matches: the newest prod version of each name
    assert ids(tags=[["stage", "prod"]], latest=True) == ["b:1", "a:1"]
    assert ids(tags=[["stage", "dev"]], latest=True) == ["a:2"]


@pytest.mark.parametrize(
    "tags", ["stage", [["a", "b", "c"]], [3], [["a", 1]]], ids=["bare-string", "triple", "int", "int-value"]
)
def test_malformed_list_filters_are_refused(store: Store, tags: object) -> None:
    with pytest.raises(ValidationError, match="Invalid tags filter"):
        store.list_models(tags=tags)  # type: ignore[arg-type]


def test_delete_removes_the_version_and_its_rows(store: Store) -> None:
    register_file(store, tags={"k": "v"}, properties={"p": "q"})
    register_file(store)
    store.delete_model("m", 1)
    assert [m.id for m in store.list_models()] == ["m:2"]
    counts = row_counts(store)
    assert (counts["models"], counts["model_files"], counts["model_tags"], counts["model_properties"]) == (
        1,
        1,
        0,
        0,
    )
    with pytest.raises(ModelNotFoundError, match="name m and version 1 not found"):
        store.delete_model("m", 1)


def test_delete_is_refused_while_a_service_uses_the_model(store: Store) -> None:
    register_file(store)
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(t.service_models).values(service_name="svc-a", model_name="m", model_version=1)
        )
    before = row_counts(store)
    with pytest.raises(ConflictError, match="svc-a") as caught:
        store.delete_model("m", 1)
    assert caught.value.status_code == 409
    assert row_counts(store) == before
    assert store.models_in_use() == {("m", 1)}
    store.clear_service_models("svc-a")
    store.delete_model("m", 1)
    assert store.list_models() == []


def test_service_models_bookkeeping(store: Store) -> None:
    register_file(store, "a")
    register_file(store, "b")
    store.set_service_models("svc-one", [("a", 1), ("b", 1)])
    store.set_service_models("svc-two", [("a", 1)])
    assert store.services_using_model("a", 1) == ["svc-one", "svc-two"]
    store.set_service_models("svc-one", [("b", 1)])
    assert store.models_in_use() == {("a", 1), ("b", 1)}
    with pytest.raises(ModelNotFoundError):
        store.set_service_models("svc-one", [("a", 1), ("ghost", 1)])
    assert store.services_using_model("b", 1) == ["svc-one"]  # the refused call changed nothing
    with pytest.raises(ValidationError):
        store.set_service_models("Bad_Name", [("a", 1)])


def test_update_tags_adds_overwrites_and_removes(store: Store) -> None:
    register_file(store, tags={"a": "1", "b": "2"})
    model = store.update_model_tags("m", 1, add={"b": "3", "c": "4"}, remove=["a", "absent"])
    assert model.tags == {"b": "3", "c": "4"}
    assert store.get_model("m", 1).tags == {"b": "3", "c": "4"}
    with pytest.raises(ModelNotFoundError):
        store.update_model_tags("m", 9, add={"x": "y"})
    with pytest.raises(ValidationError):
        store.update_model_tags("m", 1, remove="b")  # type: ignore[arg-type]
    assert store.get_model("m", 1).tags == {"b": "3", "c": "4"}


def test_properties_are_add_only(store: Store) -> None:
    register_file(store, properties={"p": "1"})
    assert store.add_model_properties("m", 1, {"p": "1", "q": "2"}).properties == {"p": "1", "q": "2"}
    with pytest.raises(ConflictError, match="'p'"):
        store.add_model_properties("m", 1, {"p": "changed", "r": "3"})
    assert store.get_model("m", 1).properties == {"p": "1", "q": "2"}


def test_update_description(store: Store) -> None:
    register_file(store, description="old")
    assert store.update_model_description("m", 1, "new").description == "new"
    assert store.get_model("m").description == "new"


@pytest.mark.parametrize("version", [0, -1, "1", True])
def test_bad_versions_are_validation_errors(store: Store, version: object) -> None:
    with pytest.raises(ValidationError):
        store.get_model("m", version)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        store.delete_model("m", version)  # type: ignore[arg-type]
