"""The workspace REST API: thin handlers that parse a request, call a service and render JSON.

Every route under ``/api/v1`` needs ``Authorization: Bearer <admin token>`` (see :mod:`.app`); errors
are rendered by the one handler in :mod:`.app`. Blocking service calls (store, files) run on the
thread pool. The YAML after ``---`` in each docstring feeds ``/openapi.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.from_thread
import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from modelhost import __version__
from modelhost.control import compute_api, data_api, telemetry_api, tls_config, token_api
from modelhost.control.environments import environment_to_dict
from modelhost.control.models import model_to_dict, validate_digest
from modelhost.control.request_body import json_body
from modelhost.errors import ValidationError

if TYPE_CHECKING:
    from modelhost.control.app import ControlContext
    from modelhost.control.operations import Operation

__all__ = ["MAX_WAIT_S", "routes"]

MAX_WAIT_S = 60.0
T = TypeVar("T")

schemas = SchemaGenerator(
    {"openapi": "3.0.0", "info": {"title": "modelhost control plane", "version": __version__}}
)


def _ctx(request: Request) -> ControlContext:
    ctx: ControlContext = request.app.state.ctx
    return ctx


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


def _int_param(request: Request, key: str, default: int) -> int:
    raw = request.query_params.get(key)
    try:
        return default if raw is None else int(raw)
    except ValueError as exc:
        raise ValidationError(f"Query parameter {key}={raw!r} is not an integer") from exc


def _float_param(request: Request, key: str, default: float) -> float:
    raw = request.query_params.get(key)
    try:
        return default if raw is None else float(raw)
    except ValueError as exc:
        raise ValidationError(f"Query parameter {key}={raw!r} is not a number") from exc


def _bool_param(request: Request, key: str) -> bool:
    return request.query_params.get(key, "").lower() in ("1", "true", "yes")


async def healthz(request: Request) -> Response:
    """
    summary: Liveness of the control plane (no token needed)
    responses:
      200: {description: "{status, version, pid}"}
    """
    return JSONResponse({"status": "ok", "version": __version__, "pid": os.getpid()})


async def openapi(request: Request) -> Response:
    """
    summary: This API's OpenAPI document (no token needed)
    responses:
      200: {description: OpenAPI 3 document}
    """
    return JSONResponse(schemas.get_schema(routes=request.app.routes))


async def workspace(request: Request) -> Response:
    """
    summary: The workspace this control plane serves
    responses:
      200: {description: "{name, home, version, database, pid}"}
    """
    return JSONResponse(_ctx(request).describe())


async def blobs_missing(request: Request) -> Response:
    """
    summary: Which of the given sha256 digests the artifact store lacks
    requestBody: {content: {application/json: {example: {digests: ["<sha256>"]}}}}
    responses:
      200: {description: "{missing: [sha256, ...]}"}
    """
    body = await json_body(request)
    digests = body.get("digests") if isinstance(body, dict) else None
    if not isinstance(digests, list):
        raise ValidationError("Expected a body {'digests': [sha256, ...]}")
    return JSONResponse({"missing": await _call(_ctx(request).models.missing_blobs, digests)})


async def put_blob(request: Request) -> Response:
    """
    summary: Upload one blob; the body is streamed to disk and must hash to the sha256 in the path
    requestBody: {content: {application/octet-stream: {}}}
    responses:
      201: {description: "{sha256, size}"}
      400: {description: the body does not match the digest}
    """
    digest = validate_digest(request.path_params["sha256"])
    artifacts = _ctx(request).artifacts
    source = request.stream().__aiter__()

    async def next_chunk() -> bytes | None:
        try:
            return await source.__anext__()
        except StopAsyncIteration:
            return None

    def chunks() -> Iterator[bytes]:
        # runs on a worker thread; each chunk is awaited on the event loop, so nothing is buffered whole
        while (chunk := anyio.from_thread.run(next_chunk)) is not None:
            if chunk:
                yield chunk

    stored = await anyio.to_thread.run_sync(lambda: artifacts.put_stream(chunks(), expected_sha256=digest))
    return JSONResponse({"sha256": stored, "size": await _call(artifacts.size, stored)}, status_code=201)


async def get_blob(request: Request) -> Response:
    """
    summary: Download one blob by its sha256
    responses:
      200: {description: the blob's bytes}
      404: {description: no such blob}
    """
    digest = validate_digest(request.path_params["sha256"])
    path = await _call(_ctx(request).artifacts.path, digest)
    return FileResponse(path, media_type="application/octet-stream")


async def list_models(request: Request) -> Response:
    """
    summary: List model versions (filters name, tag=k or k=v, property=k or k=v, latest, framework)
    responses:
      200: {description: "{value: [model, ...]}"}
    """
    q = request.query_params
    records = await _call(
        _ctx(request).models.list,
        name=q.get("name"),
        tags=q.getlist("tag"),
        properties=q.getlist("property"),
        latest=_bool_param(request, "latest"),
        framework=q.get("framework"),
    )
    return JSONResponse({"value": [model_to_dict(r) for r in records]})


async def register_model(request: Request) -> Response:
    """
    summary: Register a new version of a model from uploaded blobs
    requestBody: {content: {application/json: {example: {name: m, basename: model.pkl, is_dir: false,
      files: [{path: model.pkl, sha256: "<sha256>", size: 10, executable: false}], tags: {}, properties: {},
      description: null, framework: null, framework_version: null}}}}
    responses:
      201: {description: the model version}
      400: {description: invalid manifest or a blob not uploaded}
    """
    record = await _call(_ctx(request).models.register, await json_body(request))
    return JSONResponse(model_to_dict(record), status_code=201)


def _version(request: Request) -> int | None:
    raw = request.path_params.get("version")
    return None if raw is None else int(raw)


async def get_model(request: Request) -> Response:
    """
    summary: One model version (the latest without a version)
    responses:
      200: {description: the model version}
      404: {description: no such model}
    """
    record = await _call(_ctx(request).models.get, request.path_params["name"], _version(request))
    return JSONResponse(model_to_dict(record))


async def update_model(request: Request) -> Response:
    """
    summary: Add or remove tags, add properties
    requestBody:
      content: {application/json: {example: {add_tags: {k: v}, remove_tags: [k2], add_properties: {}}}}
    responses:
      200: {description: the model version}
    """
    p = request.path_params
    record = await _call(_ctx(request).models.update_tags, p["name"], p["version"], await json_body(request))
    return JSONResponse(model_to_dict(record))


async def delete_model(request: Request) -> Response:
    """
    summary: Delete a model version (refused while a service uses it)
    responses:
      200: {description: "{deleted: id}"}
      409: {description: the model is in use}
    """
    p = request.path_params
    await _call(_ctx(request).models.delete, p["name"], p["version"])
    return JSONResponse({"deleted": f"{p['name']}:{p['version']}"})


async def list_environments(request: Request) -> Response:
    """
    summary: List environment versions
    responses:
      200: {description: "{value: [environment, ...]}"}
    """
    records = await _call(_ctx(request).environments.list)
    return JSONResponse({"value": [environment_to_dict(r, with_log=False) for r in records]})


async def register_environment(request: Request) -> Response:
    """
    summary: Register an environment (a new version when its spec changed)
    requestBody:
      content: {application/json: {example: {name: env, conda_yaml: "dependencies: [python=3.11]"}}}
    responses:
      201: {description: the environment version}
      400: {description: invalid specification}
    """
    record = await _call(_ctx(request).environments.register, await json_body(request))
    return JSONResponse(environment_to_dict(record), status_code=201)


async def get_environment(request: Request) -> Response:
    """
    summary: One environment version with its build log (the latest without a version)
    responses:
      200: {description: the environment version}
      404: {description: no such environment}
    """
    record = await _call(_ctx(request).environments.get, request.path_params["name"], _version(request))
    return JSONResponse(environment_to_dict(record))


async def build_environment(request: Request) -> Response:
    """
    summary: Start (or join) the build of an environment version; answers at once with the operation
    requestBody: {content: {application/json: {example: {version: 1}}}}
    responses:
      202: {description: "the operation; follow it at /api/v1/operations/{id}"}
    """
    body = await json_body(request)
    version = body.get("version") if isinstance(body, dict) else None
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValidationError(f"'version' must be an integer, got {version!r}")
    op = await _call(_ctx(request).environments.build, request.path_params["name"], version)
    return JSONResponse(
        op.to_dict(), status_code=202, headers={"Operation-Location": f"/api/v1/operations/{op.id}"}
    )


async def prune_environments(request: Request) -> Response:
    """
    summary: Remove built environments no ready environment needs
    responses:
      200: {description: "{removed: [path, ...]}"}
    """
    return JSONResponse({"removed": await _call(_ctx(request).environments.prune)})


async def list_operations(request: Request) -> Response:
    """
    summary: Recent operations (without their logs)
    responses:
      200: {description: "{value: [operation, ...]}"}
    """
    ops = _ctx(request).operations.list()
    return JSONResponse({"value": [{**op.to_dict(), "log": []} for op in ops]})


async def get_operation(request: Request) -> Response:
    """
    summary: "An operation's state and its log from offset on; wait=s long-polls for new lines"
    parameters:
      - {name: offset, in: query, schema: {type: integer}}
      - {name: wait, in: query, schema: {type: number}}
    responses:
      200: {description: "{id, kind, target, state, started, ended, error, result, log, next_offset}"}
    """
    op = _ctx(request).operations.get(request.path_params["id"])
    offset = max(_int_param(request, "offset", 0), 0)
    wait = min(max(_float_param(request, "wait", 0.0), 0.0), MAX_WAIT_S)
    if wait > 0:
        await op.wait(offset, wait)
    return JSONResponse(op.to_dict(offset))


def _accepted(op: Operation, service: dict[str, Any]) -> Response:
    return JSONResponse(
        {"operation": op.to_dict(), "service": service},
        status_code=202,
        headers={"Operation-Location": f"/api/v1/operations/{op.id}"},
    )


async def list_services(request: Request) -> Response:
    """
    summary: List services (filters compute_type, model=name[:version], tag=k|k=v, property=k|k=v)
    responses:
      200: {description: "{value: [service, ...]}"}
    """
    q = request.query_params
    value = await _call(
        _ctx(request).services.list_views,
        compute_type=q.get("compute_type") or q.get("computeType"),
        model=q.get("model"),
        tags=q.getlist("tag"),
        properties=q.getlist("property"),
    )
    return JSONResponse({"value": value})


async def create_service(request: Request) -> Response:
    """
    summary: Deploy a service (v1 Model.deploy); answers at once with the deploy operation
    requestBody: {content: {application/json: {example: {name: iris-svc, models: ["iris:1"],
      entry_script: score.py, source_directory: src, snapshot: "<sha256>", environment: null,
      deployment_config: {computeType: AKS}, overwrite: false}}}}
    responses:
      202: {description: "{operation, service}; follow the operation at Operation-Location"}
      400: {description: every violation of the request, or an entry script that does not parse}
      404: {description: unknown model, environment or snapshot}
      409: {description: the name exists (without overwrite) or an operation runs on it}
    """
    op, service = await _call(_ctx(request).services.create, await json_body(request))
    return _accepted(op, service)


async def get_service(request: Request) -> Response:
    """
    summary: One service (v1's GET shape plus a modelhost block)
    responses:
      200: {description: the service}
      404: {description: "WebserviceNotFound"}
    """
    return JSONResponse(await _call(_ctx(request).services.view, request.path_params["name"]))


async def update_service(request: Request) -> Response:
    """
    summary: Update a service ({changes, models?, entry_script?, snapshot?, environment?} or a JSON patch)
    responses:
      202: {description: "{operation, service}"}
      400: {description: every violation of the update}
      409: {description: an operation runs on the service}
    """
    patch = "json-patch" in request.headers.get("content-type", "")
    body = await json_body(request)
    op, service = await _call(
        _ctx(request).services.update,
        request.path_params["name"],
        body,
        json_patch=patch or isinstance(body, list),
    )
    return _accepted(op, service)


async def delete_service(request: Request) -> Response:
    """
    summary: Delete a service (stops replicas, removes routes, frees its models)
    responses:
      202: {description: "{operation, service}"}
      404: {description: no such service}
    """
    op, service = await _call(_ctx(request).services.delete, request.path_params["name"])
    return _accepted(op, service)


async def list_keys(request: Request) -> Response:
    """
    summary: The service's two keys (v1 get_keys)
    responses:
      200: {description: "{primaryKey, secondaryKey}"}
      400: {description: a Local service has no keys}
    """
    return JSONResponse(await _call(_ctx(request).services.list_keys, request.path_params["name"]))


async def regenerate_keys(request: Request) -> Response:
    """
    summary: Regenerate (or set) one key (v1 regen_key); an operation
    requestBody: {content: {application/json: {example: {keyType: Primary, keyValue: null}}}}
    responses:
      202: {description: "{operation, service}"}
    """
    op, service = await _call(
        _ctx(request).services.regenerate_keys, request.path_params["name"], await json_body(request)
    )
    return _accepted(op, service)


async def service_logs(request: Request) -> Response:
    """
    summary: The replicas' logs (v1 get_logs)
    parameters:
      - {name: tail, in: query, schema: {type: integer}}
      - {name: init, in: query, schema: {type: boolean}}
    responses:
      200: {description: "{content}"}
    """
    content = await _call(
        _ctx(request).services.logs,
        request.path_params["name"],
        tail=max(_int_param(request, "tail", 5000), 0),
        init=_bool_param(request, "init"),
    )
    return JSONResponse({"content": content})


async def reload_service(request: Request) -> Response:
    """
    summary: Restart a Local service's replica with a fresh copy of its source (v1 LocalWebservice.reload)
    responses:
      202: {description: "{operation, service}"}
    """
    op, service = await _call(
        _ctx(request).services.reload, request.path_params["name"], await json_body(request)
    )
    return _accepted(op, service)


async def router_status(request: Request) -> Response:
    """
    summary: The workspace's router
    responses:
      200: {description: "{url, pid, healthy, error}"}
    """
    return JSONResponse(await _call(_ctx(request).router_status))


def routes() -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
        Route("/api/v1/workspace", workspace, methods=["GET"]),
        Route("/api/v1/blobs/missing", blobs_missing, methods=["POST"]),
        Route("/api/v1/blobs/{sha256}", put_blob, methods=["PUT"]),
        Route("/api/v1/blobs/{sha256}", get_blob, methods=["GET"]),
        Route("/api/v1/models", list_models, methods=["GET"]),
        Route("/api/v1/models", register_model, methods=["POST"]),
        Route("/api/v1/models/{name}", get_model, methods=["GET"]),
        Route("/api/v1/models/{name}/{version:int}", get_model, methods=["GET"]),
        Route("/api/v1/models/{name}/{version:int}", update_model, methods=["PATCH"]),
        Route("/api/v1/models/{name}/{version:int}", delete_model, methods=["DELETE"]),
        Route("/api/v1/environments", list_environments, methods=["GET"]),
        Route("/api/v1/environments", register_environment, methods=["POST"]),
        Route("/api/v1/environments/prune", prune_environments, methods=["POST"]),
        Route("/api/v1/environments/{name}", get_environment, methods=["GET"]),
        Route("/api/v1/environments/{name}/{version:int}", get_environment, methods=["GET"]),
        Route("/api/v1/environments/{name}/build", build_environment, methods=["POST"]),
        Route("/api/v1/services", list_services, methods=["GET"]),
        Route("/api/v1/services", create_service, methods=["POST"]),
        Route("/api/v1/services/{name}", get_service, methods=["GET"]),
        Route("/api/v1/services/{name}", update_service, methods=["PATCH"]),
        Route("/api/v1/services/{name}", delete_service, methods=["DELETE"]),
        Route("/api/v1/services/{name}/listkeys", list_keys, methods=["POST"]),
        Route("/api/v1/services/{name}/regenerateKeys", regenerate_keys, methods=["POST"]),
        Route("/api/v1/services/{name}/logs", service_logs, methods=["GET"]),
        Route("/api/v1/services/{name}/reload", reload_service, methods=["POST"]),
        *data_api.routes(),
        *token_api.routes(),
        Route("/api/v1/router", router_status, methods=["GET"]),
        *tls_config.routes(),
        *compute_api.routes(),
        *telemetry_api.routes(),
        Route("/api/v1/operations", list_operations, methods=["GET"]),
        Route("/api/v1/operations/{id}", get_operation, methods=["GET"]),
    ]
