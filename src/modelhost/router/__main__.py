"""``python -m modelhost.router``: run the front door for every service.

    python -m modelhost.router --port 8791 --table table.json --admin-token-file admin.token
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from modelhost.errors import ModelhostError
from modelhost.router.app import RouterConfig, run
from modelhost.router.k8s_discovery import DiscoveryOptions, serve_with_discovery
from modelhost.settings import DEFAULT_ROUTER_PORT

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> RouterConfig:
    """Flags map one-to-one onto :class:`RouterConfig` fields."""
    p = argparse.ArgumentParser(prog="python -m modelhost.router", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_ROUTER_PORT,
                   help="port (default %(default)s; 0 picks one)")
    p.add_argument("--table", type=Path, help="routing table JSON file, re-read when it changes")
    p.add_argument("--admin-token-file", type=Path,
                   help="file (mode 0600) holding the token that authorises GET/PUT /-/table")
    p.add_argument("--admin-token", help="deprecated: any local process can read it in ps; "
                   "use --admin-token-file")
    p.add_argument("--access-log", default="-", help="file path, '-' for stdout (default) or 'off'")
    p.add_argument("--max-body-mb", type=int, default=100, help="request body limit in MB (default 100)")
    p.add_argument("--pool-idle-timeout", type=float, default=4.0,
                   help="seconds an idle upstream connection is kept (keep below the replica's keep-alive)")
    p.add_argument("--connect-timeout", type=float, default=5.0, help="seconds to connect to a replica")
    p.add_argument("--certfile", type=Path, help="TLS certificate chain (PEM); serves HTTPS when given")
    p.add_argument("--keyfile", type=Path, help="TLS private key (PEM)")
    p.add_argument("--tls-dir", type=Path,
                   help="folder watched for cert.pem + key.pem: HTTPS while they exist (see docs/tls.md)")
    p.add_argument("--otlp-endpoint", help="OTLP/HTTP base URL for request telemetry "
                   "(default: OTEL_EXPORTER_OTLP_ENDPOINT; see docs/telemetry.md)")
    p.add_argument("--telemetry-dir", type=Path,
                   help="folder for requests.jsonl when no OTLP endpoint is set")
    p.add_argument("--workspace-name", default="", help="the spans' 'Workspace Name'")
    p.add_argument("--log-level", default="INFO", help="level of the router's own log (stderr)")
    # Kubernetes discovery (docs/kubernetes.md): the table from the API server instead of --table
    p.add_argument("--discover", choices=["kubernetes"], help="learn the routing table from Kubernetes")
    p.add_argument("--namespace", help="with --discover kubernetes: the namespace to watch")
    p.add_argument("--kubeconfig", type=Path, help="with --discover kubernetes: default in-cluster config")
    p.add_argument("--context", help="with --kubeconfig: its context (default: current)")
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return RouterConfig(host=a.host, port=a.port, table_path=a.table, admin_token=_admin_token(p, a),
                        access_log=a.access_log, max_body_bytes=a.max_body_mb * 1024 * 1024,
                        pool_idle_timeout_s=a.pool_idle_timeout, connect_timeout_s=a.connect_timeout,
                        certfile=a.certfile, keyfile=a.keyfile, tls_dir=a.tls_dir,
                        otlp_endpoint=a.otlp_endpoint, telemetry_dir=a.telemetry_dir,
                        workspace_name=a.workspace_name)


def _admin_token(parser: argparse.ArgumentParser, a: argparse.Namespace) -> str | None:
    """The token from ``--admin-token-file`` (read once at start), else the deprecated argument."""
    if a.admin_token_file is None:
        if a.admin_token is not None:
            logging.getLogger("modelhost.router").warning(
                "--admin-token puts the token on the command line, readable by every local process; "
                "use --admin-token-file"
            )
        return cast(str | None, a.admin_token)
    try:
        token: str = a.admin_token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        parser.error(f"--admin-token-file {a.admin_token_file}: {exc.strerror}")
    if not token:
        parser.error(f"--admin-token-file {a.admin_token_file} is empty")
    return token


def _discovery(argv: Sequence[str] | None) -> DiscoveryOptions | None:
    """``--discover kubernetes --namespace N [--kubeconfig F] [--context C]``, or None."""
    p = argparse.ArgumentParser(add_help=False)
    for flag in ("--discover", "--namespace", "--kubeconfig", "--context"):
        p.add_argument(flag)
    known, _ = p.parse_known_args(argv)
    if known.discover is None:
        return None
    if not known.namespace:
        raise SystemExit("router: --discover kubernetes needs --namespace")
    kubeconfig = Path(known.kubeconfig) if known.kubeconfig else None
    return DiscoveryOptions(known.namespace, kubeconfig, known.context)


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    discovery = _discovery(argv)
    try:
        if discovery is not None:
            serve_with_discovery(config, discovery)
        else:
            run(config)
    except ModelhostError as exc:
        print(f"router: {exc.one_line()}", file=sys.stderr)
        raise SystemExit(2) from exc
    except OSError as exc:
        print(f"router: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
