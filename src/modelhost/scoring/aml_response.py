"""``AMLResponse``: what a v1 entry script returns to choose the status, headers and body itself.

Scripts import it as ``azureml.contrib.services.aml_response`` or
``azureml_inference_server_http.api.aml_response``; when those packages are absent both names are this
module. Semantics are v1's (a ``flask.Response`` subclass there), without Flask:

* ``message is None`` → body ``{}`` as ``application/json``;
* ``json_str=True`` → ``json.dumps(message)`` as ``application/json``;
* otherwise ``message`` is sent as is: ``str`` (UTF-8), ``bytes``, a list of chunks, or any other
  iterable (a generator), which is streamed; the Content-Type is ``text/html; charset=utf-8`` unless
  ``response_headers`` has ``Content-Type``;
* ``x-ms-run-function-failed`` is always set; a header value with commas becomes repeated headers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any

__all__ = ["AMLResponse", "Headers"]

_DEFAULT_MIMETYPE = "text/html; charset=utf-8"


class Headers:
    """An ordered, case-insensitive multi-map of response headers (the part of Werkzeug's API scripts use)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    def add(self, key: str, value: Any) -> None:
        self._items.append((key, str(value)))

    add_header = add

    def set(self, key: str, value: Any) -> None:
        self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        lower = key.lower()
        for i, (k, _) in enumerate(self._items):
            if k.lower() == lower:
                self._items[i] = (key, str(value))
                self._items[i + 1 :] = [(k2, v2) for k2, v2 in self._items[i + 1 :] if k2.lower() != lower]
                return
        self._items.append((key, str(value)))

    def __getitem__(self, key: str) -> str:
        lower = key.lower()
        for k, v in self._items:
            if k.lower() == lower:
                return v
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def getlist(self, key: str) -> list[str]:
        lower = key.lower()
        return [v for k, v in self._items if k.lower() == lower]

    def remove(self, key: str) -> None:
        lower = key.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lower]

    def __delitem__(self, key: str) -> None:
        self.remove(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and any(k.lower() == key.lower() for k, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [k for k, _ in self._items]

    def values(self) -> list[str]:
        return [v for _, v in self._items]

    def to_wsgi_list(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _encode(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"a response chunk must be str or bytes, not {type(chunk).__name__}")


class AMLResponse:
    """v1's ``AMLResponse(message, status_code, response_headers={}, json_str=False,
    run_function_failed=False)``."""

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, str] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        self.status_code = int(status_code)
        self.headers = Headers()
        self._body: bytes | None = None
        self._stream: Iterable[Any] | None = None
        response_headers = response_headers if response_headers is not None else {}
        if message is None:
            self._set_json("{}")
        elif json_str:
            self._set_json(json.dumps(message))
        else:
            self.headers.add("Content-Type", _DEFAULT_MIMETYPE)
            if isinstance(message, (str, bytes, bytearray, memoryview)):
                self._body = _encode(message)
                self.headers.add("Content-Length", str(len(self._body)))
            elif isinstance(message, (list, tuple)):
                self._body = b"".join(_encode(c) for c in message)
                self.headers.add("Content-Length", str(len(self._body)))
            else:
                self._stream = message
            if "Content-Type" in response_headers:
                self.headers.remove("Content-Type")
        self.headers["x-ms-run-function-failed"] = run_function_failed
        for header, value in response_headers.items():
            for part in value.split(","):
                self.headers.add(header, part.strip())

    def _set_json(self, text: str) -> None:
        self._body = text.encode("utf-8")
        self.headers.add("Content-Type", "application/json")
        self.headers.add("Content-Length", str(len(self._body)))

    # --- the parts of flask.Response that scripts and tests read ---------------------------------
    @property
    def status(self) -> str:
        try:
            return f"{self.status_code} {HTTPStatus(self.status_code).phrase.upper()}"
        except ValueError:
            return f"{self.status_code} UNKNOWN"

    @property
    def is_streamed(self) -> bool:
        return self._stream is not None

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return None if value is None else str(value)

    @property
    def mimetype(self) -> str | None:
        value = self.content_type
        return value.split(";")[0].strip().lower() if value else None

    def iter_encoded(self) -> Iterator[bytes]:
        """The body as byte chunks; a stream is consumed."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            for chunk in stream:
                yield _encode(chunk)
        elif self._body is not None:
            yield self._body

    def get_data(self, as_text: bool = False) -> bytes | str:
        if self._stream is not None:
            self._body = b"".join(self.iter_encoded())
        data = self._body or b""
        return data.decode("utf-8") if as_text else data

    @property
    def data(self) -> bytes:
        return self.get_data()  # type: ignore[return-value]

    def set_data(self, value: str | bytes) -> None:
        self._stream = None
        self._body = _encode(value)
        self.headers["Content-Length"] = str(len(self._body))

    @property
    def response(self) -> list[bytes] | Iterable[Any]:
        return self._stream if self._stream is not None else [self._body or b""]

    def __repr__(self) -> str:
        return f"<AMLResponse [{self.status_code}]>"
