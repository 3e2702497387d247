"""``ModelDataCollector`` (``azureml.monitoring``) for scripts that collect inputs and predictions.

Signature and return values are those of ``azureml-monitoring`` 0.1.0a21, plus ``identifier=`` as an
alias of ``designation=`` (2018-2019 scripts pass it). Collection is on when the control plane sets
``MODELHOST_DATA_COLLECTION_DIR`` (a service deployed with ``collect_model_data=True``); rows land as
CSV under

    <dir>/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/data-<replica>-<pid>.csv

(UTC date of the collect call), one file per process so replicas never interleave lines. ``inputs``
rows get v1's correlation columns (``$aml_dc_correlation_id``, ``$aml_dc_scoring_timestamp``,
``$aml_dc_boundary``, ``$aml_workspace``, ``$aml_service_name``, ``$aml_model_name``,
``$aml_model_version``, ``$aml_request_id``); ``$aml_request_id`` is the ``x-ms-request-id`` the client
got back for the scoring request that called ``collect`` (v1 1.5.1 wrote a zero UUID there).

``collect`` only converts the data to rows and hands them to :class:`~.data_writer.DataWriter`
(a bounded buffer and one background thread): it never waits for the disk, and when the buffer is full
the rows are dropped and counted. When collection is off, the constructor prints v1's notice and
``collect`` returns ``None`` at once: no thread, no file.

Beyond v1 (which wrote a list as one row and had no header without ``feature_names``): a list of lists
is one row per inner list, dicts are rows keyed by their keys, and every file has a header (``col_<i>``
names the columns that have no feature name).
"""

from __future__ import annotations

import atexit
import datetime
import itertools
import operator
import os
import socket
import threading
import time
import warnings
from typing import Any

from .data_spool import ROTATE_ENV
from .data_writer import DEFAULT_CAPACITY, DataWriter
from .invoke import current_request_id

__all__ = ["CORRELATION_HEADERS", "ModelDataCollector", "dropped_count", "flush", "shutdown"]

CORRELATION_HEADERS = (
    "$aml_dc_correlation_id",
    "$aml_dc_scoring_timestamp",
    "$aml_dc_boundary",
    "$aml_workspace",
    "$aml_service_name",
    "$aml_model_name",
    "$aml_model_version",
    "$aml_request_id",
)
_DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general")
_ZERO_ID = "00000000-0000-0000-0000-000000000000"
_TYPES_WARNING = (
    "collect failed: input data must be list,numpy array, pandas dataframe, or spark dataframe. "
    "Corresponding modules must be installed first."
)

_writer: DataWriter | None = None
_writer_lock = threading.Lock()


def _get_writer(root: str) -> DataWriter:
    global _writer
    if _writer is None:
        with _writer_lock:
            if _writer is None:
                replica = os.environ.get("MODELHOST_REPLICA_ID") or socket.gethostname()
                service = os.environ.get("SERVICE_NAME") or "default"
                capacity = _capacity(os.environ.get("MODELHOST_DATA_COLLECTION_BUFFER_ROWS"))
                rotate = _rotate_s(os.environ.get(ROTATE_ENV))  # set in pods: files go to an uploader
                _writer = DataWriter(root, service, f"{replica}-{os.getpid()}", capacity=capacity,
                                     rotate_s=rotate)
                atexit.register(shutdown)
    return _writer


def _rotate_s(raw: str | None) -> float | None:
    try:
        return max(1.0, float(raw)) if raw else None
    except ValueError:
        print(f"{ROTATE_ENV}={raw!r} is not a number; rotating every 10 s")
        return 10.0


def _capacity(raw: str | None) -> int:
    try:
        return max(1, int(raw)) if raw else DEFAULT_CAPACITY
    except ValueError:
        print(f"MODELHOST_DATA_COLLECTION_BUFFER_ROWS={raw!r} is not a number; using {DEFAULT_CAPACITY}")
        return DEFAULT_CAPACITY


def dropped_count() -> int:
    """Rows dropped because the buffer was full."""
    return _writer.dropped if _writer is not None else 0


def flush(timeout_s: float = 30.0) -> bool:
    """Wait until every buffered row is written (tests); False on timeout."""
    return _writer.flush(timeout_s) if _writer is not None else True


def shutdown(timeout_s: float = 30.0) -> None:
    """Write what is buffered and stop the writer thread (the worker calls it on SIGTERM)."""
    if _writer is not None:
        _writer.close(timeout_s)


_POOL_IDS = 256
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122 variant, 2 random bits


class _Ids:
    """uuid4 correlation ids cut from a pool of ``os.urandom`` hex: ``uuid.uuid4()`` reads urandom
    per call (tens of microseconds on some VMs) and formats through ``UUID``; one read of 4 KiB per
    256 ids and five slices cost well under a microsecond each. Each pool has its own counter, whose
    ``next()`` is atomic, so threads never take the same slot; a forked child drops its parent's pool.
    """

    def __init__(self) -> None:
        self._state = self._fresh()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._state = self._fresh()

    @staticmethod
    def _fresh() -> tuple[str, itertools.count[int]]:
        return os.urandom(16 * _POOL_IDS).hex(), itertools.count()

    def new(self) -> str:
        pool, count = self._state
        i = next(count)
        if i >= _POOL_IDS:
            self._state = self._fresh()  # two threads may both refill: each takes from its own count
            return self.new()
        o = 32 * i
        return (f"{pool[o:o + 8]}-{pool[o + 8:o + 12]}-4{pool[o + 13:o + 16]}-"
                f"{_VARIANT[pool[o + 16]]}{pool[o + 17:o + 20]}-{pool[o + 20:o + 32]}")


_ids = _Ids()




def _kind(data: Any) -> str:
    return type(data).__module__.split(".")[0]


class ModelDataCollector:
    """``ModelDataCollector(model_name, designation='default', feature_names=None, workspace=...,
    webservice_name=..., model_version=..., collection_name=..., identifier=None)``."""

    def __init__(
        self,
        model_name: str,
        designation: str = "default",
        feature_names: list[str] | None = None,
        workspace: str = "default/default/default",
        webservice_name: str = "default",
        model_version: str = "default",
        collection_name: str = "default",
        identifier: str | None = None,
    ) -> None:
        if identifier is not None and designation == "default":
            designation = identifier
        self.model_name = model_name
        self._feature_names = [str(f) for f in feature_names] if feature_names is not None else None
        self._correlation_headers: tuple[str, ...] = ()
        self._inputs = False
        self._sink: DataWriter | None = None
        # caches as one (key, value) tuple each: run() threads may read while another one replaces it
        self._day_cache: tuple[str, str] = ("", "")
        self._header_cache: tuple[tuple[int, tuple[str, ...]], tuple[str, ...]] = ((-1, ()), ())
        self._corr_cache: tuple[tuple[str, ...] | None, tuple[str, ...]] = (None, ())
        self.workspace = workspace.lower()
        self.service_name = webservice_name
        self.model_version = model_version
        self.collection_name = collection_name
        self._root = os.environ.get("MODELHOST_DATA_COLLECTION_DIR") or None
        self._enabled = False
        self._designation = "general"
        self._debug = os.environ.get("AML_MODEL_DC_DEBUG", "").lower() == "true"
        if self._debug:
            print(
                "Data collection is in debug mode. Set environment variable AML_MODEL_DC_STORAGE_ENABLED to "
                "'true' to send data to the cloud (http://aka.ms/amlmodeldatacollection)."
            )
        elif self._root is None:
            print(
                "Data collection is not enabled. Set environment variable AML_MODEL_DC_STORAGE_ENABLED to "
                "'true' to enable (http://aka.ms/amlmodeldatacollection)."
            )
            return
        if designation == "default":
            designation = "general"
        if designation not in _DESIGNATIONS:
            print(
                "Incorrect designation value. "
                "Supported values: 'default', 'inputs', 'predictions', 'labels', 'signals', 'general'"
            )
            self._debug = False
            return
        self._designation = designation
        if self.workspace == "default/default/default" and os.environ.get("MODELHOST_WORKSPACE"):
            self.workspace = os.environ["MODELHOST_WORKSPACE"].lower()
        if self.service_name == "default" and os.environ.get("SERVICE_NAME"):
            self.service_name = os.environ["SERVICE_NAME"]
        if self.model_version == "default":
            self.model_version = _version_from_model_dir(model_name) or "default"
        self._boundary = 60 if os.environ.get("AML_MODEL_DC_BOUNDARY") == "hour" else 60 * 24
        named = designation in ("signals", "general") and collection_name != "default"
        self._prefix = collection_name if named else "data"
        self._folder = os.path.join(
            self._root or "", self.service_name, self.model_name, str(self.model_version), designation
        )
        self._inputs = designation == "inputs"
        self._enabled = self._root is not None
        self._sink = _get_writer(self._root) if self._root is not None else None

    # --- v1's public API -------------------------------------------------------------------------
    def collect(self, input_data: Any, user_correlation_id: str = "") -> dict[str, Any] | None:
        """Buffer ``input_data`` for writing; for ``inputs``, return the correlation values added.

        The request path: convert to rows (copied, so the script may reuse its objects) and hand
        them to the writer; no file I/O, no CSV formatting (the writer thread does both).
        """
        if not self._enabled and not self._debug:
            return None
        stamp, day = _stamp(_time_ns())
        converted = self._rows(input_data, () if self._inputs else self._correlation_headers)
        if converted is None:
            return None
        header, rows = converted
        correlation = None
        if self._inputs:
            values, correlation = self._correlation(user_correlation_id, stamp)
            for row in rows:
                row += values  # rows are collect()'s own copies
            header = self._with_correlations(header)
        if self._debug:
            _print_csv(header, rows)
        if self._sink is not None:
            cached_day, folder = self._day_cache
            if day != cached_day:
                folder = os.path.join(self._folder, day)
                self._day_cache = (day, folder)
            self._sink.put((folder, self._prefix, header, rows))
        return correlation

    def add_correlations(self, input_data: Any, correlations: dict[str, Any] | None) -> Any:
        """``input_data`` with the correlation values appended to each row (v1's helper)."""
        if correlations is None:
            return input_data
        self._correlation_headers = CORRELATION_HEADERS
        values = list(_correlation_values(correlations))
        if type(input_data) is list:
            if _is_table(input_data):
                return [[*row, *values] for row in input_data]
            if input_data and type(input_data[0]) is dict:
                return [{**r, **correlations} for r in input_data]
            return input_data + values
        if isinstance(input_data, dict):
            return {**input_data, **correlations}
        kind = _kind(input_data)
        if kind == "numpy" and hasattr(input_data, "ndim"):
            import numpy as np

            data = np.array([input_data]) if input_data.ndim == 1 else input_data
            extra = np.repeat(np.array([values], dtype=object), data.shape[0], axis=0)
            return np.append(data, extra, axis=1)
        if kind == "pandas" and hasattr(input_data, "columns"):
            frame = input_data.copy(deep=False)
            for offset, (name, value) in enumerate(zip(CORRELATION_HEADERS, values, strict=True)):
                frame.insert(len(input_data.columns) + offset, name, value)
            return frame
        warnings.warn(_TYPES_WARNING, stacklevel=2)
        return input_data

    # --- internals -------------------------------------------------------------------------------
    def _correlation(self, correlation_id: str, stamp: str) -> tuple[list[Any], dict[str, Any]]:
        """v1's correlation values for one collect() call, as a row tail and as the returned dict."""
        generated = _ids.new()
        cid = f"{correlation_id}-{generated}" if correlation_id else generated
        boundary, workspace, service = self._boundary, self.workspace, self.service_name
        model, version, request_id = self.model_name, self.model_version, current_request_id.get()
        values = [cid, stamp, boundary, workspace, service, model, version, request_id]
        return values, {  # CORRELATION_HEADERS, in order
            "$aml_dc_correlation_id": cid,
            "$aml_dc_scoring_timestamp": stamp,
            "$aml_dc_boundary": boundary,
            "$aml_workspace": workspace,
            "$aml_service_name": service,
            "$aml_model_name": model,
            "$aml_model_version": version,
            "$aml_request_id": request_id,
        }

    def _with_correlations(self, header: tuple[str, ...]) -> tuple[str, ...]:
        key, value = self._corr_cache
        if header is not key:
            value = (*header, *CORRELATION_HEADERS)
            self._corr_cache = (header, value)
        return value

    def _header(self, width: int, tail: tuple[str, ...]) -> tuple[str, ...]:
        """Feature names plus ``tail``, ``col_<i>`` for columns without a name (cached)."""
        key = (width, tail)
        cached_key, value = self._header_cache
        if key != cached_key:
            if width < len(tail):
                tail = ()
            names = self._feature_names or []
            own = width - len(tail)
            names = names[:own] + [f"col_{i}" for i in range(len(names), own)]
            value = (*names, *tail)
            self._header_cache = (key, value)
        return value

    def _rows(
        self, data: Any, tail: tuple[str, ...]
    ) -> tuple[tuple[str, ...], list[list[Any]]] | None:
        """(header, rows), rows copied; None (and v1's warning) for types it cannot collect."""
        if type(data) is list:
            first = data[0] if data else None
            first_type = type(first)
            if first_type is dict and all(isinstance(r, dict) for r in data):
                return _dict_rows(data, self._feature_names)
            if (first_type is list or first_type is tuple) and (len(data) == 1 or _is_table(data)):
                rows = list(map(list, data))
            else:
                rows = [data.copy()]
            width = len(rows[0]) if len(rows) == 1 else max(map(len, rows), default=0)
            return self._header(width, tail), rows
        if isinstance(data, dict):
            return _dict_rows([data], self._feature_names)
        kind = _kind(data)
        if kind == "numpy" and hasattr(data, "ndim"):
            rows = [data.tolist()] if data.ndim == 1 else data.tolist()
            return self._header(len(rows[0]) if rows else 0, tail), rows
        if kind == "pandas" and hasattr(data, "columns"):
            return tuple(str(c) for c in data.columns), data.to_numpy(dtype=object).tolist()
        if kind == "pandas" and hasattr(data, "index"):  # a Series: one row
            return tuple(str(c) for c in data.index), [data.to_numpy(dtype=object).tolist()]
        if isinstance(data, list):  # a list subclass
            return self._rows(list(data), tail)
        warnings.warn(_TYPES_WARNING, stacklevel=3)
        return None


_time_ns = time.time_ns
_second: tuple[int, str, str] = (-1, "", "")  # the last second _stamp formatted


def _stamp(ns: int) -> tuple[str, str]:
    """(v1's ``$aml_dc_scoring_timestamp``, the partition's ``yyyy/mm/dd``) for ``ns`` nanoseconds
    since the epoch, in UTC. ``utcnow().isoformat()``'s text, with the part up to the second
    formatted once per second instead of per call (threads may race to refresh it: same result)."""
    global _second
    sec, us = divmod(ns // 1000, 1_000_000)
    cached = _second
    if cached[0] != sec:
        moment = datetime.datetime.fromtimestamp(sec, datetime.UTC).replace(tzinfo=None)
        day = os.path.join(f"{moment:%Y}", f"{moment:%m}", f"{moment:%d}")
        cached = _second = (sec, moment.isoformat(), day)
    return (f"{cached[1]}.{us:06d}" if us else cached[1]), cached[2]
_correlation_values = operator.itemgetter(*CORRELATION_HEADERS)


def _is_table(data: list[Any]) -> bool:
    first = data[0] if data else None
    if type(first) is not list and type(first) is not tuple:
        return False
    return all(type(r) is list or type(r) is tuple for r in data)


def _dict_rows(
    records: list[dict[str, Any]], feature_names: list[str] | None
) -> tuple[tuple[str, ...], list[list[Any]]]:
    keys: dict[str, None] = dict.fromkeys(feature_names or ())
    for record in records:
        keys.update(dict.fromkeys(str(k) for k in record))
    header = tuple(keys)
    return header, [[record.get(k) for k in header] for record in records]


def _print_csv(header: tuple[str, ...], rows: list[list[Any]]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    print(buffer.getvalue().rstrip("\r\n"))


def _version_from_model_dir(model_name: str) -> str | None:
    """The registered version when AZUREML_MODEL_DIR is ``.../azureml-models/<model_name>/<version>``."""
    model_dir = os.environ.get("AZUREML_MODEL_DIR", "").rstrip("/")
    parts = model_dir.split("/")
    if len(parts) >= 2 and parts[-2] == model_name:
        return parts[-1]
    if model_dir and os.path.isdir(os.path.join(model_dir, model_name)):
        versions = [v for v in os.listdir(os.path.join(model_dir, model_name)) if v.isdigit()]
        if versions:
            return str(max(int(v) for v in versions))
    return None
