"""Start the real ``modelhost-score`` as a subprocess on a free port and talk HTTP to it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port, wait_until

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
SCORE_BIN = REPO / ".venv" / "bin" / "modelhost-score"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


class ScoringServer:
    """One ``modelhost-score`` process; its combined output goes to ``log_path``."""

    def __init__(
        self,
        script: str | Path,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        cwd: Path | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        script_path = Path(script) if Path(script).is_absolute() else SCRIPTS / script
        argv = command or [str(SCORE_BIN)]
        argv = [*argv, "--entry_script", str(script_path), "--port", str(self.port), *(args or [])]
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "MODELHOST_"))
        }
        full_env.update(env or {})
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(cwd or log_path.parent),
            start_new_session=True,
        )

    # --- lifecycle ---------------------------------------------------------------------------
    def wait_ready(self, deadline_s: float = 60.0) -> ScoringServer:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                return self.request("GET", "/", timeout=2).status == 200
            except OSError:
                return False

        wait_until(ready, deadline_s, what=f"modelhost-score ready on {self.port}")
        return self

    def wait_exit(self, deadline_s: float = 60.0) -> int:
        return self.proc.wait(deadline_s)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    # --- HTTP ----------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body.encode() if isinstance(body, str) else body
            conn.request(method, path, body=data, headers=dict(headers or {}))
            resp = conn.getresponse()
            return Reply(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()

    def post_json(
        self, path: str, payload: Any, headers: Mapping[str, str] | None = None, timeout: float = 30
    ) -> Reply:
        merged = {"Content-Type": "application/json", **(headers or {})}
        return self.request("POST", path, json.dumps(payload), merged, timeout)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ScoringServer]]:
    """Factory: ``start_server("undecorated.py", env={...}, args=[...], ready=True)``."""
    servers: list[ScoringServer] = []

    def start(
        script: str | Path,
        *,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        ready: bool = True,
        cwd: Path | None = None,
        command: list[str] | None = None,
    ) -> ScoringServer:
        log = tmp_path / f"server-{len(servers)}.log"
        server = ScoringServer(script, log, env=env, args=args, cwd=cwd or tmp_path, command=command)
        servers.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def module_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScoringServer]:
    """A server shared by a module: the module sets ``SCRIPT`` (and optionally ``ENV``, ``ARGS``)."""
    tmp = tmp_path_factory.mktemp("scoring")
    server = ScoringServer(
        request.module.SCRIPT,
        tmp / "server.log",
        env=getattr(request.module, "ENV", None),
        args=getattr(request.module, "ARGS", None),
        cwd=tmp,
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


__all__ = ["REPO", "SCRIPTS", "Reply", "ScoringServer"]
