"""The control plane's side of discovery: publish ``<home>/control.json`` and keep the admin token.

``control.json`` (mode 0600) is written once the control plane listens and removed when it stops;
its format and the client side (finding, starting, stopping) are :mod:`modelhost.sdk.local`.
The admin token lives in ``<home>/admin.token`` (0600) and survives restarts, so a client holding it
(``Workspace(url=..., token=...)``) keeps working after ``modelhost down && modelhost up``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import asdict
from pathlib import Path

from modelhost.sdk.local import ControlInfo, read_info

__all__ = [
    "ControlInfo",
    "load_or_create_token",
    "remove_info",
    "token_file",
    "write_info",
    "write_private",
]

_TOKEN_FILE = "admin.token"


def token_file(home: Path) -> Path:
    return home / _TOKEN_FILE


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)  # the umask cannot widen it, but a narrower umask is fine too
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def load_or_create_token(home: Path) -> str:
    """The workspace's admin token, created (32 random bytes, url-safe) on first use."""
    path = token_file(home)
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text(encoding="utf-8").strip()
        if token:
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
            return token
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


def write_info(path: Path, info: ControlInfo) -> None:
    write_private(path, json.dumps(asdict(info), indent=2) + "\n")


def remove_info(path: Path, pid: int) -> None:
    """Remove ``control.json`` if it still describes process ``pid`` (never a successor's file)."""
    info = read_info(path)
    if info is not None and info.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
