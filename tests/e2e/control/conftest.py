"""Fixtures: a workspace in a temp folder with its own control-plane port, and the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelhost.sdk import Workspace, local
from modelhost.settings import Settings
from tests.support.net import free_port

CLI = str(Path(sys.executable).parent / "modelhost")
# the variables Settings.from_env reads; a test workspace sets its own and drops the rest
SETTINGS_VARS = (
    "MODELHOST_HOME",
    "MODELHOST_DATABASE_URL",
    "MODELHOST_CACHE_DIR",
    "MODELHOST_CONTROL_PORT",
    "MODELHOST_ROUTER_PORT",
    "MODELHOST_HOST",
)
CLI_TIMEOUT_S = 240


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Home:
    """A workspace folder plus the environment that points modelhost at it."""

    path: Path
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def cli(
        self, *args: str, timeout_s: float = CLI_TIMEOUT_S, extra_env: dict[str, str] | None = None
    ) -> CliResult:
        """Run the real ``modelhost`` console script against this workspace."""
        proc = subprocess.run(
            [CLI, *args],
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=self.path,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def stop(self) -> None:
        local.stop(self.settings)


@pytest.fixture(scope="session")
def machine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One machine cache for the session, so environment builds are reused across tests."""
    return tmp_path_factory.mktemp("machine-cache")


def make_home(root: Path, cache: Path) -> Home:
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    env.update(
        {
            "MODELHOST_HOME": str(root / "ws"),
            "MODELHOST_CONTROL_PORT": str(free_port()),
            "MODELHOST_ROUTER_PORT": str(free_port()),
            "MODELHOST_CACHE_DIR": str(cache),
            "COLUMNS": "200",
        }
    )
    return Home(path=root, env=env)


@pytest.fixture
def home(tmp_path: Path, machine_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """A fresh workspace (its control plane not started); stopped at the end if a test started it."""
    h = make_home(tmp_path, machine_cache)
    for key in [k for k in os.environ if k in SETTINGS_VARS]:
        monkeypatch.delenv(key)
    for key, value in h.env.items():
        if key in SETTINGS_VARS:
            monkeypatch.setenv(key, value)
    yield h
    h.stop()


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory, machine_cache: Path) -> Iterator[Home]:
    """One running workspace for a whole module (starting a control plane costs seconds)."""
    h = make_home(tmp_path_factory.mktemp("shared"), machine_cache)
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k in SETTINGS_VARS]:
            mp.delenv(key)
        for key, value in h.env.items():
            if key in SETTINGS_VARS:
                mp.setenv(key, value)
        local.ensure_running(h.settings)
        yield h
        h.stop()


@pytest.fixture
def ws(shared_home: Home, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    for key, value in shared_home.env.items():
        if key in SETTINGS_VARS:
            monkeypatch.setenv(key, value)
    workspace = Workspace()
    yield workspace
    workspace.close()
