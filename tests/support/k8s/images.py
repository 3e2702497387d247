"""Container images for the node agent: there is no container runtime here, so an image names a local
Python environment whose ``bin/`` goes first on the process's PATH.

``LocalImages`` is the resolver the fixtures configure:
- the "modelhost image" (``modelhost/modelhost:<any tag>`` by default) is the test venv (``sys.prefix``);
- ``<registry>/modelhost-env:<hash>`` is the environment built for that hash, ``<envs_dir>/<hash>``;
- ``...@sha256:<digest>`` and any other exact reference is what a test registered with ``register``;
- ``<127.0.0.1:port>/.../modelhost-env@sha256:<digest>`` otherwise is "pulled" like a kubelet would:
  the manifest and its config are read from that (test) registry, and the config's label
  ``io.modelhost.environment`` names the hash whose ``modelhost-env:<hash>`` it resolves as (what
  the stand-in builder pushed for a build, tests/support/k8s/standin_builder.py).
An image it does not know resolves to ``None``: the container waits with ``ErrImagePull`` /
``ImagePullBackOff`` as a kubelet's would.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ImageResolver", "LocalImages", "ResolvedImage", "split_reference"]


@dataclass(frozen=True)
class ResolvedImage:
    """A local stand-in for an image: an environment prefix (its ``bin/`` is prepended to PATH), extra
    environment variables, and the image's ENTRYPOINT/CMD for containers that set no command."""

    prefix: Path | None
    env: Mapping[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    image_id: str = ""


ImageResolver = Callable[[str], ResolvedImage | None]
"""Maps a container's ``image`` to a local environment, or ``None`` when it cannot be "pulled"."""


def split_reference(image: str) -> tuple[str, str | None, str | None]:
    """``registry/repo:tag@sha256:d`` -> ``(registry/repo, tag, "sha256:d")``."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    name, tag = image, None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = image.rsplit(":", 1)
    return name, tag, digest


class LocalImages:
    """The fixtures' resolver (see the module docstring). Thread-safe: tests register while agents run."""

    def __init__(
        self, envs_dir: Path | None, modelhost_repos: tuple[str, ...] = ("modelhost/modelhost",)
    ) -> None:
        self.envs_dir = envs_dir
        self.modelhost_repos = modelhost_repos
        self._exact: dict[str, ResolvedImage] = {}
        self._lock = threading.Lock()

    def register(
        self,
        reference: str,
        prefix: Path,
        *,
        entrypoint: tuple[str, ...] = (),
        cmd: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Make ``reference`` (a full image reference, a digest ``sha256:...`` or ``name@sha256:...``)
        resolve to the environment at ``prefix``."""
        resolved = ResolvedImage(prefix, dict(env or {}), entrypoint, cmd, f"local://{prefix}")
        with self._lock:
            self._exact[reference] = resolved

    def unregister(self, reference: str) -> None:
        with self._lock:
            self._exact.pop(reference, None)

    def modelhost_image(self, tag: str = "test") -> str:
        """A reference that resolves to the test venv."""
        return f"{self.modelhost_repos[0]}:{tag}"

    def __call__(self, image: str) -> ResolvedImage | None:
        name, tag, digest = split_reference(image)
        with self._lock:
            for key in (image, digest or "", f"{name}@{digest}" if digest else ""):
                if key and key in self._exact:
                    return self._exact[key]
        if digest and name.rsplit("/", 1)[-1] == "modelhost-env" and _loopback(name):
            env_hash = _pulled_environment(name, digest)
            return self(f"{name}:{env_hash}") if env_hash else None
        if _repo_of(name) in self.modelhost_repos:
            return ResolvedImage(Path(sys.prefix), image_id=f"local://{sys.prefix}")
        if name.rsplit("/", 1)[-1] == "modelhost-env" and tag and self.envs_dir is not None:
            env = self.envs_dir / tag
            if (env / "bin").is_dir():
                return ResolvedImage(env, image_id=f"local://{env}")
        return None


def _loopback(name: str) -> bool:
    return name.split("/", 1)[0].split(":")[0] in ("127.0.0.1", "localhost")


def _pulled_environment(name: str, digest: str) -> str | None:
    """The ``io.modelhost.environment`` label of image ``name@digest`` in its (plain HTTP) registry."""
    host, repo = name.split("/", 1)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    try:
        request = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{digest}", headers=accept)
        with opener.open(request, timeout=10) as resp:
            config = json.loads(resp.read())["config"]["digest"]
        with opener.open(f"http://{host}/v2/{repo}/blobs/{config}", timeout=10) as resp:
            labels = json.loads(resp.read()).get("config", {}).get("Labels") or {}
    except (OSError, ValueError, KeyError):
        return None  # not pullable: ErrImagePull, as a kubelet
    value = labels.get("io.modelhost.environment")
    return value if isinstance(value, str) else None


def _repo_of(name: str) -> str:
    """Drop a registry host (``docker.io/``, ``localhost:5000/``) from ``name``."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return rest
    return name
