"""v1's log format, a cheap per-request log line, and v1's ``print`` redirection.

Every line looks like azureml-inference-server-http 1.5.1's, in UTC::

    2024-10-10 11:06:26,404 I [152] azmlinfsrv - POST /score 200 1.066ms 8

Loggers as in v1: ``azmlinfsrv`` (and its children ``.user_script``, ``.swagger``, ``.print``, ...)
write to stdout; the HTTP server's own messages (``uvicorn.error``, v1's ``gunicorn.error``) go to
stderr. Handlers do not flush per line: a daemon thread flushes both streams every 0.1 s, so the
per-request line costs a string format and a buffered write, not a system call.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

__all__ = [
    "LOG_FORMAT",
    "AccessLog",
    "AmlLogFormatter",
    "configure_logging",
    "flush_streams",
    "redirect_print",
]

LOG_FORMAT = "%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"
_FLUSH_INTERVAL_S = 0.1


class AmlLogFormatter(logging.Formatter):
    """v1's ``AMLLogFormatter``: the format above with UTC timestamps."""

    converter = time.gmtime  # type: ignore[assignment]  # v1 formats timestamps in UTC

    def __init__(self, fmt: str = LOG_FORMAT) -> None:
        super().__init__(fmt=fmt)


class _BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that leaves flushing to the periodic flusher."""

    def flush(self) -> None:
        return None


class AccessLog:
    """Writes v1's request line ``<METHOD> <path> <status> <ms>ms <length>`` cheaply.

    The timestamp prefix is formatted once per second; the rest is one f-string.
    """

    def __init__(self, stream: TextIO | None = None, logger_name: str = "azmlinfsrv") -> None:
        self._stream = stream
        self._tail = f" I [{os.getpid()}] {logger_name} - "
        self._second = -1
        self._stamp = ""

    def write(self, method: str, path: str, status: int, duration_ms: float, length: int | str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        stream = self._stream or sys.stdout
        stream.write(
            f"{self._stamp},{int((now - second) * 1000):03d}{self._tail}"
            f"{method} {path} {status} {duration_ms:.3f}ms {length}\n"
        )


def configure_logging(level: int = logging.INFO) -> None:
    """Set up v1's loggers (``logging.json`` of azureml-inference-server-http) and start the flusher."""
    formatter = AmlLogFormatter()
    out = _BufferedStreamHandler(sys.stdout)
    out.setFormatter(formatter)
    err = _BufferedStreamHandler(sys.stderr)
    err.setFormatter(formatter)
    main = logging.getLogger("azmlinfsrv")
    main.handlers[:] = [out]
    main.setLevel(level)
    main.propagate = False
    for name in ("uvicorn.error", "uvicorn", "modelhost.scoring"):
        server = logging.getLogger(name)
        server.handlers[:] = [err]
        server.setLevel(level)
        server.propagate = False
    _start_flusher()


_flusher_started = False


def _start_flusher() -> None:
    global _flusher_started
    if _flusher_started:
        return
    _flusher_started = True
    threading.Thread(target=_flush_forever, name="modelhost-log-flusher", daemon=True).start()


def _flush_forever() -> None:
    while True:
        time.sleep(_FLUSH_INTERVAL_S)
        flush_streams()


def flush_streams() -> None:
    """Flush stdout and stderr now (before exiting, after a fatal message)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


_default_print = builtins.print
_print_logger = logging.getLogger("azmlinfsrv.print")


@functools.wraps(print)
def _print_to_logger(
    *objects: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    target = file or sys.stdout
    if target is sys.stdout:
        _print_logger.info((" " if sep is None else sep).join(map(str, objects)))
    else:
        _default_print(*objects, sep=sep, end=end, file=file, flush=flush)


def redirect_print() -> None:
    """v1's ``set_print_logger_redirect``: ``print`` to stdout becomes INFO of ``azmlinfsrv.print``."""
    builtins.print = _print_to_logger
