"""The control plane's blob API on its own, for tests of what reads it (the Kubernetes init container).

It serves the control plane's real handlers (``control.api.put_blob``/``get_blob``) behind its real
``BearerAuth`` middleware (admin token, plus the read-only fetch token for ``GET /api/v1/blobs/*``)
over a real :class:`ArtifactStore`, with uvicorn on 127.0.0.1 in a thread. The rest of the control
plane (store, router, runtime) is left out: nothing here needs it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.control import api
from modelhost.control.app import BearerAuth
from modelhost.errors import ModelhostError
from modelhost.store.artifacts import ArtifactStore
from tests.support.net import free_port, port_open

__all__ = ["BlobServer", "start_blob_server"]


@dataclass
class BlobServer:
    url: str
    admin_token: str
    fetch_token: str
    artifacts: ArtifactStore
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


async def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelhostError)
    return JSONResponse(exc.to_payload(), status_code=exc.status_code)


def start_blob_server(root: Path, admin_token: str, fetch_token: str) -> BlobServer:
    artifacts = ArtifactStore(root)
    app = Starlette(
        routes=[
            Route("/api/v1/blobs/{sha256}", api.put_blob, methods=["PUT"]),
            Route("/api/v1/blobs/{sha256}", api.get_blob, methods=["GET"]),
        ],
        middleware=[Middleware(BearerAuth, token=admin_token, blob_token=fetch_token)],
        exception_handlers={ModelhostError: _error},
    )
    app.state.ctx = SimpleNamespace(artifacts=artifacts)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="blob-server", daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not port_open(port):
        if time.monotonic() > end or not thread.is_alive():
            raise RuntimeError("the blob server did not start")
        time.sleep(0.02)
    return BlobServer(f"http://127.0.0.1:{port}", admin_token, fetch_token, artifacts, server, thread)
