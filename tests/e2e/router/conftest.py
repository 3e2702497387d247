"""Real processes for the router's end-to-end tests: stand-in replicas and the router itself."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.net import free_port, port_open, wait_until

HERE = Path(__file__).parent
ADMIN = "admin-token"
KEYS = ["key-one", "key-two"]


@dataclass
class Upstream:
    replica_id: str
    port: int
    proc: subprocess.Popen[bytes]

    def stats(self) -> dict[str, int]:
        return httpx.get(f"http://127.0.0.1:{self.port}/stats").json()  # type: ignore[no-any-return]

    def replica(self, **extra: Any) -> dict[str, Any]:
        return {"id": self.replica_id, "host": "127.0.0.1", "port": self.port, **extra}


@dataclass
class RouterProc:
    port: int
    proc: subprocess.Popen[bytes]
    table_path: Path
    access_log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, services: dict[str, Any], version: int | None = None) -> None:
        """PUT a table and wait until the router reports it."""
        version = version if version is not None else self.version() + 1
        r = httpx.put(f"{self.url}/-/table", json={"version": version, "services": services},
                      headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 200, r.text
        assert self.version() == version

    def version(self) -> int:
        return int(httpx.get(f"{self.url}/-/health").json()["table_version"])


def _healthy(port: int, scheme: str = "http") -> bool:
    try:
        return httpx.get(f"{scheme}://127.0.0.1:{port}/-/health", verify=False).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def start_upstream() -> Iterator[Callable[[str], Upstream]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(replica_id: str) -> Upstream:
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(HERE / "upstream_app.py"), "--port", str(port),
                                 "--replica-id", replica_id])
        procs.append(proc)
        wait_until(lambda: port_open(port), 30, what=f"upstream {replica_id} on port {port}")
        return Upstream(replica_id, port, proc)

    yield start
    for proc in procs:
        _stop(proc)


@pytest.fixture(scope="module")
def start_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RouterProc]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(table: dict[str, Any], *extra: str, scheme: str = "http") -> RouterProc:
        folder = tmp_path_factory.mktemp("router")
        table_path = folder / "table.json"
        table_path.write_text(json.dumps(table))
        access_log = folder / "access.log"
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "modelhost.router", "--port", str(port),
                                 "--table", str(table_path), "--admin-token", ADMIN,
                                 "--access-log", str(access_log), *extra])
        procs.append(proc)
        wait_until(lambda: _healthy(port, scheme), 30, what=f"router on port {port}")
        return RouterProc(port, proc, table_path, access_log)

    yield start
    for proc in procs:
        _stop(proc)


def service(*replicas: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"replicas": list(replicas), "keys": KEYS, **options}


def auth(key: str = KEYS[0]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
