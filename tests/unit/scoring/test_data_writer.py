"""The data writer's fast paths: CSV text identical to ``csv.writer``'s, one write per file per cycle,
timestamps formatted once per second, pooled uuid4 correlation ids.

``csv.writer`` is the oracle for the text; ``datetime`` for the timestamps; ``uuid.UUID`` for the ids.
Real files and the real writer thread; nothing is faked.
"""

from __future__ import annotations

import csv
import datetime
import io
import os
import random
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelhost.scoring import data_collector
from modelhost.scoring.data_writer import DataWriter, _csv_text


def _csv_oracle(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


class _Odd:
    def __str__(self) -> str:
        return 'has "quotes", commas'


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([], id="no-rows"),
        pytest.param([[1.5, 2, "a", True, 1e20, float("nan")]], id="plain"),
        pytest.param([[1, 2, 3], [4, 5], [6]], id="ragged"),
        pytest.param([[None, 1], [2, None]], id="none-is-empty"),
        pytest.param([["None", "NoneType"]], id="the-word-None"),
        pytest.param([[""]], id="single-empty-field"),
        pytest.param([[None]], id="single-none"),
        pytest.param([["", 1]], id="empty-then-value"),
        pytest.param([[]], id="empty-row"),
        pytest.param([[1], [], [2]], id="empty-row-between"),
        pytest.param([["a,b", 1]], id="comma"),
        pytest.param([['say "hi"', 1]], id="quote"),
        pytest.param([["line\nbreak", 1], ["cr\rhere", 2], ["crlf\r\n", 3]], id="line-breaks"),
        pytest.param([[" padded ", "\t", "x\u2028y", "é"]], id="spaces-and-unicode"),
        pytest.param([[_Odd(), [1, 2], (3,), {"k": "v"}]], id="objects"),
        pytest.param([["x"]] * 3 + [["a,b"]], id="one-bad-row-among-good"),
    ],
)
def test_csv_text_is_what_csv_writer_writes(rows: list[list[Any]]) -> None:
    assert _csv_text(rows) == _csv_oracle(rows)


def test_csv_text_matches_csv_writer_on_random_tables() -> None:
    rng = random.Random(7)  # seeded: a failure replays
    alphabet = ['a', 'None', ',', '"', '\r', '\n', ' ', '', 'é', '0.5']
    atoms: list[Any] = [None, 0, -1.25, 1e-7, True, float("inf")]
    for _ in range(300):
        rows = [
            [rng.choice(atoms) if rng.random() < 0.3 else "".join(rng.choices(alphabet, k=rng.randint(0, 3)))
             for _ in range(rng.randint(0, 4))]
            for _ in range(rng.randint(1, 5))
        ]
        assert _csv_text(rows) == _csv_oracle(rows), rows


def test_a_cycle_groups_rows_per_file_in_put_order(tmp_path: Path) -> None:
    """Interleaved batches for two folders and two headers: grouped per file, order kept."""
    writer = DataWriter(str(tmp_path), "svc", "t")
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    # hold the writer's lock so every batch lands in one cycle
    with writer._lock:
        for i in range(30):
            folder = a if i % 2 else b
            header = ("x",) if i % 3 else ("x", "y")
            writer._buffer.append((folder, "data", header, [[i] if i % 3 else [i, -i]]))
            writer._queued += 1
        writer._start()
    assert writer.flush(10)
    writer.close()
    seen = []
    for path in sorted(tmp_path.glob("*/data-t*.csv")):
        with path.open(newline="") as handle:
            header, *rows = list(csv.reader(handle))
        assert all(len(r) == len(header) for r in rows)
        values = [int(r[0]) for r in rows]
        assert values == sorted(values)  # rows in the order they were put
        seen += values
    assert sorted(seen) == list(range(30)) and writer.written == 30


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_value_that_cannot_be_formatted_loses_its_rows_not_the_thread(tmp_path: Path) -> None:
    writer = DataWriter(str(tmp_path), "svc", "t")
    assert writer.put((str(tmp_path / "bad"), "data", ("a",), [[_Unprintable()]]))
    assert writer.flush(10)
    assert writer.put((str(tmp_path / "good"), "data", ("a",), [[1]]))
    assert writer.flush(10)
    writer.close()
    assert (writer.failed, writer.written) == (1, 1)
    assert (tmp_path / "good" / "data-t.csv").read_text().splitlines() == ["a", "1"]


def test_put_wakes_the_writer_only_for_first_rows_and_at_half_full(tmp_path: Path) -> None:
    writer = DataWriter(str(tmp_path), "svc", "t", capacity=10)
    notified: list[int] = []
    real_notify = writer._cond.notify

    def counting_notify(n: int = 1) -> None:
        notified.append(writer._queued)
        real_notify(n)

    writer._cond.notify = counting_notify  # type: ignore[method-assign]
    writer._thread = threading.current_thread()  # no thread: the buffer only fills
    for i in range(9):
        assert writer.put((str(tmp_path), "data", ("a",), [[i]]))
    assert notified == [1, 5]  # the first row, then crossing half of 10; not once per put


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param(datetime.datetime(2026, 11, 23, 19, 30, 1, 123456), id="micros"),
        pytest.param(datetime.datetime(2026, 11, 23, 19, 30, 1, 0), id="whole-second"),
        pytest.param(datetime.datetime(2026, 11, 23, 19, 30, 1, 7), id="leading-zeros"),
        pytest.param(datetime.datetime(2026, 12, 31, 23, 59, 59, 999999), id="end-of-year"),
        pytest.param(datetime.datetime(2027, 1, 1, 0, 0, 0, 1), id="new-year"),
    ],
)
def test_stamp_matches_utcnow_isoformat_and_the_partition_day(moment: datetime.datetime) -> None:
    ns = int(moment.replace(tzinfo=datetime.UTC).timestamp()) * 10**9 + moment.microsecond * 1000 + 999
    # twice: once formatting the second, once from the per-second cache
    for _ in range(2):
        stamp, day = data_collector._stamp(ns)
        assert stamp == moment.isoformat()
        assert day == os.path.join(f"{moment:%Y}", f"{moment:%m}", f"{moment:%d}")


def test_pooled_ids_are_unique_uuid4s_across_threads_and_pool_refills() -> None:
    ids: list[str] = []

    def take() -> None:
        ids.extend(data_collector._ids.new() for _ in range(1_000))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(ids) == 4_000 and len(set(ids)) == 4_000
    for i in ids:
        parsed = uuid.UUID(i)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == i
