"""Collected model data on disk: where replicas write it, and reading it back (list and export).

Replicas of a service deployed with ``collect_model_data=True`` write v1's partition layout under
``<home>/data`` (see :mod:`modelhost.scoring.data_collector`)::

    <home>/data/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/<prefix>-<replica>-<pid>[-n].csv

Every file has one header line. :func:`list_partitions` sums files, rows and bytes per partition;
:func:`export` merges the files of the chosen partitions into one table: the union of their columns
(first seen first) after three leading columns naming the partition (``$model``, ``$model_version``,
``$designation``), rows in partition then file order. Row counts are line counts (one line per row:
values with line breaks are counted once per line). Filters only compare against folder names: no
user input becomes a path.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modelhost.errors import ValidationError

__all__ = [
    "EXPORT_FORMATS",
    "PARTITION_COLUMNS",
    "ExportQuery",
    "Partition",
    "collection_env",
    "collector_stats",
    "data_root",
    "export",
    "export_query",
    "list_partitions",
    "partition_summaries",
]

ExportFormat = Literal["csv", "jsonl", "parquet"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "parquet")
PARTITION_COLUMNS = ("$model", "$model_version", "$designation")
_CHUNK = 1 << 20


def data_root(home: Path) -> Path:
    return home / "data"


def collection_env(home: Path, enabled: bool) -> dict[str, str]:
    """The replica environment that turns ModelDataCollector on (empty when collection is off)."""
    if not enabled:
        return {}
    return {
        "MODELHOST_DATA_COLLECTION_DIR": str(data_root(home)),
        "AML_MODEL_DC_STORAGE_ENABLED": "true",  # v1's switch, for scripts that read it
        "MODELHOST_WORKSPACE": home.name,
    }


@dataclass(frozen=True)
class Partition:
    """One ``<model>/<version>/<designation>/<yyyy>/<mm>/<dd>`` folder of a service."""

    model: str
    version: str
    designation: str
    date: datetime.date
    path: Path
    files: tuple[Path, ...]

    def summary(self) -> dict[str, Any]:
        """JSON for the list route: files, rows, bytes."""
        return {
            "model": self.model,
            "version": self.version,
            "designation": self.designation,
            "date": self.date.isoformat(),
            "path": str(self.path),
            "files": len(self.files),
            "rows": sum(_count_rows(f) for f in self.files),
            "bytes": sum(f.stat().st_size for f in self.files),
        }


@dataclass(frozen=True)
class ExportQuery:
    model: str | None = None
    designation: str | None = None
    since: datetime.date | None = None
    format: ExportFormat = "csv"

    def accepts(self, p: Partition) -> bool:
        return (
            (self.model is None or p.model == self.model)
            and (self.designation is None or p.designation == self.designation)
            and (self.since is None or p.date >= self.since)
        )


def export_query(
    model: str | None, designation: str | None, since: str | None, format: str | None
) -> ExportQuery:
    """Validate the export filters (400 with the allowed values)."""
    fmt = format or "csv"
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(
            f"Export format {fmt!r} is not supported", hint=f"Use one of: {', '.join(EXPORT_FORMATS)}."
        )
    day = None
    if since:
        try:
            day = datetime.date.fromisoformat(since[:10])
        except ValueError as exc:
            raise ValidationError(
                f"since={since!r} is not a date", hint="Give a date as YYYY-MM-DD, e.g. --since 2026-11-01."
            ) from exc
    return ExportQuery(model or None, designation or None, day, fmt)


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def list_partitions(root: Path, service: str) -> list[Partition]:
    """Every partition folder of ``service`` that holds CSV files, oldest day first."""
    found: list[Partition] = []
    for model in _children(root / service):
        for version in _children(model):
            for designation in _children(version):
                for year in _children(designation):
                    for month in _children(year):
                        for day in _children(month):
                            date = _date(year.name, month.name, day.name)
                            files = tuple(sorted(day.glob("*.csv")))
                            if date is not None and files:
                                found.append(
                                    Partition(model.name, version.name, designation.name, date, day, files)
                                )
    found.sort(key=lambda p: (p.date, p.model, p.version, p.designation))
    return found


def _date(year: str, month: str, day: str) -> datetime.date | None:
    try:
        return datetime.date(int(year), int(month), int(day))
    except ValueError:
        return None


def _count_rows(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            lines += chunk.count(b"\n")
    return max(0, lines - 1)  # the header


def collector_stats(root: Path, service: str) -> list[dict[str, Any]]:
    """The writers' counters (one per replica process): rows written, dropped, queued."""
    out = []
    for path in sorted((root / ".stats" / service).glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being replaced right now, or foreign: the next read will do
    return out


# --- export ---------------------------------------------------------------------------------------


def _header(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle), [])


def _union(partitions: list[Partition]) -> list[str]:
    columns: dict[str, None] = dict.fromkeys(PARTITION_COLUMNS)
    for p in partitions:
        for f in p.files:
            columns.update(dict.fromkeys(_header(f)))
    return list(columns)


def _rows(partitions: list[Partition], columns: list[str]) -> Iterator[list[str]]:
    """Each row of each file laid out in ``columns`` ('' where a file lacks a column)."""
    index = {c: i for i, c in enumerate(columns)}
    for p in partitions:
        fixed = (p.model, p.version, p.designation)
        for f in p.files:
            with f.open(encoding="utf-8", newline="") as handle:
                reader = csv.reader(handle)
                header = next(reader, [])
                where = [index[c] for c in header]
                for values in reader:
                    row = ["", "", "", *([""] * (len(columns) - 3))]
                    row[0:3] = fixed
                    for position, value in zip(where, values, strict=False):
                        row[position] = value
                    yield row


def export(root: Path, service: str, query: ExportQuery) -> Iterator[bytes]:
    """The chosen partitions as one CSV, JSON Lines or Parquet byte stream."""
    partitions = [p for p in list_partitions(root, service) if query.accepts(p)]
    columns = _union(partitions)
    rows = _rows(partitions, columns)
    if query.format == "csv":
        return _csv_chunks(columns, rows)
    if query.format == "jsonl":
        return _jsonl_chunks(columns, rows)
    return iter([_parquet(columns, rows)])


def _csv_chunks(columns: list[str], rows: Iterable[list[str]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= _CHUNK:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _jsonl_chunks(columns: list[str], rows: Iterable[list[str]]) -> Iterator[bytes]:
    parts: list[str] = []
    size = 0
    for row in rows:
        line = json.dumps(dict(zip(columns, row, strict=True))) + "\n"
        parts.append(line)
        size += len(line)
        if size >= _CHUNK:
            yield "".join(parts).encode()
            parts, size = [], 0
    yield "".join(parts).encode()


def _parquet(columns: list[str], rows: Iterable[list[str]]) -> bytes:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ValidationError(
            "Parquet export needs pyarrow, which the control plane's environment lacks",
            hint="Install it next to modelhost (uv pip install pyarrow) or export with --format csv.",
        ) from exc
    values = list(rows)
    table = pa.table({c: [r[i] for r in values] for i, c in enumerate(columns)})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def partition_summaries(partitions: list[Partition]) -> list[dict[str, Any]]:
    return [p.summary() for p in partitions]

