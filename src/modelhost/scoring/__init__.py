"""modelhost's scoring server: runs unchanged Azure ML v1 entry scripts (``init()`` / ``run()``).

It is a drop-in for ``azureml-inference-server-http`` 1.5.1 (CLI ``azmlinfsrv``) built on Starlette's
ASGI conventions and uvicorn (uvloop + httptools). The package is the slim base layer of modelhost that
every model environment installs, so it imports only the standard library, starlette, uvicorn, anyio
and inference-schema; numpy and pandas are imported lazily, only when the entry script uses them.

Start it with ``modelhost-score --entry_script score.py --model_dir ./model --port 5001`` (or
``python -m modelhost.scoring``, or the ``azmlinfsrv`` compatible command). See docs/scoring.md.

Importing this package is cheap: it defines no names beyond the submodules, which are imported on
demand.
"""

from __future__ import annotations

__all__: list[str] = []
