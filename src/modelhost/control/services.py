"""Services: deploy, update, delete, keys, logs, as long-running operations over store, runtime and router.

Every request is validated completely before anything is stored or started (400 listing every
violation, 404 unknown model, environment or snapshot, 409 name taken). The work then runs as an
operation (``deploy``, ``update``, ``delete``, ``regenerate-keys``, ``reload``) whose log streams
each step; a second operation on a service while one runs is refused with 409.

:class:`ServiceManager` keeps the store's services and keys in memory (written through), so the
routing table can be rebuilt every few hundred milliseconds without a database round trip.
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from modelhost.autoscale import AutoscaleConfig
from modelhost.control.data_collection import collection_env, data_root
from modelhost.control.deploy import (
    Deployer,
    DeploymentFailed,
    EnvironmentRef,
    UpdatePlan,
    check_snapshot,
    parse_deploy_request,
    parse_model_id,
    plan_update,
)
from modelhost.control.operations import Operation, Operations
from modelhost.control.routing import RoutePublisher, RouteSource
from modelhost.control.service_view import LiveService, matches_filters, scoring_uri, service_to_dict
from modelhost.control.telemetry_logs import LogResponseLookup, init_output
from modelhost.errors import ConflictError, ModelhostError, NotFoundError, ValidationError
from modelhost.runtime.base import ProbeSettings, Runtime, ServiceStatus
from modelhost.settings import Settings
from modelhost.spec.deployment import (
    CALLER_KEYS,
    PREFIX,
    AciDeploymentConfig,
    AksDeploymentConfig,
    DeploymentConfig,
    LocalDeploymentConfig,
    RuntimeSettings,
    apply_update,
    changes_from_json_patch,
    config_from_payload,
)
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.metadata import Store
from modelhost.store.records import ServiceKeys, ServiceRecord, SnapshotRecord
from modelhost.types import ServiceName

__all__ = ["ServiceManager", "new_key"]

_CODE_KEYS = ("entry_script", "source_directory", "snapshot", "environment")


def new_key() -> str:
    return secrets.token_urlsafe(32)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _target(config: Mapping[str, Any]) -> str:
    name = config.get("computeName")
    return name if isinstance(name, str) and name else "local"


def _config_payload(config: DeploymentConfig) -> dict[str, Any]:
    """The payload stored for a resolved configuration: keys left out (they live apart)."""
    if isinstance(config, AksDeploymentConfig | AciDeploymentConfig):
        config = dataclasses.replace(config, primary_key=None, secondary_key=None)
    payload = config.to_payload()
    payload.pop("keys", None)
    return payload


class ServiceManager:
    """The service operations of one control plane (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        artifacts: ArtifactStore,
        runtime: Runtime,
        operations: Operations,
        deployer: Deployer,
    ) -> None:
        self._settings = settings
        self._store = store
        self._artifacts = artifacts
        self._runtime = runtime
        self._operations = operations
        self._deployer = deployer
        self._lock = threading.Lock()
        self._busy: dict[str, Operation] = {}
        self._reserved: set[str] = set()
        self._last_op: dict[str, str] = {}
        self._deleting: set[str] = set()
        self._records: dict[str, ServiceRecord] = {r.name: r for r in store.list_services()}
        self._keys: dict[str, ServiceKeys] = store.all_service_keys()
        self._runtime_settings: dict[str, tuple[ServiceRecord, RuntimeSettings]] = {}
        self.publisher: RoutePublisher | None = None
        self.utilization: Callable[[str], float | None] = lambda _name: None
        # set by the composition root: whether a compute target is attached ('local' always is)
        self.compute_exists: Callable[[str], bool] = lambda name: name == "local"
        self._log_response = LogResponseLookup(store)  # request telemetry's response value on/off
        # set by the composition root: re-apply what in-cluster routers read (control/cluster_routes.py)
        self.on_routes_changed: Callable[[], None] = lambda: None

    # -- reading -------------------------------------------------------------------------------

    def settings_of(self, record: ServiceRecord) -> RuntimeSettings:
        cached = self._runtime_settings.get(record.name)
        if cached is not None and cached[0] is record:
            return cached[1]
        value = config_from_payload(record.config).runtime_settings()
        self._runtime_settings[record.name] = (record, value)
        return value

    def _status(self, name: str) -> ServiceStatus | None:
        try:
            return self._runtime.status(name)  # type: ignore[arg-type]
        except NotFoundError:
            return None

    def _record(self, name: str) -> ServiceRecord:
        with self._lock:
            record = self._records.get(name)
        if record is None:
            return self._store.get_service(name)  # raises v1's WebserviceNotFound
        return record

    def _live(self, record: ServiceRecord) -> LiveService:
        with self._lock:
            op = self._busy.get(record.name)
            last = self._last_op.get(record.name)
        running = op is not None and not op.done
        return LiveService(
            record=record,
            status=self._status(record.name),
            operation_id=last,
            operation_kind=op.kind if running and op is not None else None,
            utilization=self.utilization(record.name),
        )

    def view(self, name: str) -> dict[str, Any]:
        record = self._record(name)
        return service_to_dict(
            self._live(record), host=self._settings.host, router_port=self._settings.router_port
        )

    def list_views(
        self,
        *,
        compute_type: str | None = None,
        model: str | None = None,
        tags: list[str] | None = None,
        properties: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.name)
        chosen = [
            r
            for r in records
            if matches_filters(
                r, compute_type=compute_type, model=model, tags=tags or (), properties=properties or ()
            )
        ]
        return [
            service_to_dict(self._live(r), host=self._settings.host, router_port=self._settings.router_port)
            for r in chosen
        ]

    def compute_target_of(self, name: str) -> str:
        """The compute target a service runs on: its ``computeName``, else ``local``."""
        with self._lock:
            record = self._records.get(name)
        return _target(record.config) if record is not None else "local"

    def keys_of(self, name: str) -> tuple[str, str] | None:
        """A service's (primary, secondary) keys, for the Kubernetes keys Secret."""
        with self._lock:
            keys = self._keys.get(name)
        return None if keys is None else (keys.primary, keys.secondary)

    def services_on(self, target: str) -> list[str]:
        with self._lock:
            return [r.name for r in self._records.values() if _target(r.config) == target]

    def route_sources(self) -> list[RouteSource]:
        """What the routing table is built from (services being deleted are left out)."""
        with self._lock:
            records = [r for r in self._records.values() if r.name not in self._deleting]
            keys = dict(self._keys)
        return [
            RouteSource(r.name, self.settings_of(r), keys.get(r.name), self._status(r.name),
                        log_response=self._log_response(r, self.settings_of(r)))
            for r in records
        ]

    def route_source(self, name: str) -> RouteSource | None:
        """One service's route inputs without its status (a cluster anchor's ``data.route``)."""
        with self._lock:
            record = self._records.get(name)
            keys = self._keys.get(name)
        if record is None:
            return None
        return RouteSource(record.name, self.settings_of(record), keys, None,
                           log_response=self._log_response(record, self.settings_of(record)))

    def cluster_route_sources(self) -> list[tuple[str, RouteSource]]:
        """``(target, route inputs)`` of every service on a cluster target (none being deleted)."""
        with self._lock:
            records = [r for r in self._records.values() if r.name not in self._deleting]
            keys = dict(self._keys)
        return [
            (_target(r.config), RouteSource(r.name, self.settings_of(r), keys.get(r.name), None,
                                            log_response=self._log_response(r, self.settings_of(r))))
            for r in records if _target(r.config) != "local"
        ]

    def autoscale_configs(self) -> dict[ServiceName, AutoscaleConfig]:
        """The autoscaled services and their settings (for the autoscaler loop)."""
        with self._lock:
            records = list(self._records.values())
        out = {}
        for r in records:
            autoscale = self.settings_of(r).autoscale
            if autoscale is not None and r.name not in self._deleting:
                out[ServiceName(r.name)] = autoscale
        return out

    def scoring_timeout_s(self, name: str) -> float:
        with self._lock:
            record = self._records.get(name)
        return 60.0 if record is None else self.settings_of(record).scoring_timeout_ms / 1000

    def list_keys(self, name: str) -> dict[str, str]:
        record = self._record(name)
        if record.compute_type == "Local":
            raise ValidationError(
                f"Service {name} is a LocalWebservice: keys are not used by a LocalWebservice",
                hint="Local services have no authentication; call the scoring URI directly.",
            )
        keys = self._store.get_service_keys(name)
        if keys is None:
            raise NotFoundError(f"Service {name} has no keys", hint="Regenerate them with regen_key().")
        return {"primaryKey": keys.primary, "secondaryKey": keys.secondary}

    def logs(self, name: str, *, tail: int = 5000, init: bool = False) -> str:
        self._record(name)
        try:
            # init: the start of the latest boot may lie far back (the runtime reads at most its last 8 MB)
            text = self._runtime.logs(name, tail=1_000_000 if init else tail)  # type: ignore[arg-type]
        except NotFoundError:
            return ""
        return init_output(text) if init else text

    # -- operations ----------------------------------------------------------------------------

    def _check_idle(self, name: str) -> None:
        """409 while an operation runs on ``name`` (call with the lock held)."""
        op = self._busy.get(name)
        if op is not None and not op.done:
            raise ConflictError(
                f"Operation {op.id} ({op.kind}) is still running on service {name}; "
                "wait for it to finish before starting another",
                hint=f"Follow it at /api/v1/operations/{op.id} (or wait_for_deployment()).",
            )
        if name in self._reserved:
            raise ConflictError(
                f"Another request is changing service {name} right now",
                hint="Wait for it to finish before starting another.",
            )

    def _reserve(self, name: str) -> None:
        with self._lock:
            self._check_idle(name)
            self._reserved.add(name)

    def _start(self, kind: str, name: str, work: Callable[[Operation], dict[str, Any] | None]) -> Operation:
        """Start ``work`` as an operation on ``name`` (the caller reserved the name)."""

        def run(op: Operation) -> dict[str, Any] | None:
            try:
                return work(op)
            finally:
                with self._lock:
                    if self._busy.get(name) is op:
                        del self._busy[name]

        with self._lock:
            self._reserved.discard(name)
            op = self._operations.start(kind, name, run, dedupe=False)
            self._busy[name] = op
            self._last_op[name] = op.id
        return op

    def _release(self, name: str) -> None:
        with self._lock:
            self._reserved.discard(name)

    def _remember(
        self, record: ServiceRecord, keys: ServiceKeys | None = None, *, drop_keys: bool = False
    ) -> None:
        with self._lock:
            self._records[record.name] = record
            if keys is not None:
                self._keys[record.name] = keys
            elif drop_keys:
                self._keys.pop(record.name, None)

    def _publish(self) -> None:
        if self.publisher is not None:
            self.publisher.publish_now()
        self.on_routes_changed()

    # -- deploy --------------------------------------------------------------------------------

    def _resolve_models(self, raw: tuple[str, ...]) -> tuple[str, ...]:
        ids = []
        for model_id in raw:
            name, version = parse_model_id(model_id)
            ids.append(self._store.get_model(name, version).id)  # ModelNotFoundError -> 404
        return tuple(dict.fromkeys(ids))

    def _check_target(self, config: DeploymentConfig) -> None:
        target = _target(config.to_payload())
        if not self.compute_exists(target):
            raise NotFoundError(
                f"ComputeTargetNotFound: compute target {target!r} is not attached to the workspace",
                hint="Attach it with 'modelhost compute attach', or leave compute_target_name out.",
            )

    def _check_environment(self, ref: EnvironmentRef | None) -> None:
        if ref is not None:
            self._store.get_environment(ref.name, ref.version)  # NotFoundError -> 404

    def _local_port(self, config: DeploymentConfig, previous: ServiceRecord | None) -> DeploymentConfig:
        """A Local service's port: the one given (checked free unless the service holds it), else a
        free one chosen now and kept (so its scoring URI stays put across restarts)."""
        if not isinstance(config, LocalDeploymentConfig):
            return config
        port = config.port
        held = previous.config.get("port") if previous is not None else None
        if port is None:
            port = held or _free_port(self._settings.host)
        elif port != held and not _port_free(self._settings.host, port):
            raise ConflictError(
                f"Port {port} on {self._settings.host} is in use; the local service cannot listen on it",
                hint="Choose another port in LocalWebservice.deploy_configuration(port=...), or None.",
            )
        return dataclasses.replace(config, port=port)

    def create(self, body: object) -> tuple[Operation, dict[str, Any]]:
        """Validate a deploy request, record the service and start its deploy operation."""
        req = parse_deploy_request(body)
        self._check_target(req.config)
        models = self._resolve_models(req.models)
        self._check_environment(req.environment)
        check_snapshot(self._artifacts, req.snapshot, req.entry_script)
        self._reserve(req.name)
        try:
            with self._lock:
                previous = self._records.get(req.name)
            if previous is not None and not req.overwrite:
                raise ConflictError(
                    f"A service named {req.name} already exists in the workspace",
                    hint="Choose another name, pass overwrite=True, or update the service.",
                )
            if previous is not None and _target(previous.config) != _target(req.config.to_payload()):
                raise ConflictError(
                    f"Service {req.name} runs on compute target {_target(previous.config)!r}; "
                    "overwrite cannot move it to another target",
                    hint="Delete the service first, then deploy it to the new target.",
                )
            config = self._local_port(req.config, previous)
            now = datetime.now(UTC)
            record = ServiceRecord(
                name=req.name,
                compute_type=config.compute_type,
                config=_config_payload(config),
                models=models,
                entry_script=req.entry_script,
                source_dir=req.source_dir,
                snapshot=req.snapshot,
                environment_name=req.environment.name if req.environment else None,
                environment_version=req.environment.version if req.environment else None,
                generation=previous.generation + 1 if previous is not None else 1,
                state="Transitioning",
                error=None,
                created_time=now,
                updated_time=now,
                created_by=_user(),
            )
            keys = None
            if config.compute_type != "Local":
                keys = ServiceKeys(req.primary_key or new_key(), req.secondary_key or new_key())
            stored = self._store.create_service(record, keys=keys, replace=previous is not None)
            self._remember(stored, keys, drop_keys=keys is None)
            self._publish()  # the router knows the service at once (503 "No ready replicas" until ready)
            recreate = previous is not None and (
                previous.compute_type != stored.compute_type or stored.compute_type == "Local"
            )
            op = self._start("deploy", req.name, lambda op: self._deploy(op, stored, recreate=recreate))
        except BaseException:
            self._release(req.name)
            raise
        return op, self.view(req.name)

    def _replicas(self, record: ServiceRecord, settings: RuntimeSettings) -> int:
        """How many replicas a new generation starts with: the fixed count, or with autoscaling
        what runs now within the bounds (a rolling update keeps the capacity the load asked for)."""
        if settings.autoscale is None:
            return settings.replicas
        status = self._status(record.name)
        current = status.desired_replicas if status is not None else settings.replicas
        return max(settings.replicas, min(current, settings.autoscale.max_replicas))

    def _deploy(self, op: Operation, record: ServiceRecord, *, recreate: bool) -> dict[str, Any]:
        """The seed's process for one generation; each step on the operation's log."""
        name, log = record.name, op.append
        settings = self.settings_of(record)
        log(f"Deploying service {name} ({record.compute_type}), generation {record.generation}")
        for note in config_from_payload(record.config).notices():
            log(f"note: {note}")
        try:
            self._deploy_steps(op, record, settings, recreate=recreate)
        except ModelhostError as exc:
            self._fail(record, exc)
            raise
        return self._succeed(op, record)

    def _deploy_steps(
        self, op: Operation, record: ServiceRecord, settings: RuntimeSettings, *, recreate: bool
    ) -> None:
        log = op.append
        assert record.snapshot is not None
        files = check_snapshot(self._artifacts, record.snapshot, record.entry_script)
        size = self._artifacts.size(record.snapshot)
        self._store.save_snapshot(
            SnapshotRecord(record.snapshot, size, files, record.entry_script, datetime.now(UTC))
        )
        log(
            f"snapshot: {record.snapshot[:12]} ({files} files, {size} bytes), "
            f"entry script {record.entry_script}"
        )
        python, env = self._deployer.environment(record, log)
        log(f"environment: ready, Python at {python}")
        if settings.collect_model_data:
            env = {**env, **collection_env(self._settings.home, True)}
            log(f"data collection: on, rows land under {data_root(self._settings.home) / record.name}")
        models = self._deployer.models(record, log)
        replicas = self._replicas(record, settings)
        deployment = self._deployer.deployment(
            record, settings, python=python, env=env, models=models, replicas=replicas
        )
        if recreate and self._status(record.name) is not None:
            log("stopping the previous replicas (a local service keeps its port: no rolling update)")
            self._runtime.delete(record.name)  # type: ignore[arg-type]
        res = settings.resources
        log(
            f"start: {replicas} replica(s) of generation {record.generation} "
            f"(cpu {res['cpu_cores']}, memory {res['memory_gb']} GB, gpu {res['gpu_cores']}; "
            f"{settings.max_concurrent_requests} concurrent request(s) per replica)"
        )
        self._runtime.deploy(deployment)
        log("health check: waiting for GET / to answer 200 on every replica")
        status = self._deployer.wait_healthy(
            record.name, record.generation, ProbeSettings(**settings.probe), log
        )
        log(f"health check: {len(status.ready)} replica(s) ready")

    def _succeed(self, op: Operation, record: ServiceRecord) -> dict[str, Any]:
        stored = self._store.update_service(record.name, state="Healthy", error=None)
        self._remember(stored)
        self._publish()
        uri = scoring_uri(stored, self._settings.host, self._settings.router_port)
        op.append(f"route traffic: {uri}" if stored.compute_type != "Local" else f"serving at {uri}")
        op.append(f"Service {record.name} is Healthy")
        return {
            "service": record.name,
            "state": "Healthy",
            "generation": stored.generation,
            "scoringUri": uri,
        }

    def _fail(self, record: ServiceRecord, exc: ModelhostError) -> None:
        state = "Unhealthy" if isinstance(exc, DeploymentFailed) and exc.timed_out else "Failed"
        try:
            stored = self._store.update_service(record.name, state=state, error=exc.to_payload()["error"])
        except NotFoundError:
            return
        self._remember(stored)
        self._publish()

    # -- update --------------------------------------------------------------------------------

    def _read_update(self, body: object, json_patch: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(changes, code)``: v1 ``update()`` kwargs, and the code keys (models, entry_script, ...)."""
        if json_patch:
            changes = changes_from_json_patch(body)
            request = changes.pop("environment_image_request", None)
            code = dict(request) if isinstance(request, dict) else {}
            return changes, code
        if not isinstance(body, dict):
            raise ValidationError("The update body must be a JSON object or a JSON patch list")
        raw = body.get("changes") or {}
        if not isinstance(raw, dict):
            raise ValidationError(f"'changes' must be an object of update() arguments, got {raw!r}")
        changes = dict(raw)
        code = {k: body[k] for k in ("models", *_CODE_KEYS) if k in body}
        if isinstance(changes.get("models"), list):
            code.setdefault("models", changes.pop("models"))
        return changes, code

    def update(
        self, name: str, body: object, *, json_patch: bool = False
    ) -> tuple[Operation, dict[str, Any]]:
        record = self._record(name)
        changes, code = self._read_update(body, json_patch)
        for key in CALLER_KEYS:
            changes.pop(key, None)
        marker = dict(changes)
        if "models" in code:
            marker["models"] = code["models"]
        if any(k in code for k in _CODE_KEYS):
            marker["inference_config"] = True
        current = config_from_payload(record.config).resolved()
        new_config = apply_update(current, marker)  # one ValidationError listing every violation
        new_record = self._updated_record(record, new_config, code)
        self._reserve(name)
        try:
            if "port" in changes:
                new_config = self._local_port(new_config, record)
                new_record = dataclasses.replace(new_record, config=_config_payload(new_config))
            plan = plan_update(record, self.settings_of(record), new_record, new_config.runtime_settings())
            status = self._status(name)
            if status is None or status.state == "Failed" or record.state == "Failed":
                plan = "roll"  # nothing (healthy) to keep: deploy the new generation
            if plan == "roll":
                new_record = dataclasses.replace(new_record, generation=record.generation + 1)
            stored = self._store.update_service(
                name,
                models=new_record.models,
                config=new_record.config,
                entry_script=new_record.entry_script,
                source_dir=new_record.source_dir,
                snapshot=new_record.snapshot,
                environment_name=new_record.environment_name,
                environment_version=new_record.environment_version,
                generation=new_record.generation,
                state="Transitioning",
                error=None,
            )
            self._remember(stored)
            op = self._start("update", name, lambda op: self._update(op, stored, plan))
        except BaseException:
            self._release(name)
            raise
        return op, self.view(name)

    def _updated_record(
        self, record: ServiceRecord, config: DeploymentConfig, code: Mapping[str, Any]
    ) -> ServiceRecord:
        """The record with the new configuration and code, every new reference checked (404/400)."""
        problems = []
        models = record.models
        if "models" in code:
            raw = code["models"]
            if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
                problems.append(f"{PREFIX}models must be a list of model ids 'name:version', got {raw!r}.")
            else:
                models = self._resolve_models(tuple(raw))
        entry = code.get("entry_script", record.entry_script)
        snapshot = code.get("snapshot", record.snapshot)
        source = code.get("source_directory", record.source_dir)
        for key, value in (("entry_script", entry), ("snapshot", snapshot), ("source_directory", source)):
            if not isinstance(value, str):
                problems.append(f"{PREFIX}{key} must be a string, got {value!r}.")
        env_name, env_version = record.environment_name, record.environment_version
        if "environment" in code:
            env = code["environment"]
            if env is None:
                env_name = env_version = None
            elif (
                isinstance(env, dict)
                and isinstance(env.get("name"), str)
                and isinstance(env.get("version"), int)
            ):
                env_name, env_version = env["name"], env["version"]
                self._check_environment(EnvironmentRef(env["name"], env["version"]))
            else:
                problems.append(
                    f"{PREFIX}environment must be null or {{'name': str, 'version': int}}, got {env!r}."
                )
        if problems:
            raise ValidationError("\n".join(problems), details=problems)
        if "entry_script" in code or "snapshot" in code:
            check_snapshot(self._artifacts, snapshot, entry)
        return dataclasses.replace(
            record,
            config=_config_payload(config),
            models=models,
            entry_script=entry,
            snapshot=snapshot,
            source_dir=source,
            environment_name=env_name,
            environment_version=env_version,
        )

    def _update(self, op: Operation, record: ServiceRecord, plan: UpdatePlan) -> dict[str, Any]:
        name, log = record.name, op.append
        settings = self.settings_of(record)
        if plan == "roll":
            log(
                f"Updating service {name}: rolling to generation {record.generation} "
                "(new replicas start; the old ones stop once the new ones are ready)"
            )
            recreate = record.compute_type == "Local"
            try:
                self._deploy_steps(op, record, settings, recreate=recreate)
            except ModelhostError as exc:
                self._fail(record, exc)
                raise
            return self._succeed(op, record)
        try:
            if plan == "scale":
                replicas = self._replicas(record, settings)
                log(f"Updating service {name}: scaling to {replicas} replica(s); the others stay as they are")
                self._runtime.scale(name, replicas)  # type: ignore[arg-type]
                self._deployer.wait_healthy(name, record.generation, ProbeSettings(**settings.probe), log)
            else:
                log(
                    f"Updating service {name}: configuration only (routing, auth, limits); replicas untouched"
                )
        except ModelhostError as exc:
            self._fail(record, exc)
            raise
        return self._succeed(op, record)

    def reload(self, name: str, body: object) -> tuple[Operation, dict[str, Any]]:
        """v1 ``LocalWebservice.reload()``: restart the replica with a fresh copy of the source."""
        record = self._record(name)
        if record.compute_type != "Local":
            raise ValidationError(
                f"Service {name} is not a LocalWebservice: reload() is for local services",
                hint="Use update() to roll out new code.",
            )
        code = {k: v for k, v in (body or {}).items() if k in _CODE_KEYS} if isinstance(body, dict) else {}
        new_record = self._updated_record(record, config_from_payload(record.config), code)
        self._reserve(name)
        try:
            stored = self._store.update_service(
                name,
                entry_script=new_record.entry_script,
                snapshot=new_record.snapshot,
                source_dir=new_record.source_dir,
                generation=record.generation + 1,
                state="Transitioning",
                error=None,
            )
            self._remember(stored)
            op = self._start("reload", name, lambda op: self._update(op, stored, "roll"))
        except BaseException:
            self._release(name)
            raise
        return op, self.view(name)

    # -- delete, keys --------------------------------------------------------------------------

    def delete(self, name: str) -> tuple[Operation, dict[str, Any]]:
        self._record(name)
        self._reserve(name)
        try:
            op = self._start("delete", name, lambda op: self._delete(op, name))
        except BaseException:
            self._release(name)
            raise
        return op, self.view(name)

    def _delete(self, op: Operation, name: str) -> dict[str, Any]:
        with self._lock:
            self._deleting.add(name)
        try:
            self._publish()
            op.append(f"Deleting service {name}: routes removed")
            if self._status(name) is not None:
                op.append("stopping its replicas")
                self._runtime.delete(name)  # type: ignore[arg-type]
            self._store.delete_service(name)
            with self._lock:
                self._records.pop(name, None)
                self._keys.pop(name, None)
                self._runtime_settings.pop(name, None)
            op.append(f"Service {name} deleted; its models may be deleted now")
        finally:
            with self._lock:
                self._deleting.discard(name)
            self._publish()
        return {"service": name, "deleted": True}

    def regenerate_keys(self, name: str, body: object) -> tuple[Operation, dict[str, Any]]:
        record = self._record(name)
        if record.compute_type == "Local":
            raise ValidationError(
                f"Service {name} is a LocalWebservice: keys are not used by a LocalWebservice"
            )
        key_type = body.get("keyType") if isinstance(body, dict) else None
        value = body.get("keyValue") if isinstance(body, dict) else None
        if not isinstance(key_type, str) or key_type.lower() not in ("primary", "secondary"):
            raise ValidationError(
                f"Invalid keyType {key_type!r}: expected 'Primary' or 'Secondary'",
                hint="regen_key(key='Primary') or regen_key(key='Secondary').",
            )
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValidationError("keyValue must be a non-empty string or null (a generated key)")
        which = key_type.lower()
        self._reserve(name)
        try:
            op = self._start("regenerate-keys", name, lambda op: self._regenerate(op, name, which, value))
        except BaseException:
            self._release(name)
            raise
        return op, self.view(name)

    def _regenerate(self, op: Operation, name: str, which: str, value: str | None) -> dict[str, Any]:
        keys = self._store.get_service_keys(name) or ServiceKeys(new_key(), new_key())
        fresh = value or new_key()
        keys = ServiceKeys(fresh, keys.secondary) if which == "primary" else ServiceKeys(keys.primary, fresh)
        self._store.set_service_keys(name, keys)
        with self._lock:
            self._keys[name] = keys
        op.append(f"{which} key of {name} {'set' if value else 'regenerated'}")
        self._publish()
        op.append("routes republished: the router accepts the new key and refuses the old one")
        return {"service": name, "keyType": which.capitalize()}

    # -- start-up ------------------------------------------------------------------------------

    def restore(self) -> list[Operation]:
        """After a start: redeploy the services the store records but the runtime lacks (their
        replicas and runtime state are gone); services that failed stay failed."""
        started = []
        with self._lock:
            records = list(self._records.values())
        for record in records:
            if record.state == "Failed" or self._status(record.name) is not None:
                continue
            self._reserve(record.name)
            try:
                work = functools.partial(self._deploy, record=record, recreate=False)
                started.append(self._start("deploy", record.name, work))
            except BaseException:
                self._release(record.name)
                raise
        return started

    def has_services(self) -> bool:
        with self._lock:
            return bool(self._records)
