"""The supervisor: the process the command starts. It binds the ports and keeps the workers running.

Like gunicorn's master in v1, it holds the listening sockets and forks ``WORKER_COUNT`` worker processes
that inherit them (so the port stays bound while a worker restarts, and connections wait in the
backlog). It restarts a worker that asked to be recycled (a stuck run()) at once, and one that died
(a crash, an out-of-memory kill) after a short backoff; if a worker fails to boot (exit status 3:
bad settings, the script's import or init() failed) it stops the others and exits with status 3, as
gunicorn does ("Worker failed to boot"). SIGTERM or SIGINT stop the workers gracefully, then SIGKILL
after 30 s; a worker that finds its supervisor gone stops by itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from types import FrameType

from .logs import flush_streams
from .worker import BOOT_ERROR, RECYCLE, run_worker

__all__ = ["Supervisor", "bind_sockets"]

logger = logging.getLogger("modelhost.scoring")
_KILL_AFTER_S = 30
_MAX_BACKOFF_S = 5.0


def bind_sockets(host: str, ports: list[int]) -> list[socket.socket]:
    """Listening TCP sockets on ``host`` for each distinct port (IPv6 when the host is an IPv6 address)."""
    sockets: list[socket.socket] = []
    for port in dict.fromkeys(ports):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            for other in sockets:
                other.close()
            raise
        sock.listen(2048)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


class Supervisor:
    """Forks and watches the worker processes; :meth:`run` returns the command's exit status."""

    def __init__(self, sockets: list[socket.socket], worker_count: int) -> None:
        self._sockets = sockets
        self._count = worker_count
        self._children: dict[int, float] = {}  # pid -> start time
        self._stopping = False
        self._status = 0
        self._failures = 0

    def _spawn(self) -> None:
        flush_streams()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
                    signal.signal(sig, signal.SIG_DFL)
                code = run_worker(self._sockets, parent)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                flush_streams()
                os._exit(code)
        self._children[pid] = time.monotonic()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            self._stopping = True
            logger.info(f"Handling signal: {signal.Signals(signum).name.lower()[3:]}")
            signal.signal(signal.SIGALRM, self._on_alarm)
            signal.alarm(_KILL_AFTER_S)
        self._signal_children(signal.SIGTERM)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        self._signal_children(signal.SIGKILL)

    def _signal_children(self, sig: int) -> None:
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for _ in range(self._count):
            self._spawn()
        while self._children:
            try:
                pid, wait_status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            started = self._children.pop(pid, None)
            if started is None:
                continue
            self._after_exit(pid, os.waitstatus_to_exitcode(wait_status), started)
        for sock in self._sockets:
            sock.close()
        flush_streams()
        return self._status

    def _after_exit(self, pid: int, code: int, started: float) -> None:
        if self._stopping:
            return
        if code == BOOT_ERROR:
            logger.error(f"Worker (pid:{pid}) exited with code 3")
            logger.error("Worker failed to boot.")
            self._status = BOOT_ERROR
            self._stopping = True
            self._signal_children(signal.SIGTERM)
            return
        if code == RECYCLE:
            logger.warning(f"Worker (pid:{pid}) was recycled; starting a new worker")
            self._spawn()
            return
        lived = time.monotonic() - started
        self._failures = self._failures + 1 if lived < 10 else 1
        delay = min(_MAX_BACKOFF_S, 0.1 * 2 ** (self._failures - 1))
        logger.error(f"Worker (pid:{pid}) exited unexpectedly with code {code}; restarting in {delay:.1f} s")
        time.sleep(delay)
        if not self._stopping:
            self._spawn()


def exit_with(code: int) -> None:
    flush_streams()
    sys.exit(code)
