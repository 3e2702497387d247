"""Fixtures for the v1 compatibility suite: every test runs once per server kind.

A test module (or class) names its entry script with ``SERVER = ServerSpec(...)``; the ``server``
fixture hands it a running server of the parametrized kind. Servers are pooled for the session, one
live process per kind, and restarted only when the spec changes, so each entry script boots once per
kind (azmlinfsrv boots gunicorn, which is slow).

Without ``MODELHOST_TEST_AZMLINFSRV`` (set by scripts/test.sh from scripts/setup-azmlinfsrv.sh) the
reference side is skipped, except under CI, where it fails: the suite is only a proof with its oracle.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.harness import (
    KINDS,
    Server,
    ServerProcess,
    ServerSpec,
    azmlinfsrv_bin,
    modelhost_bin,
)

READY_DEADLINE_S = 120.0


class ServerPool:
    """At most one live server per kind; a new spec for a kind replaces the old process."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.live: dict[str, ServerProcess] = {}
        self.failed: dict[tuple[str, ServerSpec], str] = {}
        self.count = 0

    def get(self, kind: str, spec: ServerSpec) -> Server:
        if (kind, spec) in self.failed:
            pytest.fail(f"{kind} failed to start for {spec} earlier in this session:\n"
                        f"{self.failed[kind, spec]}")
        current = self.live.get(kind)
        if current is not None and current.spec == spec and current.alive():
            return Server(kind, current.port, current)
        if current is not None:
            current.stop()
            del self.live[kind]
        self.count += 1
        log_path = self.log_dir / f"{self.count:03d}-{kind}-{spec.script}.log"
        process = ServerProcess(kind, spec, self._executable(kind), log_path)
        try:
            process.wait_ready(READY_DEADLINE_S)
        except (RuntimeError, TimeoutError) as exc:
            process.stop()
            self.failed[kind, spec] = str(exc)
            pytest.fail(str(exc))
        self.live[kind] = process
        return Server(kind, process.port, process)

    @staticmethod
    def _executable(kind: str) -> Path:
        if kind == "modelhost":
            return modelhost_bin()
        path = azmlinfsrv_bin()
        assert path is not None
        return path

    def close(self) -> None:
        for process in self.live.values():
            process.stop()
        self.live.clear()


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("compat-server-logs"))
    yield pool
    pool.close()


@pytest.fixture(params=KINDS)
def server_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if kind == "azmlinfsrv":
        path = azmlinfsrv_bin()
        reason = ("MODELHOST_TEST_AZMLINFSRV is not set: run scripts/setup-azmlinfsrv.sh and export its "
                  "output (make test does this) to compare against the v1 reference server")
        if path is None:
            if os.environ.get("CI"):
                pytest.fail(reason + " (required under CI)")
            pytest.skip(reason)
        if not path.exists():
            pytest.fail(f"MODELHOST_TEST_AZMLINFSRV points at a venv without {path}")
    return kind


@pytest.fixture
def server(server_kind: str, server_pool: ServerPool, request: pytest.FixtureRequest) -> Server:
    spec = getattr(request.cls, "SERVER", None) or getattr(request.module, "SERVER", None)
    assert isinstance(spec, ServerSpec), "a compat test module or class must define SERVER = ServerSpec(...)"
    return server_pool.get(server_kind, spec)
