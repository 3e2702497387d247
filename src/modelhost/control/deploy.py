"""The deployment process of a service, step by step, and the parsing of deploy requests.

Pure parts: :func:`parse_deploy_request` (one ``ValidationError`` listing every violation of the
body, the name and the configuration) and :func:`plan_update` (roll a new generation, scale, or only
republish routes). :class:`Deployer` does the I/O of the seed's process, each step logged on the
operation::

    snapshot -> environment (cache hit or build lines) -> models -> start replicas -> health check

Routes are published by the caller (:mod:`modelhost.control.services`) once the replicas are ready.
"""

from __future__ import annotations

import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from modelhost.build.environment import EnvironmentBuilder
from modelhost.build.snapshot import check_entry_script
from modelhost.errors import DeploymentFailedError, NotFoundError, ValidationError
from modelhost.runtime.base import (
    ModelFileSpec,
    ModelSpec,
    ProbeSettings,
    Resources,
    Runtime,
    ServiceDeployment,
    ServiceStatus,
)
from modelhost.runtime.supervision import start_deadline_s
from modelhost.spec.deployment import (
    PREFIX,
    DeploymentConfig,
    RuntimeSettings,
    check_deploy,
    config_from_payload,
)
from modelhost.spec.environment import EnvironmentSpec, python_minor
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.metadata import Store
from modelhost.store.records import ModelRecord, ServiceRecord

__all__ = [
    "DEFAULT_SOURCE_DIR",
    "MAX_MODELS",
    "REPLICA_TIMEOUT_MARGIN_MS",
    "DeployRequest",
    "Deployer",
    "DeploymentFailed",
    "EnvironmentRef",
    "UpdatePlan",
    "check_snapshot",
    "parse_deploy_request",
    "parse_model_id",
    "plan_update",
    "replica_scoring_timeout_ms",
]

MAX_MODELS = 1000  # v1: at most 1,000 models per deployment
# The replica's own SCORING_TIMEOUT_MS is the router's plus this margin, so the router answers first
# (504, what v1 clients expect) and the replica's timeout is only a backstop (docs/router.md).
REPLICA_TIMEOUT_MARGIN_MS = 5000
# Where a snapshot without a source directory (a lone entry script) is unpacked in the replica.
DEFAULT_SOURCE_DIR = "app"
_HEALTH_POLL_S = 0.1
_HEALTH_MARGIN_S = 30.0

UpdatePlan = Literal["roll", "scale", "routes"]


@dataclass(frozen=True)
class EnvironmentRef:
    name: str
    version: int


@dataclass(frozen=True)
class DeployRequest:
    """A validated ``POST /api/v1/services`` body (the configuration resolved, keys split off)."""

    name: str
    models: tuple[str, ...]
    entry_script: str
    source_dir: str
    snapshot: str
    environment: EnvironmentRef | None
    config: DeploymentConfig
    overwrite: bool
    primary_key: str | None
    secondary_key: str | None


def replica_scoring_timeout_ms(settings: RuntimeSettings) -> int:
    return settings.scoring_timeout_ms + REPLICA_TIMEOUT_MARGIN_MS


def parse_model_id(raw: object) -> tuple[str, int | None]:
    """``"name:3"`` -> ``("name", 3)``; ``"name"`` -> ``("name", None)`` (the newest version)."""
    if not isinstance(raw, str) or not raw:
        raise ValidationError(f"Invalid model id {raw!r}: expected 'name:version'")
    name, sep, version = raw.rpartition(":")
    if not sep:
        return raw, None
    if not name or not version.isdigit():
        raise ValidationError(f"Invalid model id {raw!r}: expected 'name:version' with an integer version")
    return name, int(version)


def _str_field(body: Mapping[str, Any], key: str, problems: list[str], *, required: bool = True) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        problems.append(f"{PREFIX}{key} must be a non-empty string, got {value!r}.")
        return ""
    return value


def _entry_problems(entry_script: str) -> list[str]:
    rel = PurePosixPath(entry_script.replace("\\", "/"))
    if entry_script and (rel.is_absolute() or ".." in rel.parts):
        return [f"{PREFIX}entry_script {entry_script!r} must be a path inside the source directory."]
    return []


def _environment(raw: object, problems: list[str]) -> EnvironmentRef | None:
    if raw is None:
        return None
    name = raw.get("name") if isinstance(raw, dict) else None
    version = raw.get("version") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not name or isinstance(version, bool) or not isinstance(version, int):
        problems.append(f"{PREFIX}environment must be null or {{'name': str, 'version': int}}, got {raw!r}.")
        return None
    return EnvironmentRef(name, version)


def _models(raw: object, problems: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
        problems.append(f"{PREFIX}models must be a list of model ids 'name:version', got {raw!r}.")
        return ()
    if len(raw) > MAX_MODELS:
        problems.append(f"{PREFIX}a deployment holds at most {MAX_MODELS} models, got {len(raw)}.")
    for model in raw:
        try:
            parse_model_id(model)
        except ValidationError as exc:
            problems.append(f"{PREFIX}{exc.message}.")
    return tuple(dict.fromkeys(raw))


def parse_deploy_request(body: object) -> DeployRequest:
    """Validate a deploy body: one ``ValidationError`` listing every violation (body fields first,
    then the service name and the configuration, as :func:`check_deploy` words them)."""
    if not isinstance(body, dict):
        raise ValidationError("The deploy body must be a JSON object")
    problems: list[str] = []
    entry = _str_field(body, "entry_script", problems)
    problems += _entry_problems(entry)
    source = _str_field(body, "source_directory", problems, required=False)
    if source and ("/" in source or source in (".", "..")):
        problems.append(f"{PREFIX}source_directory must be the folder's base name, got {source!r}.")
    snapshot = _str_field(body, "snapshot", problems)
    models = _models(body.get("models"), problems)
    environment = _environment(body.get("environment"), problems)
    overwrite = body.get("overwrite", False)
    if not isinstance(overwrite, bool):
        problems.append(f"{PREFIX}overwrite must be true or false, got {overwrite!r}.")
    raw_config = body.get("deployment_config")
    config: DeploymentConfig | None = None
    try:
        config = config_from_payload(raw_config if isinstance(raw_config, dict) else {})
    except ValidationError as exc:
        problems.append(exc.message)
    name = body.get("name")
    try:
        resolved = check_deploy(name, config) if config is not None else None
    except ValidationError as exc:
        problems += list(exc.details) if exc.details else [exc.message]
        resolved = None
    if problems or resolved is None or config is None:
        _raise(problems)
    assert resolved is not None and config is not None and isinstance(name, str)
    return DeployRequest(
        name=name,
        models=models,
        entry_script=entry.replace("\\", "/"),
        source_dir=source,
        snapshot=snapshot,
        environment=environment,
        config=resolved,
        overwrite=bool(overwrite),
        primary_key=getattr(config, "primary_key", None),
        secondary_key=getattr(config, "secondary_key", None),
    )


def _raise(problems: list[str]) -> None:
    if len(problems) == 1:
        raise ValidationError(problems[0], details=problems)
    raise ValidationError("\n".join(problems), details=problems)


def check_snapshot(artifacts: ArtifactStore, digest: str, entry_script: str) -> int:
    """Check that the snapshot blob exists (``NotFoundError``) and that the entry script is in it,
    is a module name and parses (``EntryScriptError`` naming the file and the line). Its file count."""
    if not artifacts.exists(digest):
        raise NotFoundError(
            f"Snapshot blob {digest} not found in the workspace",
            hint="Upload the source snapshot with PUT /api/v1/blobs/<sha256> first.",
        )
    path = artifacts.path(digest)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            with tempfile.TemporaryDirectory(prefix="modelhost-entry-") as tmp:
                if entry_script in names:
                    target = Path(tmp) / entry_script
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(entry_script))
                check_entry_script(Path(tmp), entry_script, names)
    except zipfile.BadZipFile as exc:
        raise ValidationError(f"Snapshot blob {digest} is not a zip archive: {exc}") from exc
    return len(names)


def plan_update(
    old: ServiceRecord, old_settings: RuntimeSettings, new: ServiceRecord, new_settings: RuntimeSettings
) -> UpdatePlan:
    """``roll`` when the replicas must change (code, models, environment, resources, probe, replica
    concurrency or timeout, Local port), ``scale`` when only the replica count does, else ``routes``
    (auth, keys, queue wait, autoscale bounds, tags...: the router's business)."""
    code = ("models", "entry_script", "source_dir", "snapshot", "environment_name", "environment_version")
    if any(getattr(old, f) != getattr(new, f) for f in code):
        return "roll"
    replica = ("resources", "probe", "max_concurrent_requests", "scoring_timeout_ms", "port", "compute_type",
               "collect_model_data")  # collection is replica environment
    if any(getattr(old_settings, f) != getattr(new_settings, f) for f in replica):
        return "roll"
    if (old_settings.replicas, old_settings.autoscale is None) != (
        new_settings.replicas,
        new_settings.autoscale is None,
    ):
        return "scale"
    return "routes"


LogFn = Callable[[str], None]
# (service, environment hash, requirements, Python minor, log): RuntimeSet.prepare_image
ImageHook = Callable[[str, str, Sequence[str], str | None, LogFn], None]


class Deployer:
    """The I/O steps of deploying one generation of a service."""

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        builder: EnvironmentBuilder,
        runtime: Runtime,
        *,
        ensure_environment: Callable[[str, int, LogFn], tuple[Path, dict[str, str]]] | None = None,
        environment_image: ImageHook | None = None,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._builder = builder
        self._runtime = runtime
        self._ensure_environment = ensure_environment
        self._environment_image = environment_image

    def environment(self, record: ServiceRecord, log: LogFn) -> tuple[Path, dict[str, str]]:
        """The interpreter and environment variables the replicas run with."""
        if record.environment_name is None or record.environment_version is None:
            log("environment: none given, inheriting the control plane's interpreter " + sys.executable)
            return Path(sys.executable), {}
        name, version = record.environment_name, record.environment_version
        if self._ensure_environment is not None:
            found = self._ensure_environment(name, version, log)
        else:
            env = self._store.get_environment(name, version)
            spec = EnvironmentSpec.from_dict(env.spec)
            built = self._builder.ensure(spec, log=lambda line: log(f"environment: {line}"))
            found = built.python, dict(spec.env_vars)
        self.environment_image(record, log)
        return found

    def environment_image(self, record: ServiceRecord, log: LogFn) -> None:
        """On a cluster target with an image chain: find (or build) the environment's image before
        anything is applied (``environment_image`` hook: ``RuntimeSet.prepare_image``)."""
        if self._environment_image is None or record.compute_type == "Local":
            return
        if record.environment_name is None or record.environment_version is None:
            return
        env = self._store.get_environment(record.environment_name, record.environment_version)
        spec = EnvironmentSpec.from_dict(env.spec)
        minor = python_minor(spec.python) or f"{sys.version_info.major}.{sys.version_info.minor}"
        self._environment_image(record.name, self._builder.spec_hash(spec), spec.requirements, minor, log)

    def environment_hash(self, record: ServiceRecord) -> str | None:
        """The content hash of the service's environment (it names the image on Kubernetes); None
        when the service inherits the control plane's interpreter."""
        if record.environment_name is None or record.environment_version is None:
            return None
        env = self._store.get_environment(record.environment_name, record.environment_version)
        return self._builder.spec_hash(EnvironmentSpec.from_dict(env.spec))

    def models(self, record: ServiceRecord, log: LogFn) -> tuple[ModelSpec, ...]:
        found: list[ModelRecord] = []
        for model_id in record.models:
            name, version = parse_model_id(model_id)
            found.append(self._store.get_model(name, version))
        files = sum(len(m.files) for m in found)
        size = sum(m.size for m in found)
        log(f"models: {len(found)} model(s), {files} file(s), {size} bytes")
        return tuple(
            ModelSpec(
                name=m.name,
                version=m.version,
                files=tuple(
                    ModelFileSpec(path=f.path, sha256=f.sha256, executable=f.executable) for f in m.files
                ),
            )
            for m in found
        )

    def deployment(
        self,
        record: ServiceRecord,
        settings: RuntimeSettings,
        *,
        python: Path,
        env: Mapping[str, str],
        models: tuple[ModelSpec, ...],
        replicas: int,
    ) -> ServiceDeployment:
        if record.snapshot is None:
            raise ValidationError(f"Service {record.name} has no snapshot", hint="Deploy it again.")
        return ServiceDeployment(
            service=record.name,  # type: ignore[arg-type]
            generation=record.generation,
            python=python,
            entry_script=record.entry_script,
            source_dir=record.source_dir or DEFAULT_SOURCE_DIR,
            snapshot=self._artifacts.path(record.snapshot),
            models=models,
            env=dict(env),
            resources=Resources(**settings.resources),
            replicas=replicas,
            max_concurrent_requests=settings.max_concurrent_requests,
            scoring_timeout_ms=replica_scoring_timeout_ms(settings),
            probe=ProbeSettings(**settings.probe),
            port=settings.port,
            environment_hash=self.environment_hash(record),
            snapshot_sha256=record.snapshot,
        )

    def wait_healthy(self, name: str, generation: int, probe: ProbeSettings, log: LogFn) -> ServiceStatus:
        """Poll the runtime until the generation is ``Healthy`` (returned) or ``Failed`` (raised as
        :class:`DeploymentFailed` with the runtime's message), within the probe's start deadline
        plus a margin."""
        deadline = time.monotonic() + start_deadline_s(probe) + _HEALTH_MARGIN_S
        seen: dict[str, str] = {}
        while True:
            status = self._runtime.status(name)  # type: ignore[arg-type]
            for r in status.replicas:
                if r.generation == generation and seen.get(r.id) != r.state:
                    seen[r.id] = r.state
                    where = f" on port {r.port}" if r.port else ""
                    log(f"replica {r.id}: {r.state}{where}" + (f" (pid {r.pid})" if r.pid else ""))
            if status.generation == generation and status.state == "Healthy":
                return status
            if status.generation == generation and status.state == "Failed":
                raise DeploymentFailed(status.error or "the service's replicas failed")
            if time.monotonic() > deadline:
                raise DeploymentFailed(
                    f"DeploymentTimedOut: the replicas of {name} did not become ready within "
                    f"{start_deadline_s(probe) + _HEALTH_MARGIN_S:g} s",
                    timed_out=True,
                )
            time.sleep(_HEALTH_POLL_S)


DeploymentFailed = DeploymentFailedError  # the runtime gave up, or replicas never became ready
