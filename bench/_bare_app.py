"""The Python ceiling for a scoring server: bare Starlette on uvicorn (uvloop + httptools).

POST /score hands the body, decoded, to the entry script's run() on a dedicated one-thread
executor (the event loop stays free) and returns ``json.dumps`` of the result; GET / is the health
probe. Usage: ``python bench/_bare_app.py ENTRY_SCRIPT PORT``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("entry_module", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    return module


def build(module: ModuleType) -> Starlette:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run")

    async def score(request: Request) -> Response:
        data = (await request.body()).decode("utf-8")
        result = await asyncio.get_running_loop().run_in_executor(executor, module.run, data)
        return Response(json.dumps(result), media_type="application/json")

    async def health(request: Request) -> Response:
        return PlainTextResponse("Healthy")

    return Starlette(routes=[Route("/score", score, methods=["POST"]), Route("/", health)])


def main() -> None:
    entry, port = Path(sys.argv[1]), int(sys.argv[2])
    uvicorn.run(build(load(entry)), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
