"""``GET /api/v1/services/{name}/requests``: the service's request records (``modelhost service logs
--requests``), read from the router's ``<home>/telemetry/requests.jsonl`` (docs/telemetry.md)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.control.telemetry_logs import request_records
from modelhost.errors import ValidationError

__all__ = ["routes"]


async def service_requests(request: Request) -> Response:
    """
    summary: The service's request records, newest last (time, request id, status, duration, error)
    parameters:
      - {name: tail, in: query, schema: {type: integer}}
    responses:
      200: {description: "{requests: [...], file}"}
      404: {description: no such service}
    """
    ctx = request.app.state.ctx
    name = request.path_params["name"]
    raw = request.query_params.get("tail", "100")
    try:
        tail = int(raw)
    except ValueError as exc:
        raise ValidationError(f"Query parameter tail={raw!r} is not an integer",
                              hint="Pass tail as a whole number of records, e.g. tail=100.") from exc
    if tail < 0:
        raise ValidationError(f"Query parameter tail={tail} is negative", hint="Pass tail >= 0.")
    await run_in_threadpool(ctx.services.view, name)  # 404 for an unknown service
    folder = ctx.settings.home / "telemetry"
    records = await run_in_threadpool(request_records, folder, name, tail)
    return JSONResponse({"requests": records, "file": str(folder / "requests.jsonl")})


def routes() -> list[Route]:
    return [Route("/api/v1/services/{name}/requests", service_requests, methods=["GET"])]
