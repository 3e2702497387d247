"""Run the control-plane process: :func:`serve` (``modelhost up``, ``python -m modelhost.control``),
and stop everything of a workspace: :func:`stop_all` (``modelhost down``).

One control plane per workspace: ``<home>/control.run.lock`` is held for its lifetime. It binds
``host:control_port`` before anything else, so a taken port fails fast with a clear error, then
opens the store, publishes ``control.json`` and runs uvicorn until SIGINT/SIGTERM, after which it
removes ``control.json`` and closes the store. Clients find, start and stop it through
:mod:`modelhost.sdk.local`.

The router and the replicas are processes of their own that outlive the control plane (a restarted
control plane re-adopts them); :func:`stop_all` stops the control plane, then the replicas, then
the router. The next ``modelhost up`` starts them again: the runtime restarts the replicas it
recorded, the control plane redeploys services whose runtime state is gone.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from filelock import FileLock, Timeout

from modelhost import __version__
from modelhost.control.discovery import remove_info, write_info
from modelhost.errors import ConflictError, ControlPlaneUnavailableError
from modelhost.sdk import local
from modelhost.sdk.local import ControlInfo, read_info
from modelhost.settings import Settings

__all__ = ["StopReport", "configure_logging", "serve", "stop_all", "stop_replicas"]

_log = logging.getLogger("modelhost.control")


def configure_logging() -> None:
    """Plain timestamped lines on stderr (the log file when spawned)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin at import
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the router is polled several times a second


# -- the server process ------------------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConflictError(
                f"Port {port} on {host} is already in use by another program; "
                "the control plane cannot listen",
                hint=f"Stop that program, or choose another port with MODELHOST_CONTROL_PORT (or --port), "
                f"e.g. MODELHOST_CONTROL_PORT={port + 10}.",
            ) from exc
        raise ControlPlaneUnavailableError(
            f"Cannot listen on {host}:{port}: {exc.strerror}",
            hint="Check MODELHOST_HOST and MODELHOST_CONTROL_PORT.",
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _run_lock(settings: Settings) -> FileLock:
    lock = FileLock(str(settings.home / "control.run.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        info = read_info(settings.discovery_file)
        where = f" at {info.url} (pid {info.pid})" if info else ""
        raise ConflictError(
            f"A control plane already runs for the workspace {settings.home}{where}",
            hint="Use it, or stop it first with 'modelhost down'.",
        ) from exc
    return lock


def serve(settings: Settings) -> None:
    """Run the control plane in this process until SIGINT/SIGTERM (raises ``ModelhostError`` at start)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    lock = _run_lock(settings)
    try:
        sock = _bind(settings.host, settings.control_port)
        try:
            # the server's dependencies load only once the workspace and the port are ours
            import uvicorn

            from modelhost.control._uvicorn import QuietExitServer
            from modelhost.control.app import create_app, open_context
            from modelhost.control.in_cluster import admin_token
            from modelhost.control.tls_config import control_tls_from_env, load_front_door

            # a bad certificate fails the start before anything else is started
            tls = control_tls_from_env(os.environ, settings, datetime.now(UTC))
            token = admin_token(os.environ, settings.home)  # a mounted Secret in a cluster
            load_front_door(settings)  # scoring URIs say https:// while the router serves TLS
            ctx = open_context(settings, token)
            if tls is not None:
                ctx.url = tls.url(settings)
            try:
                config = uvicorn.Config(
                    create_app(ctx),
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=3,
                    server_header=False,
                    **(tls.uvicorn_options() if tls is not None else {}),
                )
                info = ControlInfo(url=ctx.url, token=token, pid=os.getpid(), version=__version__,
                                   ca_pem=tls.chain_pem if tls is not None else None)
                write_info(settings.discovery_file, info)
                _log.info(
                    "control plane %s for workspace %s listening on %s", __version__, settings.home, ctx.url
                )
                try:
                    QuietExitServer(config).run(sockets=[sock])
                finally:
                    remove_info(settings.discovery_file, os.getpid())
                    _log.info("control plane stopped")
            finally:
                ctx.close()
        finally:
            sock.close()
    finally:
        lock.release()


# -- stopping everything -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopReport:
    """What :func:`stop_all` stopped: the control plane (None: none ran), how many replica
    processes, and the router's pid (None: none ran)."""

    control_plane: ControlInfo | None
    replicas: int
    router_pid: int | None


def stop_replicas(settings: Settings, *, grace_s: float = 10.0) -> int:
    """Stop every replica process the local runtime recorded for the workspace (SIGTERM to its
    process group, SIGKILL after ``grace_s``); the records stay, so the next control plane starts
    them again. Only call it while no control plane supervises them. Returns how many it stopped."""
    from modelhost.runtime import processes, state

    pids = []
    for path in sorted((settings.home / "runtime" / "local").glob("*.json")):
        try:
            record = state.load(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _log.warning("cannot read %s: %s", path, exc)
            continue
        for replica in record.replicas:
            pid = replica.pid
            if pid is not None and processes.is_running(pid) and processes.matches(pid, replica.argv):
                processes.signal_group(pid, signal.SIGTERM)
                pids.append(pid)
    end = time.monotonic() + grace_s
    while time.monotonic() < end and any(processes.is_running(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if processes.is_running(pid):
            processes.signal_group(pid, signal.SIGKILL)
    return len(pids)


def stop_all(settings: Settings) -> StopReport:
    """``modelhost down``: stop the control plane, the replicas and the router of the workspace."""
    from modelhost.control.router_process import stop_router

    control = local.stop(settings)
    replicas = stop_replicas(settings)
    router = stop_router(settings)
    return StopReport(control_plane=control, replicas=replicas, router_pid=router.pid if router else None)
