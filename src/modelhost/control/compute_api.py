"""``/api/v1/compute``: thin handlers over :class:`~modelhost.control.compute.ComputeService`.

No answer ever carries the kubeconfig (a secret); the attach body sends it once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.control.request_body import json_body

if TYPE_CHECKING:
    from modelhost.control.compute import ComputeService

__all__ = ["routes"]


def _compute(request: Request) -> ComputeService:
    compute: ComputeService = request.app.state.ctx.compute
    return compute


async def list_compute(request: Request) -> Response:
    """
    summary: The workspace's compute targets ('local' first, then attached clusters)
    responses:
      200: {description: "{value: [target, ...]}"}
    """
    return JSONResponse({"value": await run_in_threadpool(_compute(request).list_views)})


async def get_compute(request: Request) -> Response:
    """
    summary: One compute target (never its kubeconfig)
    responses:
      200: {description: the target}
      404: {description: unknown target}
    """
    name = request.path_params["name"]
    return JSONResponse(await run_in_threadpool(_compute(request).view, name))


async def attach_compute(request: Request) -> Response:
    """
    summary: Attach a Kubernetes cluster after checking that it answers and what the kubeconfig's user may do
    requestBody: {content: {application/json: {example: {type: Kubernetes, kubeconfig: "<text>",
      context: null, namespace: modelhost, cluster_purpose: FastProd}}}}
    responses:
      201: {description: the target}
      400: {description: "invalid body, unreachable cluster or missing permissions (each one named)"}
      409: {description: the name is taken}
    """
    name = request.path_params["name"]
    body = await json_body(request)
    return JSONResponse(await run_in_threadpool(_compute(request).attach, name, body), status_code=201)


async def detach_compute(request: Request) -> Response:
    """
    summary: Detach a cluster (the cluster is untouched); refused while services run on it
    responses:
      200: {description: "{name, detached: true}"}
      409: {description: services still run on it}
    """
    name = request.path_params["name"]
    return JSONResponse(await run_in_threadpool(_compute(request).detach, name))


async def install_router(request: Request) -> Response:
    """
    summary: Install (or update) the router on an attached cluster by server-side apply
    requestBody: {content: {application/json: {example: {image: "modelhost/modelhost:1.0",
      service_type: LoadBalancer, tls_secret: null}}}}
    responses:
      200: {description: "{name, namespace, image, applied: [Kind/name], replicas, clusterPurpose}"}
      400: {description: "invalid body, or the cluster refused an object (named)"}
      404: {description: unknown target}
    """
    from modelhost.control.compute_router import install_router as install

    name = request.path_params["name"]
    body = await json_body(request)
    return JSONResponse(await run_in_threadpool(install, _compute(request), name, body))


async def install_control(request: Request) -> Response:
    """
    summary: Install (or update) the control plane itself on an attached cluster by server-side apply
    requestBody: {content: {application/json: {example: {image: "modelhost/modelhost:1.0",
      storage: pvc, size: 10Gi, database_secret: null, artifact_url: null}}}}
    responses:
      200: {description: "{name, namespace, image, storage, applied, url, tokenFile, portForward}"}
      400: {description: "invalid body, or the cluster refused an object (named)"}
      404: {description: unknown target}
    """
    from modelhost.control.compute_install import install_control as install

    name = request.path_params["name"]
    body = await json_body(request)
    home = request.app.state.ctx.settings.home
    return JSONResponse(await run_in_threadpool(install, _compute(request), home, name, body))


async def control_status(request: Request) -> Response:
    """
    summary: The installed control plane's state on an attached cluster (Deployment and pod)
    responses:
      200: {description: "{installed, available, readyReplicas, pods: [{name, phase, podIP, waiting}]}"}
      404: {description: unknown target}
    """
    from modelhost.control.compute_install import control_status as status

    name = request.path_params["name"]
    return JSONResponse(await run_in_threadpool(status, _compute(request), name))


def routes() -> list[Route]:
    return [
        Route("/api/v1/compute", list_compute, methods=["GET"]),
        Route("/api/v1/compute/{name}", get_compute, methods=["GET"]),
        Route("/api/v1/compute/{name}", attach_compute, methods=["PUT"]),
        Route("/api/v1/compute/{name}", detach_compute, methods=["DELETE"]),
        Route("/api/v1/compute/{name}/router", install_router, methods=["POST"]),
        Route("/api/v1/compute/{name}/control", install_control, methods=["POST"]),
        Route("/api/v1/compute/{name}/control", control_status, methods=["GET"]),
    ]
