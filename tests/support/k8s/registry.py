"""An OCI registry on 127.0.0.1 for tests: Debian's ``docker-registry`` (distribution 2.8) with
filesystem storage in a temporary folder, no authentication, plain HTTP."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from modelhost.errors import ModelhostError
from tests.support.net import free_port, wait_until

__all__ = ["OciRegistry", "RegistryStartError", "registry_binary", "start_registry"]


class RegistryStartError(ModelhostError):
    """The test registry did not start."""

    default_hint = "Install it with tests/support/k8s/setup-registry.sh (apt-get install docker-registry)."


@dataclass
class OciRegistry:
    """A running registry: ``url`` is ``http://127.0.0.1:<port>``, ``host`` is ``127.0.0.1:<port>``
    (what image references start with)."""

    url: str
    host: str
    storage: Path
    log: Path
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self._popen is None or self._popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signal.SIGTERM)
        try:
            self._popen.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self._popen.pid, signal.SIGKILL)
            self._popen.wait(5)


def registry_binary() -> str | None:
    return shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None
    )


def _config(port: int, storage: Path) -> str:
    return f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{url}/v2/", timeout=1) as resp:
        return int(resp.status) == 200


def start_registry(workdir: Path) -> OciRegistry:
    """Start ``docker-registry serve`` on a free port; return once ``GET /v2/`` answers 200."""
    binary = registry_binary()
    if binary is None:
        raise RegistryStartError("docker-registry is not installed")
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(_config(port, storage))
    log = workdir / "registry.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    registry = OciRegistry(url, f"127.0.0.1:{port}", storage, log, popen)
    try:
        wait_until(lambda: popen.poll() is None and _answers(url), 30, what=f"registry at {url}")
    except TimeoutError as exc:
        registry.stop()
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RegistryStartError(f"docker-registry did not answer on {url}: {exc}\n{tail}") from exc
    return registry
