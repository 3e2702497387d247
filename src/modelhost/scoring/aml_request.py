"""``@rawhttp`` and ``AMLRequest``: raw HTTP access for a v1 entry script's ``run(request)``.

Scripts import these as ``azureml.contrib.services.aml_request`` or
``azureml_inference_server_http.api.aml_request``; when those packages are absent both names are this
module. ``rawhttp`` sets the module-global flag ``_rawHttpRequested`` that the server reads after
importing the script, exactly as v1 does.

``AMLRequest`` offers the part of ``flask.Request`` that entry scripts use: ``method``, ``path``,
``full_path``, ``url``, ``base_url``, ``host``, ``scheme``, ``query_string``, ``args``, ``headers``,
``get_data()``/``data``, ``get_json()``/``json``, ``is_json``, ``mimetype``, ``content_type``,
``content_length``, ``form``, ``files`` (with ``filename``, ``read()``, ``save()``), ``values``,
``cookies``, ``remote_addr`` and ``stream``.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, TypeVar
from urllib.parse import parse_qsl, quote

__all__ = ["AMLRequest", "FileStorage", "MultiDict", "RequestHeaders", "rawhttp"]

_rawHttpRequested = False

F = TypeVar("F", bound=Callable[..., Any])


def rawhttp(func: F) -> F:
    """Ask the server to call ``run`` with the raw :class:`AMLRequest` (v1's decorator)."""
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


class MultiDict:
    """Werkzeug-like multi-value mapping: ``d[k]`` and ``get`` give the first value, ``getlist`` all."""

    def __init__(self, pairs: Iterable[tuple[str, Any]] = ()) -> None:
        self._data: dict[str, list[Any]] = {}
        for key, value in pairs:
            self._data.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> Any:
        if key in self._data:
            return self._data[key][0]
        raise KeyError(key)

    def get(self, key: str, default: Any = None, type: Callable[[Any], Any] | None = None) -> Any:
        if key not in self._data:
            return default
        value = self._data[key][0]
        if type is None:
            return value
        try:
            return type(value)
        except (ValueError, TypeError):
            return default

    def getlist(self, key: str, type: Callable[[Any], Any] | None = None) -> list[Any]:
        values = list(self._data.get(key, []))
        return [type(v) for v in values] if type else values

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> list[str]:
        return list(self._data)

    def values(self) -> list[Any]:
        return [v[0] for v in self._data.values()]

    def items(self, multi: bool = False) -> list[tuple[str, Any]]:
        if multi:
            return [(k, v) for k, vs in self._data.items() for v in vs]
        return [(k, vs[0]) for k, vs in self._data.items()]

    def lists(self) -> list[tuple[str, list[Any]]]:
        return [(k, list(vs)) for k, vs in self._data.items()]

    def to_dict(self, flat: bool = True) -> dict[str, Any]:
        return {k: (vs[0] if flat else list(vs)) for k, vs in self._data.items()}

    def __repr__(self) -> str:
        return f"MultiDict({self.items(multi=True)!r})"


class RequestHeaders:
    """Case-insensitive request headers; iterating (``dict(headers)``) gives Werkzeug's Title-Case names."""

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        merged: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").replace("_", "-").title()
            text = value.decode("latin-1")
            merged[key] = f"{merged[key]},{text}" if key in merged else text
        self._items = merged
        self._lower = {k.lower(): v for k, v in merged.items()}

    def get(self, key: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:
        value = self._lower.get(key.lower())
        if value is None:
            return default
        if type is None:
            return value
        try:
            return type(value)
        except (ValueError, TypeError):
            return default

    def __getitem__(self, key: str) -> str:
        value = self._lower.get(key.lower())
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lower

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items.items())

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items.items())

    def values(self) -> list[str]:
        return list(self._items.values())

    def getlist(self, key: str) -> list[str]:
        value = self._lower.get(key.lower())
        return [] if value is None else [value]

    def to_dict(self) -> dict[str, str]:
        return dict(self._items)

    def __repr__(self) -> str:
        return f"RequestHeaders({self._items!r})"


class FileStorage:
    """An uploaded file from a multipart form (the part of Werkzeug's ``FileStorage`` scripts use)."""

    def __init__(self, data: bytes, filename: str | None, name: str, content_type: str | None) -> None:
        self.stream: BinaryIO = io.BytesIO(data)
        self.filename = filename
        self.name = name
        self.content_type = content_type
        self.mimetype = (content_type or "").split(";")[0].strip().lower()

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.stream.seek(offset, whence)

    def tell(self) -> int:
        return self.stream.tell()

    def readlines(self) -> list[bytes]:
        return self.stream.readlines()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.stream)

    def save(self, dst: str | BinaryIO, buffer_size: int = 16384) -> None:
        if isinstance(dst, str):
            with open(dst, "wb") as handle:
                shutil.copyfileobj(self.stream, handle, buffer_size)
        else:
            shutil.copyfileobj(self.stream, dst, buffer_size)

    def __repr__(self) -> str:
        return f"<FileStorage: {self.filename!r} ({self.content_type!r})>"


def _param(header: str, key: str) -> str | None:
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == key:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def parse_multipart(
    body: bytes, boundary: str
) -> tuple[list[tuple[str, str]], list[tuple[str, FileStorage]]]:
    """Split a multipart/form-data body into form fields and files."""
    form: list[tuple[str, str]] = []
    files: list[tuple[str, FileStorage]] = []
    delimiter = b"--" + boundary.encode("latin-1")
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        part = part[2:] if part.startswith(b"\r\n") else part
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        field = _param(disposition, "name")
        if field is None:
            continue
        filename = _param(disposition, "filename")
        if filename is None:
            form.append((field, content.decode("utf-8", "replace")))
        else:
            files.append((field, FileStorage(content, filename, field, headers.get("content-type"))))
    return form, files


class AMLRequest:
    """The request handed to a ``@rawhttp`` ``run(request)``; built from the ASGI scope and the body."""

    def __init__(self, scope: dict[str, Any], body: bytes) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope.get("root_path", "") + scope["path"]
        self.query_string: bytes = scope.get("query_string", b"")
        self.headers = RequestHeaders(scope.get("headers", ()))
        self._body = body
        self._args: MultiDict | None = None
        self._form: tuple[MultiDict, MultiDict] | None = None

    # --- URL ----------------------------------------------------------------------------------
    @property
    def full_path(self) -> str:
        return f"{self.path}?{self.query_string.decode('latin-1')}"

    @property
    def scheme(self) -> str:
        return str(self.scope.get("scheme", "http"))

    @property
    def host(self) -> str:
        host = self.headers.get("Host")
        if host:
            return str(host)
        server = self.scope.get("server") or ("localhost", 80)
        return f"{server[0]}:{server[1]}"

    @property
    def host_url(self) -> str:
        return f"{self.scheme}://{self.host}/"

    @property
    def url_root(self) -> str:
        return self.host_url

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}{quote(self.path)}"

    @property
    def url(self) -> str:
        query = self.query_string.decode("latin-1")
        return f"{self.base_url}?{query}" if query else self.base_url

    @property
    def remote_addr(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    @property
    def args(self) -> MultiDict:
        if self._args is None:
            self._args = MultiDict(
                parse_qsl(self.query_string.decode("utf-8", "replace"), keep_blank_values=True)
            )
        return self._args

    # --- body ---------------------------------------------------------------------------------
    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return str(value) if value is not None else None

    @property
    def mimetype(self) -> str:
        return (self.content_type or "").split(";")[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length", type=int)
        return value if isinstance(value, int) else None

    @property
    def is_json(self) -> bool:
        mt = self.mimetype
        return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))

    def _is_form(self) -> bool:
        return self.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded")

    def get_data(
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> bytes | str:
        data = b"" if parse_form_data and self._is_form() else self._body
        return data.decode("utf-8", "replace") if as_text else data

    @property
    def data(self) -> bytes:
        return b"" if self._is_form() else self._body

    @property
    def stream(self) -> BinaryIO:
        return io.BytesIO(self._body)

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if not (force or self.is_json):
            if silent:
                return None
            raise ValueError(
                "Did not attempt to load JSON data because the request Content-Type was not "
                "'application/json'."
            )
        try:
            return json.loads(self._body)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self) -> Any:
        return self.get_json()

    def _parse_form(self) -> tuple[MultiDict, MultiDict]:
        if self._form is None:
            form: list[tuple[str, Any]] = []
            files: list[tuple[str, Any]] = []
            if self.mimetype == "application/x-www-form-urlencoded":
                form = list(parse_qsl(self._body.decode("utf-8", "replace"), keep_blank_values=True))
            elif self.mimetype == "multipart/form-data":
                boundary = _param(self.content_type or "", "boundary")
                if boundary:
                    parsed_form, parsed_files = parse_multipart(self._body, boundary)
                    form, files = list(parsed_form), list(parsed_files)
            self._form = (MultiDict(form), MultiDict(files))
        return self._form

    @property
    def form(self) -> MultiDict:
        return self._parse_form()[0]

    @property
    def files(self) -> MultiDict:
        return self._parse_form()[1]

    @property
    def values(self) -> MultiDict:
        return MultiDict([*self.args.items(multi=True), *self.form.items(multi=True)])

    @property
    def cookies(self) -> dict[str, str]:
        jar: dict[str, str] = {}
        for chunk in str(self.headers.get("Cookie", "")).split(";"):
            name, sep, value = chunk.strip().partition("=")
            if sep:
                jar.setdefault(name, value)
        return jar

    @property
    def environ(self) -> dict[str, Any]:
        """A minimal WSGI-style environ (some scripts read ``REQUEST_METHOD`` or ``HTTP_*`` keys)."""
        env: dict[str, Any] = {
            "REQUEST_METHOD": self.method,
            "PATH_INFO": self.path,
            "QUERY_STRING": self.query_string.decode("latin-1"),
        }
        for key, value in self.headers.items():
            env["HTTP_" + key.upper().replace("-", "_")] = value
        return env

    def __repr__(self) -> str:
        return f"<AMLRequest '{self.url}' [{self.method}]>"
