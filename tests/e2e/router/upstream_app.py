"""A stand-in replica for the router's end-to-end tests: echo, sleep, 500, crash, chunked stream.

Run: ``python tests/e2e/router/upstream_app.py --port P --replica-id ID``. ``GET /stats`` (not
routed by the router; tests call it directly) reports how many requests reached this replica.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

REPLICA_ID = "replica"
SEEN = {"requests": 0, "in_flight": 0, "max_in_flight": 0}


def _ids(request: Request) -> dict[str, str]:
    # What the scoring server does (v1 §5.5): echo x-request-id or make one up.
    return {"x-request-id": request.headers.get("x-request-id") or str(uuid.uuid4()),
            "x-replica-id": REPLICA_ID}


async def _stream(parts: int) -> AsyncIterator[bytes]:
    for i in range(parts):
        yield f"part{i};".encode()
        await asyncio.sleep(0.01)


async def score(request: Request) -> Response:
    SEEN["requests"] += 1
    SEEN["in_flight"] += 1
    SEEN["max_in_flight"] = max(SEEN["max_in_flight"], SEEN["in_flight"])
    try:
        q = request.query_params
        body = await request.body()
        if "crash" in q:
            os._exit(3)  # the replica dies mid-request, as an OOM kill would
        if "sleep" in q:
            await asyncio.sleep(float(q["sleep"]))
        if q.get("status") == "500":
            return JSONResponse({"message": "run() failed"}, status_code=500, headers=_ids(request))
        if "chunks" in q:
            return StreamingResponse(_stream(int(q["chunks"])), media_type="text/plain",
                                     headers=_ids(request))
        return JSONResponse({
            "replica": REPLICA_ID, "method": request.method, "path": request.url.path,
            "query": request.url.query, "body_len": len(body), "body": body[:1000].decode("latin-1"),
            "headers": {k: v for k, v in request.headers.items()},
        }, headers=_ids(request))
    finally:
        SEEN["in_flight"] -= 1


async def swagger(request: Request) -> Response:
    return JSONResponse({"swagger": "2.0", "replica": REPLICA_ID, "query": request.url.query})


async def stats(request: Request) -> Response:
    return JSONResponse(SEEN)


app = Starlette(routes=[
    Route("/score", score, methods=["GET", "POST"]),
    Route("/swagger.json", swagger),
    Route("/v2/{rest:path}", score, methods=["GET", "POST"]),
    Route("/stats", stats),
])


def main() -> None:
    global REPLICA_ID
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--replica-id", default="replica")
    a = p.parse_args()
    REPLICA_ID = a.replica_id
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", http="httptools", loop="uvloop")


if __name__ == "__main__":
    main()
