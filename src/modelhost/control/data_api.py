"""Routes for collected model data: ``GET /api/v1/services/{name}/data`` (partitions, counters) and
``GET /api/v1/services/{name}/data/export`` (the rows, streamed). See :mod:`.data_collection`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from modelhost.control import data_collection as dc
from modelhost.control import data_upload
from modelhost.errors import NotFoundError
from modelhost.spec.deployment import config_from_payload

if TYPE_CHECKING:
    from modelhost.control.app import ControlContext

__all__ = ["routes"]

_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}


def _enabled(ctx: ControlContext, name: str) -> bool | None:
    """Whether the service collects; None for a deleted service whose data is still on disk."""
    try:
        record = ctx.store.get_service(name)
    except NotFoundError:
        if dc.list_partitions(dc.data_root(ctx.settings.home), name):
            return None  # the data outlives its service, as v1's blobs did
        raise  # 404 with v1's WebserviceNotFound wording
    return config_from_payload(record.config).runtime_settings().collect_model_data


def _off_message(name: str) -> str:
    return (
        f"Service {name} does not collect model data (collect_model_data is False); enable it with "
        "service.update(collect_model_data=True) or deploy with collect_model_data=True"
    )


def _listing(ctx: ControlContext, name: str) -> dict[str, Any]:
    enabled = _enabled(ctx, name)
    root = dc.data_root(ctx.settings.home)
    partitions = dc.partition_summaries(dc.list_partitions(root, name))
    collectors = dc.collector_stats(root, name)
    out: dict[str, Any] = {
        "service": name,
        "collectModelData": bool(enabled),
        "path": str(root / name),
        "partitions": partitions,
        "totals": {k: sum(p[k] for p in partitions) for k in ("files", "rows", "bytes")},
        "collectors": collectors,
        "dropped": sum(int(c.get("dropped", 0)) for c in collectors),
    }
    if enabled is None:
        out["message"] = f"Service {name} was deleted; the data it collected remains under {out['path']}"
    elif not enabled:
        out["message"] = _off_message(name)
    return out


async def list_data(request: Request) -> Response:
    """
    summary: Collected model data of a service (partitions with files, rows, bytes; writer counters)
    responses:
      200: {description: "{service, collectModelData, path, partitions, totals, collectors, dropped}"}
      404: {description: no such service}
    """
    ctx: ControlContext = request.app.state.ctx
    return JSONResponse(await run_in_threadpool(_listing, ctx, request.path_params["name"]))


def _export(ctx: ControlContext, name: str, params: dict[str, str]) -> tuple[dc.ExportQuery, Any]:
    query = dc.export_query(params.get("model"), params.get("designation"), params.get("since"),
                            params.get("format"))
    enabled = _enabled(ctx, name)
    root = dc.data_root(ctx.settings.home)
    if not enabled and not dc.list_partitions(root, name):
        raise NotFoundError(
            f"Service {name} has no collected model data: collect_model_data is False",
            hint="Enable it with service.update(collect_model_data=True), score, then export again.",
        )
    return query, dc.export(root, name, query)


async def export_data(request: Request) -> Response:
    """
    summary: Collected rows merged into one table (one header), streamed
    parameters:
      - {name: model, in: query, schema: {type: string}}
      - {name: designation, in: query, schema: {type: string}}
      - {name: since, in: query, schema: {type: string, format: date}}
      - {name: format, in: query, schema: {type: string, enum: [csv, jsonl, parquet]}}
    responses:
      200: {description: the rows}
      400: {description: bad format or date}
      404: {description: no such service, or a service that never collected data}
    """
    ctx: ControlContext = request.app.state.ctx
    name = request.path_params["name"]
    query, chunks = await run_in_threadpool(_export, ctx, name, dict(request.query_params))
    return StreamingResponse(chunks, media_type=_MEDIA[query.format])


def routes() -> list[Route]:
    return [
        Route("/api/v1/services/{name}/data", list_data, methods=["GET"]),
        Route("/api/v1/services/{name}/data/export", export_data, methods=["GET"]),
        *data_upload.routes(),  # PUT .../data/{path}: files from pods' uploader sidecars
    ]
