"""Replica processes on this machine: start confined and detached, observe, signal.

Replicas start in their own session (``start_new_session=True``): they are process-group leaders
that outlive the control plane, and a signal to the group reaches what the entry script spawned.
The ``Popen`` of every child this process started is kept in one process-wide registry, so a later
runtime instance in the same process can still read an adopted child's exit code, and no ``Popen``
is ever collected while its child runs. Processes started by an earlier control plane are not our
children: they are observed through ``/proc`` (alive, not a zombie, same command line).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from modelhost.runtime.replica_user import ReplicaUser
from modelhost.runtime.resources import ProcessLimits

__all__ = ["cmdline", "exit_status", "free_port", "is_running", "matches", "signal_group", "spawn"]

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_LOCK = threading.Lock()


def _confine(limits: ProcessLimits) -> Callable[[], None]:
    """What the child runs between fork and exec (C-level calls only: it must not take locks)."""
    cpus = set(limits.cpus)
    nice = limits.nice
    memory = limits.memory_bytes

    def confine() -> None:
        if memory > 0:
            _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
            cap = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
            resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cpus)
        if nice:
            os.nice(nice)

    return confine


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    limits: ProcessLimits,
    user: ReplicaUser | None = None,
) -> int:
    """Start ``argv`` detached in ``cwd`` with stdout and stderr appended to ``log``; its pid. With
    ``user`` the child drops to that uid and gid (and no supplementary groups) before exec; the log is
    opened here, so that user needs no access to the logs folder."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            preexec_fn=_confine(limits),
            user=None if user is None else user.uid,
            group=None if user is None else user.gid,
            extra_groups=None if user is None else [],
        )
    with _LOCK:
        _CHILDREN[popen.pid] = popen
    return popen.pid


def exit_status(pid: int) -> tuple[bool, int | None]:
    """``(exited, code)``. ``code`` is the exit status (negative: killed by that signal) for a
    child of this process, None where it is unknown (someone else's child) or it still runs."""
    with _LOCK:
        popen = _CHILDREN.get(pid)
    if popen is not None:
        code = popen.poll()
        if code is None:
            return False, None
        with _LOCK:
            _CHILDREN.pop(pid, None)
        return True, code
    return not _foreign_alive(pid), None


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    return not exit_status(pid)[0]


def _foreign_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _proc_state(pid) == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def cmdline(pid: int) -> list[str] | None:
    """The command line of ``pid`` (Linux ``/proc``), None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="surrogateescape") for part in raw.split(b"\0")[:-1]]


def matches(pid: int, argv: Sequence[str]) -> bool:
    """Whether ``pid`` runs ``argv`` (its arguments; the interpreter may show a resolved path)."""
    seen = cmdline(pid)
    return seen is not None and len(seen) == len(argv) and seen[1:] == list(argv[1:])


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group ``pid`` leads (the replica and its children); gone is fine."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def free_port(host: str = "127.0.0.1", avoid: Collection[int] = ()) -> int:
    """A TCP port the OS calls free right now (and not in ``avoid``)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port
    raise OSError("no free TCP port found")
