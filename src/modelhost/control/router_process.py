"""The workspace's router as a process of its own: find it, start it detached, stop it.

The router outlives the control plane (it keeps serving its last table while the control plane is
down), so it is not a child that dies with it: it is spawned in a session of its own with
``posix_spawn`` and found again through ``<home>/router/router.json`` (mode 0600: it holds the
router's admin token, which the router reads from ``<home>/router/admin.token``, 0600, never from its
command line, which every local process can read)::

    {"pid": 1234, "port": 8791, "url": "http://127.0.0.1:8791", "token": "...", "argv": [...]}

Its table is ``<home>/router/table.json`` (0600: it holds service keys), which the router re-reads
when it changes, so a restarted router serves the last published table at once. Output goes to
``<home>/logs/router.log``, the access log to ``<home>/logs/router-access.log``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from modelhost.control.discovery import write_private
from modelhost.errors import ConflictError, ControlPlaneUnavailableError
from modelhost.runtime import processes
from modelhost.runtime.resources import ProcessLimits
from modelhost.sdk.local import pid_alive
from modelhost.settings import Settings

__all__ = [
    "RouterInfo",
    "ensure_router",
    "find_router",
    "read_router_info",
    "router_dir",
    "router_healthy",
    "stop_router",
    "table_file",
]

_log = logging.getLogger("modelhost.control")
_NO_LIMITS = ProcessLimits(cpus=(), nice=0, memory_bytes=0, gpus=())
START_DEADLINE_S = 20.0
STOP_DEADLINE_S = 12.0


@dataclass(frozen=True)
class RouterInfo:
    pid: int
    port: int
    url: str
    token: str
    argv: tuple[str, ...]

    def __repr__(self) -> str:
        return f"RouterInfo(pid={self.pid}, url={self.url!r})"


def router_dir(settings: Settings) -> Path:
    return settings.home / "router"


def table_file(settings: Settings) -> Path:
    return router_dir(settings) / "table.json"


def _info_file(settings: Settings) -> Path:
    return router_dir(settings) / "router.json"


def read_router_info(settings: Settings) -> RouterInfo | None:
    try:
        raw = json.loads(_info_file(settings).read_text(encoding="utf-8"))
        return RouterInfo(
            pid=int(raw["pid"]),
            port=int(raw["port"]),
            url=str(raw["url"]),
            token=str(raw["token"]),
            argv=tuple(str(a) for a in raw.get("argv", ())),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def router_healthy(info: RouterInfo, timeout_s: float = 1.0) -> bool:
    try:
        response = httpx.get(f"{info.url}/-/health", timeout=timeout_s)
        return response.status_code == 200 and response.json().get("status") == "ok"
    except (httpx.HTTPError, ValueError):
        return False


def _is_ours(info: RouterInfo) -> bool:
    """The recorded pid still runs the recorded router command (not a reused pid)."""
    return pid_alive(info.pid) and (not info.argv or processes.matches(info.pid, info.argv))


def find_router(settings: Settings) -> RouterInfo | None:
    """The workspace's live, healthy router on ``settings.router_port``, or None."""
    info = read_router_info(settings)
    if info is None or info.port != settings.router_port or not _is_ours(info):
        return None
    return info if router_healthy(info) else None


def _spawn(argv: list[str], log_path: Path) -> int:
    """Start the router detached (its own session), output appended to ``log_path``, with no file
    descriptor of ours but the standard ones: it must not keep the control plane's listening socket
    open after the control plane is gone."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return processes.spawn(argv, env=env, cwd=log_path.parent, log=log_path, limits=_NO_LIMITS)


def _reap(pid: int) -> int | None:
    """The exit code of ``pid`` once it exited (-1 when unknown: not our child), else None."""
    exited, code = processes.exit_status(pid)
    if not exited:
        return None
    return -1 if code is None else code


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line for line in text.splitlines()[-lines:] if line.strip())


def ensure_router(settings: Settings, *, deadline_s: float = START_DEADLINE_S) -> RouterInfo:
    """The workspace's router, started when none runs (a live one is reused).

    Raises ``ConflictError`` when the port is taken by another program, ``ControlPlaneUnavailableError``
    when the router does not come up in time.
    """
    running = find_router(settings)
    if running is not None:
        return running
    stale = read_router_info(settings)
    if stale is not None and stale.port != settings.router_port and _is_ours(stale):
        stop_router(settings)  # the workspace moved its router to another port
    router_dir(settings).mkdir(parents=True, exist_ok=True)
    os.chmod(router_dir(settings), 0o700)  # table, token, TLS keys: the control plane's alone
    table = table_file(settings)
    if not table.exists():
        write_private(table, json.dumps({"version": 0, "services": {}}) + "\n")
    token = secrets.token_urlsafe(32)
    token_path = router_dir(settings) / "admin.token"
    write_private(token_path, token + "\n")
    argv = [
        sys.executable, "-m", "modelhost.router",
        "--host", settings.host,
        "--port", str(settings.router_port),
        "--table", str(table),
        "--admin-token-file", str(token_path),
        "--access-log", str(settings.logs_dir / "router-access.log"),
        "--tls-dir", str(router_dir(settings) / "tls"),  # HTTPS while cert.pem + key.pem exist (docs/tls.md)
        "--telemetry-dir", str(settings.home / "telemetry"),  # request spans (docs/telemetry.md)
        "--workspace-name", settings.home.name,
    ]  # fmt: skip
    log_path = settings.logs_dir / "router.log"
    pid = _spawn(argv, log_path)
    url = f"http://{settings.host}:{settings.router_port}"
    info = RouterInfo(pid=pid, port=settings.router_port, url=url, token=token, argv=tuple(argv))
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if router_healthy(info, timeout_s=0.5):
            write_private(_info_file(settings), json.dumps({**asdict(info), "argv": argv}) + "\n")
            _log.info("router started on %s (pid %d)", url, pid)
            return info
        code = _reap(pid)
        if code is not None:
            tail = _log_tail(log_path)
            raise ConflictError(
                f"The router could not start on {settings.host}:{settings.router_port} (exit {code}): {tail}",
                hint="Another program may hold the port: choose another with MODELHOST_ROUTER_PORT.",
            )
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
    raise ControlPlaneUnavailableError(
        f"The router did not become healthy on {url} within {deadline_s:g} s",
        hint=f"Read its log at {log_path}.",
    )


def stop_router(settings: Settings, *, deadline_s: float = STOP_DEADLINE_S) -> RouterInfo | None:
    """Stop the workspace's router (SIGTERM: it drains requests in flight; SIGKILL after the
    deadline); returns what was stopped, None when none ran. ``table.json`` stays."""
    info = read_router_info(settings)
    if info is None:
        return None
    stopped: RouterInfo | None = None
    if _is_ours(info):
        for sig, wait_s in ((signal.SIGTERM, deadline_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, sig)
            end = time.monotonic() + wait_s
            while time.monotonic() < end and pid_alive(info.pid):
                _reap(info.pid)
                time.sleep(0.05)
            if not pid_alive(info.pid):
                break
        _reap(info.pid)
        stopped = info
    with contextlib.suppress(FileNotFoundError):
        _info_file(settings).unlink()
    return stopped
