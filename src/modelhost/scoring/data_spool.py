"""The hand-over between a pod's data writer and its uploader sidecar (a shared ``emptyDir``).

On Kubernetes, collected rows must leave the pod before it goes away. The scoring server's
:class:`~.data_writer.DataWriter` runs with a rotation interval there: it closes each CSV file at
least every ``MODELHOST_DATA_COLLECTION_ROTATE_S`` seconds (and at shutdown) and renames it to a
*sealed* name, ``<stem>.<unix ms>.csv``; a sealed file is never written again, so the uploader
(:mod:`modelhost.runtime.upload`) may send and delete it. The millisecond stamp keeps names unique
across rotations and container restarts, which makes uploads idempotent by name.

Every writing process also holds a shared ``flock`` on ``<root>/.writers.lock`` for its whole life;
the kernel drops it when the process exits, even on SIGKILL. An uploader that can take the lock
exclusively knows no writer is left, so every file (sealed or not) is final: that is how a draining
pod's last rows are shipped without guessing how long the scoring container takes to stop.
"""

from __future__ import annotations

import fcntl
import os
import re

__all__ = ["LOCK_NAME", "ROTATE_ENV", "hold_writer_lock", "is_sealed", "seal", "writers_gone"]

ROTATE_ENV = "MODELHOST_DATA_COLLECTION_ROTATE_S"
LOCK_NAME = ".writers.lock"
# an open file is <prefix>-<replica>-<pid>[-n].csv: its last dot-separated part before .csv is never
# all digits after a dot, so the stamp cannot be confused with it
_SEALED = re.compile(r"\.\d{13,}\.csv\Z")


def is_sealed(name: str) -> bool:
    """Whether a file name is a closed, sealed data file."""
    return _SEALED.search(name) is not None


def seal(path: str, now_ms: int) -> str:
    """Rename the closed file ``path`` to its sealed name and return that name."""
    stem = path[: -len(".csv")] if path.endswith(".csv") else path
    stamp = now_ms
    while os.path.exists(target := f"{stem}.{stamp}.csv"):
        stamp += 1  # two seals of one path within a millisecond: keep both
    os.rename(path, target)
    return target


def hold_writer_lock(root: str) -> int:
    """Take a shared lock on ``<root>/.writers.lock`` for the life of this process; the fd."""
    os.makedirs(root, exist_ok=True)
    fd = os.open(os.path.join(root, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def writers_gone(root: str) -> bool:
    """True when no process holds the writers' lock (or none ever created it)."""
    try:
        fd = os.open(os.path.join(root, LOCK_NAME), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the exclusive lock at once
    return True
