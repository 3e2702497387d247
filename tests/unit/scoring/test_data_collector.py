"""ModelDataCollector and its writer: row shapes, correlation columns, files, a full buffer, off = no-op.

Real files in a temp folder and the real writer thread; nothing is faked. The full-buffer test stalls
the writer thread with a FIFO at the path it writes to (a real blocking open), so the buffer fills.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelhost.scoring import data_collector
from modelhost.scoring.data_collector import CORRELATION_HEADERS, ModelDataCollector
from modelhost.scoring.data_writer import DataWriter
from modelhost.scoring.invoke import current_request_id


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MODELHOST_DATA_COLLECTION_DIR", str(tmp_path))
    monkeypatch.setenv("SERVICE_NAME", "svc")
    monkeypatch.setenv("MODELHOST_REPLICA_ID", "r1")
    monkeypatch.setenv("MODELHOST_WORKSPACE", "ws")
    monkeypatch.delenv("AML_MODEL_DC_DEBUG", raising=False)
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    yield tmp_path
    data_collector.shutdown()
    data_collector._writer = None


def _read(root: Path, designation: str) -> list[dict[str, str]]:
    assert data_collector.flush(10)
    files = sorted(root.glob(f"svc/*/*/{designation}/*/*/*/*.csv"))
    rows: list[dict[str, str]] = []
    for path in files:
        with path.open(newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def test_list_is_one_row_with_feature_names(root: Path) -> None:
    dc = ModelDataCollector("m", designation="predictions", feature_names=["a", "b"], model_version="3")
    assert dc.collect([1, "x"]) is None
    assert _read(root, "predictions") == [{"a": "1", "b": "x"}]
    path = next(root.glob("svc/m/3/predictions/*/*/*/*.csv"))
    assert path.name == f"data-r1-{os.getpid()}.csv"


def test_list_of_lists_is_one_row_each_and_unnamed_columns_get_names(root: Path) -> None:
    dc = ModelDataCollector("m", designation="predictions", feature_names=["a"])
    dc.collect([[1, 2], [3, 4]])
    assert _read(root, "predictions") == [{"a": "1", "col_1": "2"}, {"a": "3", "col_1": "4"}]


def test_dicts_are_rows_keyed_by_their_keys(root: Path) -> None:
    dc = ModelDataCollector("m", designation="labels")
    dc.collect({"x": 1, "y": 2})
    dc.collect([{"x": 3}, {"x": 4, "z": 5}])
    rows = _read(root, "labels")
    # a different header starts a new file, so each file keeps one header
    assert sorted(rows, key=lambda r: r["x"]) == [
        {"x": "1", "y": "2"}, {"x": "3", "z": ""}, {"x": "4", "z": "5"}]
    assert len(list(root.glob("svc/m/*/labels/*/*/*/*.csv"))) == 2


def test_numpy_arrays_one_and_two_dimensional(root: Path) -> None:
    dc = ModelDataCollector("m", designation="predictions", feature_names=["p", "q"])
    dc.collect(np.array([1.5, 2.5]))
    dc.collect(np.array([[1, 2], [3, 4]]))
    assert _read(root, "predictions") == [
        {"p": "1.5", "q": "2.5"}, {"p": "1", "q": "2"}, {"p": "3", "q": "4"}]


def test_pandas_frame_header_comes_from_its_columns(root: Path) -> None:
    dc = ModelDataCollector("m", designation="signals", feature_names=["ignored"])
    dc.collect(pd.DataFrame({"age": [30, 40], "city": ["a", "b"]}))
    assert _read(root, "signals") == [{"age": "30", "city": "a"}, {"age": "40", "city": "b"}]


def test_inputs_get_correlation_columns_with_the_request_id(root: Path) -> None:
    dc = ModelDataCollector("m", designation="inputs", feature_names=["f1", "f2"], model_version="7")
    token = current_request_id.set("req-123")
    try:
        correlation = dc.collect([[1, 2], [3, 4]], user_correlation_id="u1")
    finally:
        current_request_id.reset(token)
    assert correlation is not None and set(correlation) == set(CORRELATION_HEADERS)
    assert correlation["$aml_request_id"] == "req-123"
    assert correlation["$aml_dc_correlation_id"].startswith("u1-")
    rows = _read(root, "inputs")
    assert len(rows) == 2
    for row in rows:
        assert list(row)[:2] == ["f1", "f2"] and tuple(list(row)[2:]) == CORRELATION_HEADERS
        assert row["$aml_request_id"] == "req-123" and row["$aml_service_name"] == "svc"
        assert row["$aml_model_name"] == "m" and row["$aml_model_version"] == "7"
        assert row["$aml_workspace"] == "ws" and row["$aml_dc_boundary"] == "1440"


def test_correlation_ids_are_unique_uuid4s(root: Path) -> None:
    dc = ModelDataCollector("m", designation="inputs")
    ids = [dc.collect([i])["$aml_dc_correlation_id"] for i in range(1000)]  # type: ignore[index]
    assert len(set(ids)) == 1000
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


def test_outside_a_request_the_request_id_is_the_zero_uuid(root: Path) -> None:
    dc = ModelDataCollector("m", designation="inputs")
    correlation = dc.collect([1])
    assert correlation is not None
    assert correlation["$aml_request_id"] == "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("data", "expected_width"),
    [
        pytest.param([0.5], 9, id="list"),
        pytest.param([[0.5], [0.7]], 9, id="list-of-lists"),
        pytest.param(np.array([[0.5], [0.7]]), 9, id="numpy"),
        pytest.param(pd.DataFrame({"p": [0.5, 0.7]}), 9, id="pandas"),
        pytest.param({"p": 0.5}, 9, id="dict"),
    ],
)
def test_add_correlations_for_predictions(root: Path, data: Any, expected_width: int) -> None:
    inputs = ModelDataCollector("m", designation="inputs")
    predictions = ModelDataCollector("m", designation="predictions")
    correlation = inputs.collect([1.0])
    predictions.collect(predictions.add_correlations(data, correlation))
    rows = _read(root, "predictions")
    assert rows and all(len(r) == expected_width for r in rows)
    assert {r["$aml_dc_correlation_id"] for r in rows} == {correlation["$aml_dc_correlation_id"]}  # type: ignore[index]


def test_unknown_types_warn_and_write_nothing(root: Path) -> None:
    dc = ModelDataCollector("m", designation="predictions")
    with pytest.warns(UserWarning, match="input data must be list"):
        assert dc.collect("a string") is None
    assert _read(root, "predictions") == []


def test_off_is_a_no_op_without_thread(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    monkeypatch.delenv("MODELHOST_DATA_COLLECTION_DIR", raising=False)
    monkeypatch.delenv("AML_MODEL_DC_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    data_collector._writer = None
    dc = ModelDataCollector("m", designation="inputs", feature_names=["a"])
    assert "Data collection is not enabled" in capsys.readouterr().out
    assert dc.collect([1]) is None
    assert data_collector._writer is None
    assert not any(t.name == "modelhost-data-collector" for t in threading.enumerate())
    assert list(tmp_path.iterdir()) == []


def test_debug_mode_prints_csv(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MODELHOST_DATA_COLLECTION_DIR", raising=False)
    monkeypatch.setenv("AML_MODEL_DC_DEBUG", "true")
    dc = ModelDataCollector("m", designation="predictions", feature_names=["a"])
    dc.collect([42])
    assert capsys.readouterr().out.splitlines()[-2:] == ["a", "42"]
    assert data_collector._writer is None


def test_a_full_buffer_drops_and_counts_without_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "part"
    folder.mkdir()
    fifo = folder / "data-t.csv"
    os.mkfifo(fifo)  # the writer thread blocks opening it: the disk "hangs"
    writer = DataWriter(str(tmp_path), "svc", "t", capacity=100, drop_log_every=50)
    puts = 1_000
    start = time.monotonic()
    accepted = sum(writer.put((str(folder), "data", ("a",), [[i]])) for i in range(puts))
    elapsed = time.monotonic() - start
    assert elapsed < 5.0  # 1,000 puts while the disk hangs: none of them waited for it
    assert writer.dropped == puts - accepted and accepted == 100  # the buffer holds 100 rows, all told
    drops = [r.getMessage() for r in caplog.records if "dropped so far" in r.getMessage()]
    assert drops and len(drops) <= writer.dropped // 50 + 1

    # unblock the disk: every accepted row is written, none of the dropped ones
    received: list[bytes] = []

    def feed_and_drain() -> None:
        with open(fifo, "w"):
            pass  # lets the writer's header check read EOF
        fd = os.open(fifo, os.O_RDONLY)
        while chunk := os.read(fd, 65536):
            received.append(chunk)
        os.close(fd)

    reader = threading.Thread(target=feed_and_drain)
    reader.start()
    assert writer.flush(10)
    writer.close(10)
    reader.join(10)
    lines = b"".join(received).decode().splitlines()
    assert lines[0] == "a" and len(lines) - 1 == accepted == writer.written
    stats = json.loads((tmp_path / ".stats" / "svc" / "t.json").read_text())
    assert stats["dropped"] == writer.dropped and stats["written"] == accepted


def test_close_writes_what_is_buffered_and_logs_the_counters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="azmlinfsrv.data_collector")
    writer = DataWriter(str(tmp_path), "svc", "t")
    for i in range(500):
        writer.put((str(tmp_path / "p"), "data", ("a",), [[i]]))
    writer.close()
    text = (tmp_path / "p" / "data-t.csv").read_text().splitlines()
    assert text[0] == "a" and len(text) == 501
    assert any("500 row(s) written, 0 dropped" in r.getMessage() for r in caplog.records)
    assert not writer.put((str(tmp_path / "p"), "data", ("a",), [[1]]))  # closed: counted, not written


def test_concurrent_collects_of_changing_widths_keep_one_header_per_file(root: Path) -> None:
    dc = ModelDataCollector("m", designation="predictions")

    def collect(width: int) -> None:
        for i in range(300):
            dc.collect(list(range(width + i % 2)))

    threads = [threading.Thread(target=collect, args=(w,)) for w in (2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert data_collector.flush(10)
    total = 0
    for path in root.glob("svc/m/*/predictions/*/*/*/*.csv"):
        with path.open(newline="") as handle:
            header, *rows = list(csv.reader(handle))
        assert rows and all(len(r) == len(header) for r in rows), path.name
        total += len(rows)
    assert total == 900
