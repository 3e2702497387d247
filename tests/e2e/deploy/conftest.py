"""Real control planes for the deploy tests: a workspace in a temp folder, driven over its REST API.

Each :class:`Plane` starts ``python -m modelhost.control`` the way clients do
(:func:`modelhost.sdk.local.ensure_running`); the control plane starts the router and the replicas.
At the end :func:`modelhost.control.server.stop_all` stops all three. Environments are inherited
(no build) unless a test is about builds; the machine cache is shared by the session.
"""

from __future__ import annotations

import io
import os
import textwrap
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelhost.build.snapshot import make_snapshot
from modelhost.control.server import stop_all
from modelhost.sdk import local
from modelhost.settings import Settings
from tests.support.net import free_port

SETTINGS_VARS = (
    "MODELHOST_HOME",
    "MODELHOST_DATABASE_URL",
    "MODELHOST_CACHE_DIR",
    "MODELHOST_CONTROL_PORT",
    "MODELHOST_ROUTER_PORT",
    "MODELHOST_HOST",
)
OP_DEADLINE_S = 120.0

# Fast probes, so a deploy is healthy within a second or two and a failing init() gives up quickly.
FAST_PROBE = {"initial_delay_seconds": 5, "period_seconds": 1, "timeout_seconds": 1, "failure_threshold": 2}

ECHO_SCRIPT = """
import json, os, time

def init():
    global VERSION
    VERSION = os.environ.get("SCRIPT_VERSION", "v1")

def run(raw):
    data = json.loads(raw)
    if isinstance(data, dict) and data.get("sleep"):
        time.sleep(float(data["sleep"]))
    if isinstance(data, dict) and data.get("fail"):
        raise RuntimeError("asked to fail")
    if isinstance(data, dict) and data.get("exit"):
        os._exit(1)
    return {"echo": data, "version": VERSION_TAG, "pid": os.getpid()}

VERSION_TAG = "{version}"
"""


def echo_script(version: str = "v1") -> str:
    return textwrap.dedent(ECHO_SCRIPT).replace("{version}", version)


def aks(**params: Any) -> dict[str, Any]:
    """An AKS deployment payload (v1 JSON keys) with fixed replicas and fast probes by default."""
    from modelhost.spec.deployment import AksDeploymentConfig

    values: dict[str, Any] = {"autoscale_enabled": False, "num_replicas": 1, **FAST_PROBE, **params}
    values = {k: v for k, v in values.items() if v is not None}
    return AksDeploymentConfig.checked(**values).to_payload()


@dataclass
class Plane:
    """One workspace and its running control plane."""

    root: Path
    env: dict[str, str]
    settings: Settings
    token: str = ""
    url: str = ""
    client: httpx.Client = field(default=None)  # type: ignore[assignment]

    @property
    def router_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.router_port}"

    def start(self) -> local.ControlInfo:
        info = local.ensure_running(self.settings)
        self.token, self.url = info.token, info.url
        if self.client is not None:
            self.client.close()
        self.client = httpx.Client(
            base_url=info.url, headers={"Authorization": f"Bearer {info.token}"}, timeout=60.0
        )
        return info

    # -- REST helpers --------------------------------------------------------------------------

    def upload(self, data: bytes) -> str:
        digest = _sha(data)
        r = self.client.put(f"/api/v1/blobs/{digest}", content=data)
        assert r.status_code == 201, r.text
        return digest

    def register_model(self, name: str, data: bytes = b"model bytes", basename: str = "model.bin") -> str:
        digest = self.upload(data)
        body = {
            "name": name,
            "basename": basename,
            "is_dir": False,
            "files": [{"path": basename, "sha256": digest, "size": len(data)}],
        }
        r = self.client.post("/api/v1/models", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def snapshot(self, script: str, *, entry: str = "score.py", extra: dict[str, str] | None = None) -> str:
        src = self.root / f"src-{time.monotonic_ns()}"
        src.mkdir(parents=True)
        (src / entry).write_text(script)
        for name, text in (extra or {}).items():
            (src / name).write_text(text)
        snap = make_snapshot(src, entry, self.root / "snapshots")
        return self.upload(snap.path.read_bytes())

    def raw_snapshot(self, files: dict[str, str]) -> str:
        """A snapshot zip written directly (what a client that skips the SDK's checks could send)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, text in files.items():
                archive.writestr(name, text)
        return self.upload(buffer.getvalue())

    def deploy_body(
        self,
        name: str,
        script: str | None = None,
        *,
        config: dict[str, Any] | None = None,
        models: list[str] | None = None,
        snapshot: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "models": models or [],
            "entry_script": "score.py",
            "source_directory": "src",
            "snapshot": snapshot or self.snapshot(script or echo_script()),
            "environment": None,
            "deployment_config": config if config is not None else aks(),
            **extra,
        }

    def deploy(self, name: str, script: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Deploy and wait for the operation; returns the finished operation."""
        r = self.client.post("/api/v1/services", json=self.deploy_body(name, script, **kwargs))
        assert r.status_code == 202, r.text
        assert r.headers["Operation-Location"] == f"/api/v1/operations/{r.json()['operation']['id']}"
        return self.wait(r.json()["operation"]["id"])

    def wait(self, op_id: str, deadline_s: float = OP_DEADLINE_S) -> dict[str, Any]:
        """Long-poll an operation until it ends; the final dict with every log line."""
        end = time.monotonic() + deadline_s
        offset, lines = 0, []
        while time.monotonic() < end:
            r = self.client.get(f"/api/v1/operations/{op_id}", params={"offset": offset, "wait": 5})
            assert r.status_code == 200, r.text
            op = r.json()
            lines += [text for _, text in op["log"]]
            offset = op["next_offset"]
            if op["state"] != "Running":
                return {**op, "lines": lines}
        raise TimeoutError(f"operation {op_id} did not end within {deadline_s} s")

    def service(self, name: str) -> dict[str, Any]:
        r = self.client.get(f"/api/v1/services/{name}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def keys(self, name: str) -> tuple[str, str]:
        r = self.client.post(f"/api/v1/services/{name}/listkeys")
        assert r.status_code == 200, r.text
        return r.json()["primaryKey"], r.json()["secondaryKey"]

    def score_url(self, name: str) -> str:
        return f"{self.router_url}/api/v1/service/{name}/score"

    def stop_all(self) -> None:
        if self.client is not None:
            self.client.close()
        stop_all(self.settings)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def machine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("machine-cache")


def make_plane(root: Path, cache: Path) -> Plane:
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    env.update(
        {
            "MODELHOST_HOME": str(root / "ws"),
            "MODELHOST_CONTROL_PORT": str(free_port()),
            "MODELHOST_ROUTER_PORT": str(free_port()),
            "MODELHOST_CACHE_DIR": str(cache),
        }
    )
    return Plane(root=root, env=env, settings=Settings.from_env(env))


@pytest.fixture
def plane(tmp_path: Path, machine_cache: Path) -> Iterator[Plane]:
    """A fresh workspace with its control plane running; everything stopped at the end."""
    p = make_plane(tmp_path, machine_cache)
    p.start()
    try:
        yield p
    finally:
        p.stop_all()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, machine_cache: Path) -> Iterator[Plane]:
    """One workspace for a module's tests (each deploys services of its own names)."""
    p = make_plane(tmp_path_factory.mktemp("shared"), machine_cache)
    p.start()
    try:
        yield p
    finally:
        p.stop_all()
