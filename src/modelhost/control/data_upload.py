"""``PUT /api/v1/services/{name}/data/{path}``: data files sent back by a pod's uploader sidecar.

The body is one finished CSV file (:mod:`modelhost.runtime.upload`); it lands at
``<home>/data/<name>/<path>``, the layout ``modelhost data list|export`` read, written to a temporary
name and renamed into place, so a retried upload of the same name replaces the file instead of
adding rows twice. ``path`` must be ``<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/<file>.csv``
with plain segments (no ``..``, no hidden names): anything else is 400, a body over
:data:`~modelhost.runtime.upload.UPLOAD_MAX_BYTES` is 413.

Authentication: the admin token, or the service's upload token (:func:`upload_allowed`, called by
the control plane's bearer middleware): an HMAC of the service name under the workspace's fetch
token, so a pod of service A cannot write B's data.
"""

from __future__ import annotations

import datetime
import hmac
import os
import re
import uuid
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.control.data_collection import data_root
from modelhost.errors import PayloadTooLargeError, ValidationError
from modelhost.runtime.upload import UPLOAD_MAX_BYTES, upload_token
from modelhost.spec.names import validate_service_name

if TYPE_CHECKING:
    from modelhost.control.app import ControlContext

__all__ = ["check_data_path", "routes", "upload_allowed"]

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")
_DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general")
_UPLOAD_PATH = re.compile(r"/api/v1/services/([^/]+)/data/.+")
_LAYOUT = "<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/<file>.csv"


def _bad(rel: str, why: str) -> ValidationError:
    return ValidationError(
        f"Data path {rel!r} {why}",
        hint=f"Upload to {_LAYOUT} under /api/v1/services/<name>/data/ (what the pod's uploader sends).",
    )


def check_data_path(rel: str) -> PurePosixPath:
    """``rel`` as a safe relative path in the data layout, or a 400 naming what is wrong."""
    parts = rel.split("/")
    if len(parts) != 7:
        raise _bad(rel, f"has {len(parts)} part(s), not the 7 of {_LAYOUT}")
    for part in parts:
        if not _SEGMENT.fullmatch(part) or part in (".", ".."):
            raise _bad(rel, f"has the part {part!r}: only letters, digits, '.', '_' and '-', not first '.'")
    _model, _version, designation, year, month, day, name = parts
    if designation not in _DESIGNATIONS:
        raise _bad(rel, f"names designation {designation!r}; allowed: {', '.join(_DESIGNATIONS)}")
    try:
        if (len(year), len(month), len(day)) != (4, 2, 2):
            raise ValueError(f"{year}/{month}/{day}")
        datetime.date(int(year), int(month), int(day))
    except ValueError as exc:
        raise _bad(rel, f"has no yyyy/mm/dd date ({year}/{month}/{day})") from exc
    if not name.endswith(".csv"):
        raise _bad(rel, f"names {name!r}, not a .csv file")
    return PurePosixPath(*parts)


def upload_allowed(scope_method: str, path: str, given: bytes, fetch_token: str | None) -> bool:
    """Whether ``given`` (an Authorization header) is the upload token of the service in ``path``."""
    if fetch_token is None or scope_method != "PUT":
        return False
    match = _UPLOAD_PATH.fullmatch(path)
    if match is None:
        return False
    expected = f"Bearer {upload_token(fetch_token, unquote(match.group(1)))}".encode()
    return hmac.compare_digest(given, expected)


def _target(ctx: ControlContext, service: str, rel: str) -> Path:
    validate_service_name(service)
    return data_root(ctx.settings.home) / service / check_data_path(rel)


async def put_data(request: Request) -> Response:
    """
    summary: Store one collected data file sent by a pod's uploader (idempotent by file name)
    requestBody: {content: {text/csv: {}}}
    responses:
      201: {description: "{path, bytes}: stored"}
      400: {description: a path outside the data layout}
      401: {description: neither the admin token nor this service's upload token}
      413: {description: the file is larger than the limit}
    """
    ctx: ControlContext = request.app.state.ctx
    service, rel = request.path_params["name"], request.path_params["path"]
    target = _target(ctx, service, rel)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > UPLOAD_MAX_BYTES:
        raise _too_large(int(declared))
    await run_in_threadpool(target.parent.mkdir, parents=True, exist_ok=True)
    part = target.parent / f".{target.name}.{uuid.uuid4().hex}.part"
    size = 0
    try:
        with open(part, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > UPLOAD_MAX_BYTES:
                    raise _too_large(size)
                await run_in_threadpool(out.write, chunk)
        await run_in_threadpool(os.replace, part, target)  # same name again: replaced, never appended
    finally:
        part.unlink(missing_ok=True)
    return JSONResponse({"path": str(target), "bytes": size}, status_code=201)


def _too_large(size: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"Data file of {size} bytes exceeds the upload limit of {UPLOAD_MAX_BYTES} bytes",
        hint="Rotate data files more often (MODELHOST_DATA_COLLECTION_ROTATE_S) so each stays smaller.",
    )


def routes() -> list[Route]:
    return [Route("/api/v1/services/{name}/data/{path:path}", put_data, methods=["PUT"])]
