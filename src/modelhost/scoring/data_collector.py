"""``ModelDataCollector`` (``azureml.monitoring``) for scripts that collect inputs and predictions.

Signature and return values are those of ``azureml-monitoring`` 0.1.0a21, plus ``identifier=`` as an
alias of ``designation=`` (2018-2019 scripts pass it). Collection is on when the environment variable
``MODELHOST_DATA_COLLECTION_DIR`` is set: rows are appended as CSV to

    <dir>/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/data.csv

(UTC date), with v1's correlation columns (``$aml_dc_correlation_id``, ``$aml_dc_scoring_timestamp``,
``$aml_dc_boundary``, ``$aml_workspace``, ``$aml_service_name``, ``$aml_model_name``,
``$aml_model_version``, ``$aml_request_id``) appended to ``inputs``. ``$aml_request_id`` is the request's
``x-request-id``. Writing happens off the request path: ``collect`` formats the CSV text and puts it on a
bounded queue that one daemon thread drains; when the queue is full the rows are dropped and counted
(:func:`dropped_count`). When collection is off, the constructor prints v1's notice and ``collect``
returns ``None``, as in v1.
"""

from __future__ import annotations

import atexit
import csv
import datetime
import io
import os
import queue
import sys
import threading
import uuid
from typing import Any

__all__ = ["CORRELATION_HEADERS", "ModelDataCollector", "dropped_count", "flush"]

CORRELATION_HEADERS = [
    "$aml_dc_correlation_id",
    "$aml_dc_scoring_timestamp",
    "$aml_dc_boundary",
    "$aml_workspace",
    "$aml_service_name",
    "$aml_model_name",
    "$aml_model_version",
    "$aml_request_id",
]
_DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general")
_QUEUE_SIZE = 10_000


class _Writer:
    """The one background thread that appends queued CSV text to files."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, str | None, str] | None] = queue.Queue(maxsize=_QUEUE_SIZE)
        self.dropped = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, path: str, header: str | None, text: str) -> None:
        self._ensure_started()
        try:
            self.queue.put_nowait((path, header, text))
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._drain, name="modelhost-data-collector", daemon=True
                    )
                    self._thread.start()
                    atexit.register(self.flush)

    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is not None:
                    self._append(*item)
            except OSError as exc:
                sys.stderr.write(f"ModelDataCollector: cannot write {item[0] if item else ''}: {exc}\n")
            finally:
                self.queue.task_done()

    @staticmethod
    def _append(path: str, header: str | None, text: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        with open(path, "a", encoding="utf-8", newline="") as handle:
            if new and header:
                handle.write(header)
            handle.write(text)

    def flush(self) -> None:
        if self._thread is not None:
            self.queue.join()


_writer = _Writer()


def dropped_count() -> int:
    """Rows dropped because the write queue was full."""
    return _writer.dropped


def flush() -> None:
    """Wait until every queued row is written (tests, shutdown)."""
    _writer.flush()


def _csv_rows(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def _request_id() -> str:
    from .invoke import current_request_id

    return current_request_id.get()


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
        self._feature_names = list(feature_names) if feature_names is not None else None
        self._correlation_headers: list[str] = []
        self.workspace = workspace.lower()
        self.service_name = webservice_name
        self.model_version = model_version
        self.collection_name = collection_name
        self._root = os.environ.get("MODELHOST_DATA_COLLECTION_DIR")
        self._enabled = False
        self._debug = os.environ.get("AML_MODEL_DC_DEBUG", "").lower() == "true"
        if not self._root:
            if self._debug:
                print(
                    "Data collection is in debug mode. "
                    "Set environment variable AML_MODEL_DC_STORAGE_ENABLED to "
                    "'true' to send data to the cloud (http://aka.ms/amlmodeldatacollection)."
                )
            else:
                print(
                    "Data collection is not enabled. "
                    "Set environment variable AML_MODEL_DC_STORAGE_ENABLED to "
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
            return
        self._designation = designation
        if self.service_name == "default" and os.environ.get("SERVICE_NAME"):
            self.service_name = os.environ["SERVICE_NAME"]
        if self.model_version == "default":
            self.model_version = _version_from_model_dir(model_name) or "default"
        self._boundary = 60 if os.environ.get("AML_MODEL_DC_BOUNDARY") == "hour" else 60 * 24
        if designation == "inputs":
            self._correlation_headers = list(CORRELATION_HEADERS)
        self._enabled = bool(self._root)

    # --- v1's public API -------------------------------------------------------------------------
    def collect(self, input_data: Any, user_correlation_id: str = "") -> dict[str, Any] | None:
        """Queue ``input_data`` (a list is one row; numpy/pandas/Spark give one row per record)."""
        if not self._enabled and not self._debug:
            return None
        correlation = None
        if self._designation == "inputs":
            correlation = self._generated_fields(user_correlation_id)
            input_data = self.add_correlations(input_data, correlation)
        rows, header = self._rows(input_data)
        if rows is None:
            return None
        text = _csv_rows(rows)
        if self._debug:
            print(text.rstrip("\r\n"))
        if self._enabled:
            _writer.put(self._path(), _csv_rows([header]) if header else None, text)
        return correlation

    def add_correlations(self, input_data: Any, correlations: dict[str, Any] | None) -> Any:
        """Append the correlation values to each row (v1's helper for predictions)."""
        if correlations is None:
            return input_data
        if not self._correlation_headers:
            self._correlation_headers = list(CORRELATION_HEADERS)
        values = [correlations[h] for h in CORRELATION_HEADERS]
        if isinstance(input_data, list):
            return input_data + values
        kind = type(input_data).__module__.split(".")[0]
        if kind == "numpy":
            import numpy as np

            data = np.array([input_data]) if input_data.ndim == 1 else input_data
            extra = np.repeat(np.array([values], dtype=object), data.shape[0], axis=0)
            return np.append(data, extra, axis=1)
        if kind == "pandas":
            frame = input_data.copy(deep=False)
            for offset, (name, value) in enumerate(zip(CORRELATION_HEADERS, values, strict=True)):
                frame.insert(len(input_data.columns) + offset, name, value)
            return frame
        return input_data

    # --- internals -------------------------------------------------------------------------------
    def _generated_fields(self, correlation_id: str) -> dict[str, Any]:
        generated = str(uuid.uuid4())
        return {
            "$aml_dc_scoring_timestamp": datetime.datetime.now(datetime.UTC).replace(tzinfo=None).isoformat(),
            "$aml_request_id": _request_id(),
            "$aml_dc_correlation_id": f"{correlation_id}-{generated}" if correlation_id else generated,
            "$aml_dc_boundary": self._boundary,
            "$aml_workspace": self.workspace,
            "$aml_service_name": self.service_name,
            "$aml_model_name": self.model_name,
            "$aml_model_version": self.model_version,
        }

    def _headers(self) -> list[str] | None:
        if self._feature_names is None:
            return None
        return self._feature_names + self._correlation_headers

    def _rows(self, data: Any) -> tuple[list[list[Any]] | None, list[str] | None]:
        if isinstance(data, list):
            return [data], self._headers()
        kind = type(data).__module__.split(".")[0]
        if kind == "numpy" and hasattr(data, "ndim"):
            rows = [data.tolist()] if data.ndim == 1 else data.tolist()
            return rows, self._headers()
        if kind == "pandas" and hasattr(data, "columns"):
            return data.values.tolist(), [str(c) for c in data.columns]
        import warnings

        warnings.warn(
            "collect failed: input data must be list,numpy array, pandas dataframe, or spark dataframe. "
            "Corresponding modules must be installed first.",
            stacklevel=3,
        )
        return None, None

    def _path(self) -> str:
        now = datetime.datetime.now(datetime.UTC)
        return os.path.join(
            str(self._root),
            self.service_name,
            self.model_name,
            str(self.model_version),
            self._designation,
            f"{now:%Y}",
            f"{now:%m}",
            f"{now:%d}",
            "data.csv",
        )


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
