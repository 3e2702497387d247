"""Each attached cluster's environment-image lookup chain, made from its compute record on first use.

A target with neither ``builder`` nor ``shared_registry`` has no chain: its replicas run the tag
``<registry>/modelhost-env:<hash>`` as someone else pushed it, and the control plane need not reach
the registry at all (a cluster-local registry such as ``localhost:5000`` often is not reachable
from outside the cluster).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from modelhost.control.compute import ComputeService
from modelhost.runtime.image_chain import BUILDERS, EnvironmentImages, ImageBuilder, ImageSettings
from modelhost.runtime.k8s_render import BuildOptions, K8sOptions
from modelhost.runtime.oci import Registry

__all__ = ["TargetImages"]


class TargetImages:
    """``images(target)`` -> the target's :class:`EnvironmentImages` or None (see the module
    docstring). ``build``: the build options of every target (base image, builder images, how
    modelhost is installed); ``local_context``: files a local (buildah) build copies into its context."""

    def __init__(
        self,
        compute: ComputeService,
        *,
        control_url: str,
        build: BuildOptions | None = None,
        local_context: Sequence[Path] = (),
    ) -> None:
        self._compute = compute
        self._control_url = control_url
        self._build = build or BuildOptions()
        self._local_context = tuple(local_context)
        self._lock = threading.Lock()
        self._made: dict[str, EnvironmentImages | None] = {}

    def __call__(self, target: str) -> EnvironmentImages | None:
        with self._lock:
            if target not in self._made:
                self._made[target] = self._make(target)
            return self._made[target]

    def forget(self, target: str) -> None:
        with self._lock:
            self._made.pop(target, None)

    def _make(self, target: str) -> EnvironmentImages | None:
        record = self._compute.get(target)
        if record.builder is None and record.shared_registry is None:
            return None
        creds = self._compute.registry_credentials(target)
        user, password = creds.get("registry", (None, None))
        registry = Registry(record.registry, user, password, True if record.registry_insecure else None)
        shared = None
        if record.shared_registry is not None:
            user, password = creds.get("shared_registry", (None, None))
            shared = Registry(record.shared_registry, user, password)
        builder = next((b for b in BUILDERS if b == record.builder), None)
        options = K8sOptions(
            namespace=record.namespace,
            registry=record.registry,
            artifact_url=record.artifact_url or self._control_url,
            registry_insecure=record.registry_insecure,
        )

        def builders(name: str) -> ImageBuilder:
            from modelhost.runtime.image_build import ClusterBuilder, LocalBuilder

            if name == "local":
                return LocalBuilder(registry, self._build, context_files=self._local_context)
            build = replace(self._build, builder="buildkit" if name == "buildkit" else "kaniko")
            return ClusterBuilder(self._compute.api_client(target), options, build)

        return EnvironmentImages(ImageSettings(registry, shared, builder), builders)
