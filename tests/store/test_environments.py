"""Environment records: a new version only when the spec hash changes; build status transitions."""

from __future__ import annotations

import pytest

from modelhost.errors import NotFoundError, ValidationError
from modelhost.store import Store

from .conftest import row_counts

SPEC = {"python": "3.11", "pip": ["scikit-learn==1.4.2"], "env": {"A": "1"}}


def test_same_hash_same_version_new_hash_new_version(store: Store) -> None:
    first = store.save_environment(name="sk", spec=SPEC, spec_hash="h1")
    assert (first.version, first.status, first.spec, first.path) == (1, "building", SPEC, None)
    assert store.save_environment(name="sk", spec=SPEC, spec_hash="h1") == first
    second = store.save_environment(name="sk", spec={**SPEC, "pip": []}, spec_hash="h2")
    assert second.version == 2
    # going back to an older definition is a new version too, as v1 registers it
    assert store.save_environment(name="sk", spec=SPEC, spec_hash="h1").version == 3
    assert store.save_environment(name="other", spec=SPEC, spec_hash="h1").version == 1


def test_status_transitions_keep_unchanged_fields(ticking_store: Store) -> None:
    store = ticking_store
    env = store.save_environment(name="sk", spec=SPEC, spec_hash="h1")
    ready = store.set_environment_status(
        "sk", 1, status="ready", path="/envs/abc", python_version="3.11.7", log="built in 3 s"
    )
    assert (ready.status, ready.path, ready.python_version, ready.log) == (
        "ready",
        "/envs/abc",
        "3.11.7",
        "built in 3 s",
    )
    assert ready.created_time == env.created_time and ready.updated_time > env.updated_time
    failed = store.set_environment_status("sk", 1, status="failed", log="pip failed")
    assert (failed.status, failed.path, failed.log) == ("failed", "/envs/abc", "pip failed")
    assert store.get_environment("sk", 1) == failed
    assert failed.updated_time.tzinfo is not None


def test_get_list_and_lookup_by_hash(ticking_store: Store) -> None:
    store = ticking_store
    store.save_environment(name="b", spec=SPEC, spec_hash="h1")
    store.save_environment(name="a", spec=SPEC, spec_hash="h1")
    store.save_environment(name="a", spec={}, spec_hash="h2")
    assert store.get_environment("a").version == 2
    assert store.get_environment("a", 1).spec_hash == "h1"
    assert [(e.name, e.version) for e in store.list_environments()] == [("a", 2), ("a", 1), ("b", 1)]
    assert {(e.name, e.version) for e in store.environments_by_hash("h1")} == {("a", 1), ("b", 1)}
    store.set_environment_status("b", 1, status="ready")
    newest = store.environments_by_hash("h1")[0]
    assert (newest.name, newest.version, newest.status) == ("b", 1, "ready")
    assert store.environments_by_hash("nope") == []


def test_missing_environments_are_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="Environment ghost not found"):
        store.get_environment("ghost")
    store.save_environment(name="sk", spec=SPEC, spec_hash="h1")
    with pytest.raises(NotFoundError, match="sk version 7"):
        store.get_environment("sk", 7)
    with pytest.raises(NotFoundError):
        store.set_environment_status("sk", 7, status="ready")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": ""}, "Invalid environment name"),
        ({"name": " padded"}, "Invalid environment name"),
        ({"spec": {"x": object()}}, "not JSON-serializable"),
        ({"spec": ["not", "a", "mapping"]}, "expected a mapping"),
        ({"spec_hash": ""}, "spec_hash"),
    ],
    ids=["empty-name", "padded-name", "unserializable", "list-spec", "empty-hash"],
)
def test_invalid_environments_write_nothing(store: Store, kwargs: dict[str, object], match: str) -> None:
    before = row_counts(store)
    args: dict[str, object] = {"name": "sk", "spec": SPEC, "spec_hash": "h1", **kwargs}
    with pytest.raises(ValidationError, match=match):
        store.save_environment(**args)  # type: ignore[arg-type]
    assert row_counts(store) == before


def test_invalid_status_is_refused(store: Store) -> None:
    store.save_environment(name="sk", spec=SPEC, spec_hash="h1")
    with pytest.raises(ValidationError, match="'done'"):
        store.set_environment_status("sk", 1, status="done")
    assert store.get_environment("sk").status == "building"
