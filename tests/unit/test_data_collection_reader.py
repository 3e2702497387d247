"""Reading collected model data back: partitions, header union, filters, formats (real files)."""

from __future__ import annotations

import csv
import datetime
import io
import json
from pathlib import Path

import pytest

from modelhost.control import data_collection as dc
from modelhost.errors import ValidationError


def _write(root: Path, rel: str, lines: list[str]) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\r\n" for line in lines))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _write(tmp_path, "svc/m/1/inputs/2026/11/22/data-r1-10.csv", ["a,b", "1,2", "3,4"])
    _write(tmp_path, "svc/m/1/inputs/2026/11/23/data-r2-11.csv", ["a,c", "5,6"])
    _write(tmp_path, "svc/m/1/predictions/2026/11/23/data-r1-10.csv", ["p", "0.5"])
    _write(tmp_path, "svc/other/2/inputs/2026/11/23/data-r1-10.csv", ["a", "9"])
    _write(tmp_path, "svc/m/1/inputs/2026/11/23/notes.txt", ["not data"])
    _write(tmp_path, "svc/m/1/inputs/bad/11/23/data.csv", ["a", "1"])  # not a date: ignored
    _write(tmp_path, "svc2/m/1/inputs/2026/11/23/data.csv", ["a", "7"])
    return tmp_path


def _csv(root: Path, query: dc.ExportQuery) -> list[dict[str, str]]:
    text = b"".join(dc.export(root, "svc", query)).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_partitions_count_files_rows_and_bytes(root: Path) -> None:
    parts = dc.partition_summaries(dc.list_partitions(root, "svc"))
    keys = ("model", "version", "designation", "date", "files", "rows")
    assert [tuple(p[k] for k in keys) for p in parts] == [
        ("m", "1", "inputs", "2026-11-22", 1, 2),
        ("m", "1", "inputs", "2026-11-23", 1, 1),
        ("m", "1", "predictions", "2026-11-23", 1, 1),
        ("other", "2", "inputs", "2026-11-23", 1, 1),
    ]
    assert all(p["bytes"] > 0 for p in parts)
    assert dc.list_partitions(root, "absent") == []


def test_export_merges_files_under_one_header(root: Path) -> None:
    text = b"".join(dc.export(root, "svc", dc.ExportQuery())).decode()
    assert text.splitlines()[0] == "$model,$model_version,$designation,a,b,c,p"
    rows = _csv(root, dc.ExportQuery())
    assert len(rows) == 5
    assert rows[0] == {"$model": "m", "$model_version": "1", "$designation": "inputs", "a": "1", "b": "2",
                       "c": "", "p": ""}
    assert rows[2]["c"] == "6" and rows[2]["b"] == ""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(dc.ExportQuery(model="m"), 4, id="model"),
        pytest.param(dc.ExportQuery(designation="predictions"), 1, id="designation"),
        pytest.param(dc.ExportQuery(since=datetime.date(2026, 11, 23)), 3, id="since"),
        pytest.param(dc.ExportQuery(model="m", designation="inputs", since=datetime.date(2026, 11, 23)), 1,
                     id="all-three"),
        pytest.param(dc.ExportQuery(model="none"), 0, id="nothing"),
    ],
)
def test_export_filters(root: Path, query: dc.ExportQuery, expected: int) -> None:
    assert len(_csv(root, query)) == expected


def test_jsonl_export(root: Path) -> None:
    lines = b"".join(dc.export(root, "svc", dc.ExportQuery(designation="predictions", format="jsonl")))
    assert [json.loads(line) for line in lines.decode().splitlines()] == [
        {"$model": "m", "$model_version": "1", "$designation": "predictions", "p": "0.5"}]


def test_parquet_needs_pyarrow_or_says_so(root: Path) -> None:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(ValidationError, match="pyarrow") as caught:
            dc.export(root, "svc", dc.ExportQuery(format="parquet"))
        assert "--format csv" in caught.value.hint
        return
    data = b"".join(dc.export(root, "svc", dc.ExportQuery(format="parquet")))
    assert pq.read_table(io.BytesIO(data)).num_rows == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param((None, None, None, "xml"), "Export format 'xml' is not supported", id="format"),
        pytest.param((None, None, "yesterday", None), "since='yesterday' is not a date", id="since"),
    ],
)
def test_export_query_validation(args: tuple[str | None, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        dc.export_query(*args)
    assert caught.value.hint


def test_export_query_accepts_a_timestamp_for_since() -> None:
    assert dc.export_query("m", "inputs", "2026-11-23T10:00:00", "jsonl") == dc.ExportQuery(
        "m", "inputs", datetime.date(2026, 11, 23), "jsonl")


def test_collection_env_only_when_enabled(tmp_path: Path) -> None:
    assert dc.collection_env(tmp_path, False) == {}
    env = dc.collection_env(tmp_path, True)
    assert env["MODELHOST_DATA_COLLECTION_DIR"] == str(tmp_path / "data")
    assert env["AML_MODEL_DC_STORAGE_ENABLED"] == "true"


def test_collector_stats_skip_unreadable_files(tmp_path: Path) -> None:
    folder = tmp_path / ".stats" / "svc"
    folder.mkdir(parents=True)
    (folder / "r1-1.json").write_text(json.dumps({"written": 3, "dropped": 1}))
    (folder / "r2-2.json").write_text("{half")
    assert dc.collector_stats(tmp_path, "svc") == [{"written": 3, "dropped": 1}]
