"""Entry points: ``modelhost-score`` / ``python -m modelhost.scoring`` (:func:`main`) and ``azmlinfsrv``
(:func:`main_azmlinfsrv`).

Both take azureml-inference-server-http 1.5.1's arguments and environment variables and print its
banner; they differ only in the default ``--host``: ``modelhost-score`` listens on 127.0.0.1,
``azmlinfsrv`` on 0.0.0.0 like v1.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

__all__ = ["main", "main_azmlinfsrv", "serve"]


def serve(argv: Sequence[str] | None, *, prog: str, default_host: str) -> int:
    """Parse the command line, print v1's banner, bind the ports and supervise the workers."""
    from . import cli
    from .logs import configure_logging, flush_streams

    args = cli.parse_args(argv, prog=prog, default_host=default_host)
    configure_logging()
    import modelhost

    logging.getLogger("azmlinfsrv").info(
        f"modelhost scoring server {modelhost.__version__} "
        f"(azureml-inference-server-http {cli.V1_SERVER_VERSION} compatible)"
    )
    cli.merge_into_env(args, os.environ, os.getcwd())
    for line in cli.validate_env(os.environ):
        print(line)
    for line in cli.banner_lines(os.environ):
        print(line)
    flush_streams()

    from .supervisor import Supervisor, bind_sockets

    ports = [int(os.environ["SERVER_PORT"])]
    if os.environ.get("SEPERATE_HEALTH_ENDPOINT") == "true":
        ports.append(int(os.environ["HEALTH_PORT"]))
    try:
        sockets = bind_sockets(args.host, ports)
    except OSError as exc:
        logging.getLogger("modelhost.scoring").error(f"Cannot listen on {args.host}:{ports}: {exc}")
        flush_streams()
        return 1
    import uvicorn  # noqa: F401 - imported before forking so that restarted workers start faster

    workers = int(os.environ.get("WORKER_COUNT", "1") or 1)
    return Supervisor(sockets, max(1, workers)).run()


def main(argv: Sequence[str] | None = None) -> None:
    """``modelhost-score``: listens on 127.0.0.1 unless ``--host`` says otherwise."""
    sys.exit(serve(argv, prog="modelhost-score", default_host="127.0.0.1"))


def main_azmlinfsrv(argv: Sequence[str] | None = None) -> None:
    """``azmlinfsrv``: v1's command, listening on 0.0.0.0 like v1."""
    sys.exit(serve(argv, prog="azmlinfsrv", default_host="0.0.0.0"))


if __name__ == "__main__":
    main()
