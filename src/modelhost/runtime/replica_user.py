"""Who a replica runs as, and what that user may reach in the workspace (docs/security.md).

Replicas run the user's entry script. When the control plane runs as root, ``MODELHOST_REPLICA_USER``
(a name or a numeric uid, e.g. ``nobody``) makes them run as that unprivileged user: the child drops
to it before exec (``Popen(user=, group=, extra_groups=[])``). The workspace is then laid out so that
user can reach its own replica folder and interpreter but nothing secret::

    <home>/             0711  others may pass through, not list
    <home>/replicas/    0711  each replica folder is chowned to the replica user
    <home>/envs/        0711  links to the environments the replicas run
    everything else     go-rwx: modelhost.db (service keys), control.json, admin.token, router/
                        (table.json, TLS keys), secrets/, logs/, runtime/, blobs/, services/

Pure parts: :func:`resolve` (given a passwd lookup) and :func:`blocked_at` (given a stat function).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from modelhost.errors import ValidationError

__all__ = [
    "SHARED_ENTRIES",
    "ReplicaUser",
    "blocked_at",
    "check_reachable",
    "hand_over",
    "lookup",
    "protect_home",
    "resolve",
]

SETTING = "MODELHOST_REPLICA_USER"
# The only entries of <home> a replica user needs to pass through; everything else is private.
SHARED_ENTRIES = frozenset({"replicas", "envs"})
_PASS_THROUGH = 0o711


@dataclass(frozen=True)
class ReplicaUser:
    """An unprivileged user replicas run as (never root, never the control plane's own uid)."""

    name: str
    uid: int
    gid: int

    def __repr__(self) -> str:
        return f"ReplicaUser({self.name!r}, uid={self.uid})"


def lookup(value: str) -> tuple[str, int, int] | None:
    """``(name, uid, gid)`` of a user name or uid from the passwd database, None when unknown."""
    try:
        entry = pwd.getpwuid(int(value)) if value.isdigit() else pwd.getpwnam(value)
    except (KeyError, OverflowError):
        return None
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def resolve(
    value: str | None, euid: int, find: Callable[[str], tuple[str, int, int] | None] = lookup
) -> ReplicaUser | None:
    """The user replicas run as, None for "as the control plane". A numeric uid the passwd database
    lacks is allowed (containers run arbitrary uids) with the same number as its group."""
    if not value:
        return None
    found = find(value)
    if found is None and not value.isdigit():
        raise ValidationError(
            f"{SETTING}={value!r} is not a user on this machine",
            hint=f"Name an existing user (e.g. nobody) or a numeric uid in {SETTING}, or unset it.",
        )
    name, uid, gid = found if found is not None else (value, int(value), int(value))
    if uid == euid:
        return None
    if euid != 0:
        raise ValidationError(
            f"{SETTING}={value!r} asks replicas to run as uid {uid}, but the control plane runs as "
            f"uid {euid}: only root can start processes as another user",
            hint=f"Run the control plane as root, or unset {SETTING}.",
        )
    if uid == 0:
        return None
    return ReplicaUser(name=name, uid=uid, gid=gid)


def _allowed(st: os.stat_result, uid: int, gids: Collection[int], bits: int) -> bool:
    """Whether ``uid`` (in groups ``gids``) has all of the ``rwx`` ``bits`` (0-7) on ``st``."""
    if st.st_uid == uid:
        mode = (st.st_mode >> 6) & 7
    elif st.st_gid in gids:
        mode = (st.st_mode >> 3) & 7
    else:
        mode = st.st_mode & 7
    return mode & bits == bits


def blocked_at(
    path: Path, uid: int, gids: Collection[int], bits: int, stat_fn: Callable[[Path], os.stat_result]
) -> Path | None:
    """The first path component that keeps ``uid`` from reaching ``path`` with ``bits`` (every folder
    on the way needs x), or None when it can. ``path`` is absolute and already resolved."""
    parts = [path, *path.parents][::-1]
    for i, part in enumerate(parts):
        try:
            st = stat_fn(part)
        except OSError:
            return part
        need = bits if i == len(parts) - 1 else 1
        if not _allowed(st, uid, gids, need):
            return part
    return None


def _describe(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path} (missing)"
    owner = str(st.st_uid)
    with contextlib.suppress(KeyError):
        owner = pwd.getpwuid(st.st_uid).pw_name
    return f"{path} (mode {stat.S_IMODE(st.st_mode):04o}, owner {owner})"


def check_reachable(user: ReplicaUser, path: Path, bits: int, what: str) -> None:
    """Raise ``ValidationError`` naming the folder in the way when ``user`` cannot reach ``path``
    (both its literal folders and, past symbolic links, the real ones)."""
    gids = {user.gid}
    for candidate in (Path(os.path.abspath(path)), Path(os.path.realpath(path))):
        blocked = blocked_at(candidate, user.uid, gids, bits, Path.stat)
        if blocked is not None:
            raise ValidationError(
                f"replicas run as user {user.name} ({SETTING}) but that user cannot reach {what} "
                f"{path}: {_describe(blocked)} is in the way",
                hint=f"Keep the workspace and environments where {user.name} can pass (e.g. under /tmp "
                f"or /srv, MODELHOST_HOME and MODELHOST_CACHE_DIR), or 'chmod o+x' that folder, "
                f"or unset {SETTING}.",
            )


def _narrow(path: Path, mode_of: Callable[[int], int]) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        return
    wanted = mode_of(stat.S_IMODE(st.st_mode))
    if wanted != stat.S_IMODE(st.st_mode):
        os.chmod(path, wanted)


def protect_home(home: Path, *, share_replicas: bool) -> None:
    """Take group and other access off everything in ``home`` but the replica folders and
    environment links (the store with the service keys, control.json, the router's table and TLS
    keys, secrets/, logs). With ``share_replicas`` others may pass through ``home``, ``replicas/``
    and ``envs/`` (0711) to reach their own folder; without it nothing is added."""
    if not home.is_dir():
        return
    for entry in home.iterdir():
        if entry.name not in SHARED_ENTRIES:
            _narrow(entry, lambda m: m & 0o700)
        elif share_replicas:
            _narrow(entry, lambda m: (m & 0o700) | _PASS_THROUGH)
    if share_replicas:
        _narrow(home, lambda m: (m & 0o700) | _PASS_THROUGH)
    else:
        _narrow(home, lambda m: m & ~0o066)


def hand_over(folder: Path, user: ReplicaUser) -> None:
    """Give a prepared replica folder to ``user``: the folder, its source and its own files become
    theirs (the script may write its working folder and ./outputs). Files with more than one link
    (model files hard-linked to the artifact store, mode 0444) stay the control plane's, so the
    replica can read but never write through them."""
    for root, dirs, files in os.walk(folder):
        os.chown(root, user.uid, user.gid, follow_symlinks=False)
        for name in (*dirs, *files):
            path = os.path.join(root, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                continue  # chowned as the root of its own walk step
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                if not st.st_mode & stat.S_IROTH:
                    raise ValidationError(
                        f"model file {path} is shared with the artifact store but not readable by others",
                        hint="Blobs are stored with mode 0444; restore that mode on the store's files.",
                    )
                continue
            os.chown(path, user.uid, user.gid, follow_symlinks=False)
