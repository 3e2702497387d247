"""``python -m modelhost.router``: run the front door for every service.

    python -m modelhost.router --port 8791 --table table.json --admin-token TOKEN
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from modelhost.errors import ModelhostError
from modelhost.router.app import RouterConfig, run
from modelhost.settings import DEFAULT_ROUTER_PORT

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> RouterConfig:
    """Flags map one-to-one onto :class:`RouterConfig` fields."""
    p = argparse.ArgumentParser(prog="python -m modelhost.router", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_ROUTER_PORT,
                   help="port (default %(default)s; 0 picks one)")
    p.add_argument("--table", type=Path, help="routing table JSON file, re-read when it changes")
    p.add_argument("--admin-token", help="token that authorises GET/PUT /-/table")
    p.add_argument("--access-log", default="-", help="file path, '-' for stdout (default) or 'off'")
    p.add_argument("--max-body-mb", type=int, default=100, help="request body limit in MB (default 100)")
    p.add_argument("--pool-idle-timeout", type=float, default=4.0,
                   help="seconds an idle upstream connection is kept (keep below the replica's keep-alive)")
    p.add_argument("--connect-timeout", type=float, default=5.0, help="seconds to connect to a replica")
    p.add_argument("--certfile", type=Path, help="TLS certificate chain (PEM); serves HTTPS when given")
    p.add_argument("--keyfile", type=Path, help="TLS private key (PEM)")
    p.add_argument("--log-level", default="INFO", help="level of the router's own log (stderr)")
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return RouterConfig(host=a.host, port=a.port, table_path=a.table, admin_token=a.admin_token,
                        access_log=a.access_log, max_body_bytes=a.max_body_mb * 1024 * 1024,
                        pool_idle_timeout_s=a.pool_idle_timeout, connect_timeout_s=a.connect_timeout,
                        certfile=a.certfile, keyfile=a.keyfile)


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        run(config)
    except ModelhostError as exc:
        print(f"router: {exc.one_line()}", file=sys.stderr)
        raise SystemExit(2) from exc
    except OSError as exc:
        print(f"router: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
