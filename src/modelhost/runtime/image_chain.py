"""Which image a Kubernetes service runs: the seed's lookup chain, cluster registry -> shared -> build.

The environment's content hash names its image, ``<registry>/modelhost-env:<hash>``. Before a
deploy applies anything, :class:`EnvironmentImages` asks the chain (:func:`~.oci.find_environment_image`):

- found in the cluster's registry: run it **by digest** (``...@sha256:``; a tag can move);
- found only in the shared registry: run it from there, by digest (the nodes pull from it);
- found nowhere: build it with the target's builder (a Job in the cluster, or ``buildah`` here),
  push to the cluster's registry, look the tag up again and run the pushed digest.

:func:`decide` is the pure part (lookup answer + settings -> what to do); :class:`EnvironmentImages`
does the lookups, calls the :class:`ImageBuilder` and remembers the answer per hash, so concurrent
deploys of one environment in this control plane wait for one build (across control planes the
build Job's name, derived from the hash, is the meeting point).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from modelhost.errors import DeploymentFailedError, ModelhostError, ValidationError
from modelhost.runtime.oci import ImageFound, NeedsBuild, Registry, find_environment_image

__all__ = [
    "BUILDERS",
    "Build",
    "BuilderName",
    "EnvironmentImages",
    "ImageBuilder",
    "ImageSettings",
    "Use",
    "decide",
]

BuilderName = Literal["kaniko", "buildkit", "local"]
BUILDERS: tuple[BuilderName, ...] = ("kaniko", "buildkit", "local")
LogFn = Callable[[str], None]


@dataclass(frozen=True)
class ImageSettings:
    """A target's image settings: the cluster's registry, an optional shared one (looked in second,
    never pushed to) and the builder for images found in neither (None: no build, the deploy fails)."""

    registry: Registry
    shared: Registry | None = None
    builder: BuilderName | None = None

    @property
    def chain(self) -> tuple[Registry, ...]:
        return (self.registry,) if self.shared is None else (self.registry, self.shared)


@dataclass(frozen=True)
class Use:
    """Run ``reference`` (by digest); ``message`` is the progress line saying where it was found."""

    reference: str
    message: str


@dataclass(frozen=True)
class Build:
    """Build ``tag_reference`` with ``builder`` and push it to the cluster's registry."""

    tag_reference: str
    builder: BuilderName
    message: str


def decide(answer: ImageFound | NeedsBuild, settings: ImageSettings) -> Use | Build:
    """What a lookup answer means for the deploy. Raises ``DeploymentFailedError`` when the image
    is missing and the target has no builder."""
    if isinstance(answer, ImageFound):
        where = f"environment image {answer.reference} found in {answer.registry}"
        if settings.shared is not None and answer.registry == settings.shared.prefix:
            where += " (the shared registry: the nodes pull it from there)"
        return Use(answer.reference, where)
    searched = ", ".join(answer.searched)
    if settings.builder is None:
        raise DeploymentFailedError(
            f"environment image {answer.tag_reference} is in none of the registries {searched}, "
            "and the compute target has no builder",
            hint="Push the image yourself, or attach the target with --builder kaniko|buildkit|local.",
        )
    where = "in the cluster (a build Job)" if settings.builder != "local" else "on this machine (buildah)"
    return Build(
        answer.tag_reference,
        settings.builder,
        f"environment image not found in {searched}: building {answer.tag_reference} {where}",
    )


class ImageBuilder(Protocol):
    """Builds ``tag_reference`` for an environment and pushes it; raises ``DeploymentFailedError``
    with the builder's last lines when the build fails."""

    def build(
        self, env_hash: str, requirements: Sequence[str], python: str | None, tag_reference: str, log: LogFn
    ) -> None: ...


def _lookup_failed(exc: ModelhostError) -> DeploymentFailedError:
    return DeploymentFailedError(
        f"cannot look the environment image up: {exc.message}",
        hint=f"{exc.hint} (the compute target's --registry / --shared-registry options name the registries)",
    )


class EnvironmentImages:
    """The lookup chain of one compute target, with the answers remembered per environment hash."""

    def __init__(
        self,
        settings: ImageSettings,
        builders: Callable[[BuilderName], ImageBuilder],
        *,
        find: Callable[[str, Sequence[Registry]], ImageFound | NeedsBuild] = find_environment_image,
    ) -> None:
        self.settings = settings
        self._builders = builders
        self._find = find
        self._lock = threading.Lock()
        self._per_hash: dict[str, threading.Lock] = {}
        self._found: dict[str, str] = {}

    def _lookup(self, env_hash: str) -> ImageFound | NeedsBuild:
        try:
            return self._find(env_hash, self.settings.chain)
        except ValidationError:
            raise
        except ModelhostError as exc:
            raise _lookup_failed(exc) from exc

    def ensure(
        self, env_hash: str, requirements: Sequence[str], log: LogFn, *, python: str | None = None
    ) -> str:
        """The image reference (by digest) for ``env_hash``, built first when no registry holds it
        (``python``: the image's Python minor, e.g. ``"3.11"``; None: the builder's default)."""
        with self._lock:
            gate = self._per_hash.setdefault(env_hash, threading.Lock())
        with gate:  # a second deploy of the same environment waits for the first one's build
            action = decide(self._lookup(env_hash), self.settings)
            if isinstance(action, Build):
                log(action.message)
                builder = self._builders(action.builder)
                builder.build(env_hash, requirements, python, action.tag_reference, log)
                answer = self._lookup(env_hash)
                if not isinstance(answer, ImageFound):
                    raise DeploymentFailedError(
                        f"the build of {action.tag_reference} finished but the registry "
                        f"{self.settings.registry.prefix} does not hold the tag",
                        hint="Check that the builder pushes to the registry the nodes pull from.",
                    )
                action = Use(answer.reference, f"environment image {answer.reference} built and pushed")
            log(action.message)
            with self._lock:
                self._found[env_hash] = action.reference
            return action.reference

    def reference(self, env_hash: str) -> str:
        """The reference :meth:`ensure` found last for ``env_hash``; a lookup (no build) otherwise."""
        with self._lock:
            known = self._found.get(env_hash)
        if known is not None:
            return known
        answer = self._lookup(env_hash)
        if isinstance(answer, NeedsBuild):
            raise DeploymentFailedError(
                f"environment image {answer.tag_reference} is in none of the registries "
                f"{', '.join(answer.searched)}",
                hint="Deploy the service again: a deploy builds missing images.",
            )
        with self._lock:
            self._found[env_hash] = answer.reference
        return answer.reference
