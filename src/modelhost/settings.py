"""Workspace settings: one typed value, built once from the environment (or explicit arguments).

Nothing reads the environment at import; the entry points call :func:`Settings.from_env` and pass
the value down. Each field maps one-to-one onto an environment variable (and a CLI flag where one
exists)::

    MODELHOST_HOME           home            workspace folder                 ~/.modelhost
    MODELHOST_DATABASE_URL   database_url    SQLAlchemy URL of the store      sqlite:///<home>/modelhost.db
    MODELHOST_CACHE_DIR      cache_dir       machine-wide cache (envs)        ~/.cache/modelhost
    MODELHOST_CONTROL_PORT   control_port    control plane on 127.0.0.1       8790
    MODELHOST_ROUTER_PORT    router_port     router (front door)              8791
    MODELHOST_HOST           host            address both bind to             127.0.0.1
    MODELHOST_REPLICA_USER   replica_user    user replicas run as (when root) unset: the control
                                             plane's own user (docs/security.md)

Layout of the workspace folder::

    <home>/modelhost.db          metadata (SQLite default)
    <home>/blobs/sha256/ab/<hex> content-addressed artifacts
    <home>/envs/                 environments built for this workspace (links into the machine cache)
    <home>/control.json          URL + admin token of the running control plane (0600)
    <home>/logs/                 control plane, router, replica and build logs
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from modelhost.errors import ValidationError

__all__ = ["DEFAULT_CONTROL_PORT", "DEFAULT_ROUTER_PORT", "Settings"]

DEFAULT_CONTROL_PORT = 8790
DEFAULT_ROUTER_PORT = 8791


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise ValidationError(f"{name}={raw!r} is not a port", hint=f"Set {name} to an integer in 1..65535.")
    return port


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    cache_dir: Path
    control_port: int = DEFAULT_CONTROL_PORT
    router_port: int = DEFAULT_ROUTER_PORT
    host: str = "127.0.0.1"
    replica_user: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, home: Path | None = None) -> Settings:
        env = os.environ if environ is None else environ
        user_home = Path(env.get("HOME", str(Path.home())))
        ws = (home or Path(env.get("MODELHOST_HOME") or user_home / ".modelhost")).expanduser().resolve()
        return cls(
            home=ws,
            database_url=env.get("MODELHOST_DATABASE_URL") or f"sqlite:///{ws / 'modelhost.db'}",
            cache_dir=Path(env.get("MODELHOST_CACHE_DIR") or user_home / ".cache" / "modelhost").expanduser(),
            control_port=_port(env, "MODELHOST_CONTROL_PORT", DEFAULT_CONTROL_PORT),
            router_port=_port(env, "MODELHOST_ROUTER_PORT", DEFAULT_ROUTER_PORT),
            host=env.get("MODELHOST_HOST", "127.0.0.1"),
            replica_user=env.get("MODELHOST_REPLICA_USER", "").strip() or None,
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def envs_dir(self) -> Path:
        return self.home / "envs"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def discovery_file(self) -> Path:
        return self.home / "control.json"

    @property
    def machine_envs_dir(self) -> Path:
        return self.cache_dir / "envs"
