"""The local control plane as a client sees it: find it, start it in the background, stop it.

The control plane publishes ``<home>/control.json`` (mode 0600) once it listens and removes it when
it stops::

    {"url": "http://127.0.0.1:8790", "token": "...", "pid": 1234, "version": "0.1.0"}

* :func:`ensure_running` is what the SDK and the CLI call, as ``ray.init()`` does: reuse the healthy
  control plane named there, else spawn ``python -m modelhost.control`` detached (its own session,
  output appended to ``<home>/logs/control.log``) under the file lock ``<home>/control.lock``, so
  that two clients starting at once end up with one server, and poll ``/healthz`` with a deadline.
  A stale file (its pid dead or reused by another program) is replaced. A start that fails raises the
  server's own error, read back from its marker line in the log.
* :func:`stop` sends SIGTERM to the published pid and waits for it to exit.

The server side (writing the file, the admin token) is :mod:`modelhost.control.discovery`; this
module imports nothing of the control plane, only starts it as a process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from filelock import FileLock, Timeout

from modelhost.errors import ControlPlaneUnavailableError, ModelhostError, from_payload
from modelhost.sdk.ssl import client_context
from modelhost.settings import Settings

__all__ = [
    "START_ERROR_MARKER",
    "ControlInfo",
    "ensure_running",
    "find_running",
    "healthy",
    "pid_alive",
    "read_info",
    "settings_environ",
    "stop",
]

START_ERROR_MARKER = "modelhost-control-start-error: "
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 15.0


@dataclass(frozen=True)
class ControlInfo:
    """What a running control plane publishes about itself."""

    url: str
    token: str
    pid: int
    version: str
    ca_pem: str | None = None  # an https control plane: the certificate (chain) clients trust

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies this control plane's certificate with."""
        return client_context(self.ca_pem) if self.ca_pem else True


def read_info(path: Path) -> ControlInfo | None:
    """The published control-plane info, or None when the file is missing or unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ControlInfo(
            url=str(raw["url"]),
            token=str(raw["token"]),
            pid=int(raw["pid"]),
            version=str(raw.get("version", "")),
            ca_pem=str(raw["ca_pem"]) if raw.get("ca_pem") else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a dead child nobody reaped yet)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        # the state follows the parenthesised command name, which may itself hold spaces
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
    return True


def settings_environ(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce ``settings`` in a child process."""
    return {
        "MODELHOST_HOME": str(settings.home.absolute()),
        "MODELHOST_DATABASE_URL": settings.database_url,
        "MODELHOST_CACHE_DIR": str(settings.cache_dir.absolute()),
        "MODELHOST_CONTROL_PORT": str(settings.control_port),
        "MODELHOST_ROUTER_PORT": str(settings.router_port),
        "MODELHOST_HOST": settings.host,
    }


def healthy(info: ControlInfo, timeout_s: float = 2.0) -> bool:
    """Whether the control plane described by ``info`` answers ``/healthz`` as that very process."""
    try:
        response = httpx.get(f"{info.url}/healthz", timeout=timeout_s, verify=info.verify())
        return response.status_code == 200 and response.json().get("pid") == info.pid
    except (httpx.HTTPError, ValueError):
        return False


def find_running(settings: Settings) -> ControlInfo | None:
    """The healthy control plane published in ``control.json``, or None."""
    info = read_info(settings.discovery_file)
    if info is None or not pid_alive(info.pid) or not healthy(info):
        return None
    return info


def _wait_for(info: ControlInfo, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if healthy(info, timeout_s=1.0):
            return True
        if not pid_alive(info.pid):
            return False
        time.sleep(0.05)
    return False


def _start_error(log_path: Path, offset: int, returncode: int | None) -> ModelhostError:
    """The error the spawned server reported (its marker line), else one naming the log's last lines."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        text = ""
    for line in reversed(text.splitlines()):
        if line.startswith(START_ERROR_MARKER):
            with contextlib.suppress(ValueError):
                raw = json.loads(line[len(START_ERROR_MARKER) :])
                return from_payload(int(raw.get("status", 500)), raw)
    tail = [line for line in text.splitlines() if line.strip()][-20:]
    how = "did not become healthy in time" if returncode is None else f"exited with code {returncode}"
    last = f": {tail[-1]}" if tail else ""
    return ControlPlaneUnavailableError(
        f"The control plane {how}{last}", hint=f"Read its log at {log_path}.", details=tail
    )


def _spawn(settings: Settings, log_path: Path) -> int:
    """Start ``python -m modelhost.control`` in a session of its own, output appended to ``log_path``.

    ``posix_spawn`` rather than ``Popen``: the server outlives this client, and a ``Popen`` object
    collected while its process runs warns; the pid is all a client needs.
    """
    env = {**os.environ, **settings_environ(settings)}
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        return os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "modelhost.control"],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(fd)


def _exit_code(pid: int) -> int | None:
    """The spawned child's exit code once it has exited (reaping it), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return -1
    return None if done == 0 else os.waitstatus_to_exitcode(status)


def ensure_running(settings: Settings, *, deadline_s: float = START_DEADLINE_S) -> ControlInfo:
    """The running control plane of ``settings.home``, started in the background if none runs."""
    info = find_running(settings)
    if info is not None:
        return info
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + deadline_s
    try:
        with FileLock(str(settings.home / "control.lock"), timeout=deadline_s):
            return _start_locked(settings, deadline)
    except Timeout as exc:
        raise ControlPlaneUnavailableError(
            f"Timed out waiting for {settings.home / 'control.lock'}",
            hint="Another client is starting the control plane; try again.",
        ) from exc


def _start_locked(settings: Settings, deadline: float) -> ControlInfo:
    info = read_info(settings.discovery_file)
    if info is not None and pid_alive(info.pid) and _looks_like_modelhost(info.pid):
        if _wait_for(info, deadline):  # started by a client that held the lock before us
            return info
    elif info is not None:
        with contextlib.suppress(FileNotFoundError):  # stale: its process is gone (or the pid was reused)
            settings.discovery_file.unlink()
    log_path = settings.logs_dir / "control.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    pid = _spawn(settings, log_path)
    while time.monotonic() < deadline:
        info = read_info(settings.discovery_file)
        if info is not None and info.pid == pid and _wait_for(info, deadline):
            return info
        code = _exit_code(pid)
        if code is not None:
            # a foreground `modelhost up` may have won the race for the workspace: use it
            running = find_running(settings)
            if running is not None:
                return running
            raise _start_error(log_path, offset, code)
        time.sleep(0.05)
    raise _start_error(log_path, offset, None)


def _looks_like_modelhost(pid: int) -> bool:
    try:
        return b"modelhost" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not sys.platform.startswith("linux")


def stop(settings: Settings, *, deadline_s: float = STOP_DEADLINE_S) -> ControlInfo | None:
    """Stop the workspace's control plane; returns what was stopped, or None when none ran."""
    info = read_info(settings.discovery_file)
    if info is None:
        return None
    if not pid_alive(info.pid) or not (healthy(info) or _looks_like_modelhost(info.pid)):
        with contextlib.suppress(FileNotFoundError):  # stale file, or the pid now belongs to someone else
            settings.discovery_file.unlink()
        return None
    for sig, wait_s in ((signal.SIGTERM, deadline_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, sig)
        end = time.monotonic() + wait_s
        while time.monotonic() < end and pid_alive(info.pid):
            time.sleep(0.05)
        if not pid_alive(info.pid):
            break
    if pid_alive(info.pid):
        raise ControlPlaneUnavailableError(
            f"The control plane (pid {info.pid}) did not stop", hint=f"Stop it by hand: kill -9 {info.pid}"
        )
    if (current := read_info(settings.discovery_file)) is not None and current.pid == info.pid:
        with contextlib.suppress(FileNotFoundError):  # killed before it could remove its own file
            settings.discovery_file.unlink()
    return info
