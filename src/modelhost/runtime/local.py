"""The local runtime: every replica is a scoring-server process on 127.0.0.1, supervised by a thread.

Workspace layout (``home`` is ``Settings.home``)::

    <home>/runtime/local/<service>.json          state: deployments, wanted count, replicas (pid, port, ...)
    <home>/runtime/local.lock                    held by the one runtime instance supervising this home
    <home>/replicas/<service>/<replica-id>/      the replica's app root (removed when it stops)
    <home>/logs/replicas/<service>/<replica-id>.log   its stdout and stderr, across restarts (kept)
    <home>/services/<service>/outputs/<replica-id>/   what it wrote to ./outputs (kept)

The supervisor thread ticks every ``tick_s``: it notices exits, restarts crashed replicas after the
backoff :func:`~modelhost.runtime.supervision.decide_restart` chooses, probes ``GET /`` (readiness
while starting, liveness per the probe settings once ready), and converges each service to its
wanted replica count. Replicas run in their own sessions and outlive this process; :meth:`adopt`
picks them up again.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.client
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from modelhost.build.snapshot import extract_snapshot
from modelhost.errors import ConflictError, ModelhostError, NotFoundError, ValidationError
from modelhost.runtime import processes, state
from modelhost.runtime.base import ReplicaState, ReplicaStatus, ServiceDeployment, ServiceStatus
from modelhost.runtime.gpus import Gpu, discover_gpus
from modelhost.runtime.inherited_env import inherited_env
from modelhost.runtime.layout import (
    BlobSource,
    keep_outputs,
    layout_for,
    prepare_replica,
    remove_folder,
    replica_env,
)
from modelhost.runtime.replica_user import check_reachable, hand_over, protect_home, resolve
from modelhost.runtime.resources import Machine, ProcessLimits, check_fits, choose_gpus, plan_limits
from modelhost.runtime.supervision import (
    Exit,
    Restart,
    RestartPolicy,
    crash_message,
    decide_restart,
    service_state,
    start_deadline_s,
)
from modelhost.types import ReplicaId, ServiceName

__all__ = ["HOST", "LocalRuntime", "detect_machine"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SCORING_SERVER = ("-m", "modelhost.scoring")  # what the replica's interpreter runs, before its arguments
READINESS_INTERVAL_S = 0.2
_CRASH_TAIL_LINES = 30
_HISTORY_KEPT = 20


def detect_machine(gpus: Callable[[], tuple[Gpu, ...]] = discover_gpus) -> Machine:
    """The CPUs this process may run on, the machine's RAM and its GPUs."""
    cpus = (
        sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else list(range(os.cpu_count() or 1))
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return Machine(cpus=tuple(cpus), memory_bytes=memory, gpus=gpus())


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "the replica process ended"
    if code == 3:
        return "init() failed: the scoring server exited with code 3"
    if code < 0:
        try:
            return f"the replica was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the replica was killed by signal {-code}"
    return f"the replica exited with code {code}"


def _probe(port: int, timeout_s: float) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _tail_lines(path: Path, lines: int, offset: int = 0, max_bytes: int = 8 << 20) -> list[str]:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(offset, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:] if lines > 0 else []


@dataclass
class _Replica:
    id: ReplicaId
    generation: int
    folder: Path
    log: Path
    limits: ProcessLimits
    state: ReplicaState = "starting"
    pid: int | None = None
    port: int = 0
    argv: list[str] = field(default_factory=list)
    started_at: float = 0.0
    log_offset: int = 0
    restarts: int = 0
    history: list[Exit] = field(default_factory=list)
    last_error: str | None = None
    ready_this_run: bool = False
    ever_ready: bool = False
    restart_at: float = 0.0
    next_probe_at: float = 0.0
    probe_failures: int = 0
    kill_at: float | None = None
    term_at: float | None = None
    kill_reason: str | None = None
    probing: bool = False


@dataclass
class _Service:
    name: ServiceName
    deployments: dict[int, ServiceDeployment]
    generation: int
    desired: int
    replicas: dict[ReplicaId, _Replica] = field(default_factory=dict)
    error: str | None = None

    @property
    def current(self) -> ServiceDeployment:
        return self.deployments[self.generation]

    def of_generation(self, generation: int) -> list[_Replica]:
        return [r for r in self.replicas.values() if r.generation == generation and r.state != "stopping"]


class LocalRuntime:
    """Replicas as supervised processes on this machine (see the module docstring).

    ``artifacts`` provides model blobs by sha256 (default: the workspace's ``<home>/blobs`` store);
    ``gpus`` discovers GPUs (or ``machine`` replaces detection entirely, for tests);
    ``policy`` sets the restart backoff; ``stop_grace_s`` is the SIGTERM-to-SIGKILL grace of
    scale-down and delete; ``server`` is what the replica's interpreter runs before the scoring
    server's arguments (default ``-m modelhost.scoring``); ``replica_user`` (``MODELHOST_REPLICA_USER``,
    a name or uid) is who replicas run as when this process is root (docs/security.md). Only one
    instance may supervise a home at a time (ConflictError).
    """

    def __init__(
        self,
        home: Path,
        *,
        artifacts: BlobSource | None = None,
        replicas_dir: Path | None = None,
        policy: RestartPolicy | None = None,
        gpus: Callable[[], tuple[Gpu, ...]] = discover_gpus,
        machine: Machine | None = None,
        environ: Mapping[str, str] | None = None,
        stop_grace_s: float = 10.0,
        drain_s: float = 0.0,
        max_starting: int | None = None,
        tick_s: float = 0.1,
        clock: Callable[[], float] = time.time,
        extract: Callable[[Path, Path], None] = extract_snapshot,
        server: Sequence[str] = SCORING_SERVER,
        replica_user: str | None = None,
    ) -> None:
        self.home = Path(home)
        self._user = resolve(replica_user, os.geteuid())
        # a root replica ignores the blobs' 0444 mode: it gets copies, never links into the store
        self._private_models = self._user is None and os.geteuid() == 0
        self._state_dir = self.home / "runtime" / "local"
        self._replicas_dir = replicas_dir or self.home / "replicas"
        self._logs_dir = self.home / "logs" / "replicas"
        self._outputs_root = self.home / "services"
        if artifacts is None:
            from modelhost.store.artifacts import ArtifactStore

            artifacts = ArtifactStore(self.home / "blobs")
        self._artifacts = artifacts
        self._policy = policy or RestartPolicy()
        self._machine = machine or detect_machine(gpus)
        environ = os.environ if environ is None else environ
        self._base_env = inherited_env(environ, same_user=self._user is None)
        self._grace = stop_grace_s
        self._drain_s = drain_s
        self._max_starting = max_starting or max(1, len(self._machine.cpus))
        self._tick_s = tick_s
        self._clock = clock
        self._extract = extract
        self._server = list(server)
        self._lock = threading.RLock()
        self._services: dict[ServiceName, _Service] = {}
        self._dirty: set[ServiceName] = set()
        self._lockfile = self._acquire_home()
        protect_home(self.home, share_replicas=self._user is not None)
        if self._private_models:
            log.warning(
                "replicas run as root, like this control plane: their entry scripts can read every "
                "secret of the workspace; set MODELHOST_REPLICA_USER=nobody (or another unprivileged "
                "user) to run them without privileges (docs/security.md)"
            )
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="modelhost-probe")
        self._thread = threading.Thread(target=self._run, name="modelhost-supervisor", daemon=True)
        self._thread.start()

    # -- the Runtime protocol ------------------------------------------------------------------

    def deploy(self, deployment: ServiceDeployment) -> ServiceStatus:
        self._validate(deployment)
        with self._lock:
            svc = self._services.get(deployment.service)
            if svc is not None and (same := self._same_generation(svc, deployment)) is not None:
                return same
            previous = None if svc is None else (svc.generation, svc.desired, svc.error)
            svc = self._admit(svc, deployment)
            try:
                self._reconcile(svc, self._clock(), raise_errors=True)
            except ModelhostError:
                self._roll_back(svc, deployment.generation, previous)
                raise
            self._save(svc)
            return self._status(svc)

    def scale(self, service: ServiceName, replicas: int) -> ServiceStatus:
        if replicas < 0:
            raise ValidationError(f"replicas={replicas} is not valid", hint="Ask for 0 or more replicas.")
        with self._lock:
            svc = self._get(service)
            d = svc.current
            extra = max(0, replicas - len(svc.of_generation(svc.generation)))
            choose_gpus(d.resources.gpu_cores, self._machine.gpus, self._gpus_in_use(), extra)
            svc.desired = replicas
            self._reconcile(svc, self._clock(), raise_errors=True)
            self._save(svc)
            return self._status(svc)

    def stop_replica(self, replica: ReplicaId, grace_s: float = 10.0) -> ServiceStatus:
        with self._lock:
            for svc in self._services.values():
                r = svc.replicas.get(replica)
                if r is None:
                    continue
                if r.state != "stopping" and r.generation == svc.generation:
                    svc.desired = max(0, svc.desired - 1)
                self._begin_stop(r, self._clock(), grace_s)
                self._save(svc)
                return self._status(svc)
        raise NotFoundError(f"replica {replica!r} not found", hint="List replicas with the service's status.")

    def status(self, service: ServiceName) -> ServiceStatus:
        with self._lock:
            return self._status(self._get(service))

    def services(self) -> list[ServiceStatus]:
        with self._lock:
            return [self._status(self._services[name]) for name in sorted(self._services)]

    def logs(self, service: ServiceName, *, replica: ReplicaId | None = None, tail: int = 5000) -> str:
        with self._lock:
            svc = self._get(service)
            ids = sorted(svc.replicas, key=lambda i: svc.replicas[i].started_at)
        if replica is not None:
            path = self._log_path(service, replica)
            if replica not in ids and not path.is_file():
                raise NotFoundError(
                    f"replica {replica!r} of service {service!r} not found",
                    hint="List replicas with the service's status.",
                )
            return "\n".join(_tail_lines(path, tail))
        parts = [
            f"==> {rid} <==\n" + "\n".join(_tail_lines(self._log_path(service, rid), tail)) for rid in ids
        ]
        return "\n".join(parts)

    def delete(self, service: ServiceName) -> None:
        with self._lock:
            svc = self._get(service)
            del self._services[service]
            self._dirty.discard(service)
            replicas = list(svc.replicas.values())
            for r in replicas:
                if r.pid is not None:
                    processes.signal_group(r.pid, signal.SIGTERM)
            (self._state_dir / f"{service}.json").unlink(missing_ok=True)
        self._wait_gone([r.pid for r in replicas if r.pid is not None], self._grace)
        for r in replicas:
            self._discard_folder(service, r)
        with contextlib.suppress(OSError):
            (self._replicas_dir / service).rmdir()

    def adopt(self) -> list[ServiceStatus]:
        with self._lock:
            now = self._clock()
            for path in sorted(self._state_dir.glob("*.json")):
                name = ServiceName(path.stem)
                if name in self._services:
                    continue
                try:
                    record = state.load(path)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.error("cannot adopt service %s: unreadable state file %s: %s", name, path, exc)
                    continue
                svc = _Service(
                    name=name,
                    deployments=record.deployments,
                    generation=record.generation,
                    desired=record.desired,
                    error=record.error,
                )
                for rec in record.replicas:
                    r = self._adopt_replica(rec, now)
                    svc.replicas[r.id] = r
                self._services[name] = svc
                self._dirty.add(name)
            return [self._status(self._services[n]) for n in sorted(self._services)]

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=30)
        self._pool.shutdown(wait=True)
        with self._lock:
            for svc in self._services.values():
                self._save(svc)
        self._lockfile.close()

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- admission -----------------------------------------------------------------------------

    def _acquire_home(self) -> IO[str]:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        lockfile = open(self.home / "runtime" / "local.lock", "a")  # noqa: SIM115 - held for the lifetime
        try:
            fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lockfile.close()
            raise ConflictError(
                f"another local runtime already supervises the replicas of {self.home}",
                hint="Stop the other control plane first (one per workspace).",
            ) from exc
        return lockfile

    def _validate(self, d: ServiceDeployment) -> None:
        if d.replicas < 0 or d.generation < 0:
            raise ValidationError(
                f"replicas={d.replicas}, generation={d.generation} are not valid", hint="Both must be >= 0."
            )
        if not Path(d.python).is_file():
            raise ValidationError(
                f"python interpreter {d.python} of service {d.service} does not exist",
                hint="Build the service's environment again.",
            )
        if d.snapshot is not None and not Path(d.snapshot).is_file():
            raise ValidationError(
                f"snapshot {d.snapshot} of service {d.service} does not exist",
                hint="Upload the source directory again.",
            )
        check_fits(d.resources, self._machine)
        if self._user is not None:
            self._replicas_dir.mkdir(parents=True, exist_ok=True)
            check_reachable(self._user, Path(d.python), 0o1, "the interpreter")
            check_reachable(self._user, self._replicas_dir, 0o1, "the replicas folder")

    def _same_generation(self, svc: _Service, d: ServiceDeployment) -> ServiceStatus | None:
        if d.generation > svc.generation:
            return None
        if d.generation == svc.generation and svc.current == d:
            return self._status(svc)
        raise ConflictError(
            f"service {d.service} already runs generation {svc.generation}; "
            f"cannot deploy generation {d.generation}"
            + (" with a different spec" if d.generation == svc.generation else ""),
            hint="Deploy with a newer generation.",
        )

    def _admit(self, svc: _Service | None, d: ServiceDeployment) -> _Service:
        """Record ``d`` as the service's newest generation, after checking its GPUs fit. When they
        only fit without the old generation's replicas, those are stopped first (recreate)."""
        held_by_old = set() if svc is None else {g for r in svc.replicas.values() for g in r.limits.gpus}
        in_use = self._gpus_in_use()
        try:
            choose_gpus(d.resources.gpu_cores, self._machine.gpus, in_use, d.replicas)
            recreate = False
        except ConflictError:
            choose_gpus(d.resources.gpu_cores, self._machine.gpus, in_use - held_by_old, d.replicas)
            recreate = True
        if svc is None:
            svc = _Service(name=d.service, deployments={}, generation=d.generation, desired=d.replicas)
            self._services[d.service] = svc
        svc.deployments[d.generation] = d
        svc.generation, svc.desired, svc.error = d.generation, d.replicas, None
        if recreate:
            for r in list(svc.replicas.values()):
                self._begin_stop(r, self._clock(), self._grace)
        return svc

    def _roll_back(
        self, svc: _Service, generation: int, previous: tuple[int, int, str | None] | None
    ) -> None:
        doomed = [r for r in svc.replicas.values() if r.generation == generation]
        for r in doomed:
            if r.pid is not None:
                processes.signal_group(r.pid, signal.SIGKILL)
        self._wait_gone([r.pid for r in doomed if r.pid is not None], 0.0)
        for r in doomed:
            self._discard_folder(svc.name, r)
            del svc.replicas[r.id]
        del svc.deployments[generation]
        if previous is None:
            del self._services[svc.name]
        else:
            svc.generation, svc.desired, svc.error = previous

    # -- supervision ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            try:
                self._tick()
            except Exception:  # the supervisor must outlive any one bad replica
                log.exception("local runtime supervisor tick failed")

    def _tick(self) -> None:
        with self._lock:
            now = self._clock()
            for svc in list(self._services.values()):
                for r in list(svc.replicas.values()):
                    self._step(svc, r, now)
                self._reconcile(svc, now, raise_errors=False)
            for name, r, port, timeout, pid in self._due_probes(now):
                # probes run on the pool and report back: a replica slow to answer delays no other
                future = self._pool.submit(_probe, port, timeout)
                future.add_done_callback(functools.partial(self._on_probe, name, r, pid))
            for name in list(self._dirty):
                if name in self._services:
                    self._save(self._services[name])
            self._dirty.clear()

    def _on_probe(self, name: ServiceName, r: _Replica, pid: int, future: Future[bool]) -> None:
        ok = not future.cancelled() and future.exception() is None and future.result()
        with self._lock:
            r.probing = False
            owner = self._services.get(name)
            if owner is not None and r.pid == pid and owner.replicas.get(r.id) is r:
                self._apply_probe(owner, r, ok, self._clock())

    def _due_probes(self, now: float) -> list[tuple[ServiceName, _Replica, int, float, int]]:
        due = []
        for svc in self._services.values():
            for r in svc.replicas.values():
                if (
                    r.state in ("starting", "ready")
                    and r.pid is not None
                    and not r.probing
                    and now >= r.next_probe_at
                ):
                    probe = svc.deployments[r.generation].probe
                    timeout = (
                        min(1.0, probe.timeout_seconds) if r.state == "starting" else probe.timeout_seconds
                    )
                    r.probing = True
                    due.append((svc.name, r, r.port, float(timeout), r.pid))
        return due

    def _step(self, svc: _Service, r: _Replica, now: float) -> None:
        if r.pid is not None:
            exited, code = processes.exit_status(r.pid)
            if exited:
                r.pid = None
                if r.state == "stopping":
                    self._finalize(svc, r)
                else:
                    self._on_exit(svc, r, code, now)
                return
        if r.state == "stopping":
            if r.pid is None:
                self._finalize(svc, r)
            elif r.term_at is not None and now >= r.term_at:
                processes.signal_group(r.pid, signal.SIGTERM)
                r.term_at = None
            elif r.kill_at is not None and now >= r.kill_at:
                processes.signal_group(r.pid, signal.SIGKILL)
                r.kill_at = None
        elif r.state == "starting" and r.kill_reason is None and r.pid is not None:
            deadline = start_deadline_s(svc.deployments[r.generation].probe)
            if now >= r.started_at + deadline:
                r.kill_reason = f"the replica did not answer GET / with 200 within {deadline:g} s"
                processes.signal_group(r.pid, signal.SIGKILL)
        elif r.state == "crashed" and now >= r.restart_at:
            self._launch(svc, r, now)

    def _on_exit(self, svc: _Service, r: _Replica, code: int | None, now: float) -> None:
        reason = r.kill_reason or _describe_exit(code)
        r.kill_reason = None
        r.history = [*r.history, Exit(now, now - r.started_at, r.ready_this_run, code)][-_HISTORY_KEPT:]
        decision = decide_restart(r.history, now, self._policy)
        self._dirty.add(svc.name)
        if isinstance(decision, Restart):
            r.state, r.restart_at = "crashed", decision.at
            r.last_error = f"{reason}; restarting in {decision.delay_s:g} s"
            log.warning("replica %s of %s: %s", r.id, svc.name, r.last_error)
            return
        lines = _tail_lines(r.log, _CRASH_TAIL_LINES, offset=r.log_offset)
        r.state = "failed"
        r.last_error = crash_message(svc.name, f"{reason}; {decision.reason}", lines, str(r.log))
        if r.generation == svc.generation:
            svc.error = r.last_error
        log.error("replica %s of %s failed: %s", r.id, svc.name, decision.reason)
        self._discard_folder(svc.name, r)

    def _apply_probe(self, svc: _Service, r: _Replica, ok: bool, now: float) -> None:
        probe = svc.deployments[r.generation].probe
        if r.state == "starting":
            if ok:
                r.state, r.ready_this_run, r.ever_ready, r.last_error = "ready", True, True, None
                r.next_probe_at, r.probe_failures = now + probe.period_seconds, 0
                self._dirty.add(svc.name)
            else:
                r.next_probe_at = now + READINESS_INTERVAL_S
            return
        if r.state != "ready":
            return
        r.next_probe_at = now + probe.period_seconds
        r.probe_failures = 0 if ok else r.probe_failures + 1
        if r.probe_failures >= probe.failure_threshold and r.pid is not None and r.kill_reason is None:
            r.kill_reason = f"liveness probe GET / failed {r.probe_failures} times in a row"
            processes.signal_group(r.pid, signal.SIGKILL)

    def _reconcile(self, svc: _Service, now: float, *, raise_errors: bool) -> None:
        """Converge the current generation to ``desired`` replicas; retire older generations once
        the current one is fully ready."""
        if svc.error is not None:
            return
        current = svc.of_generation(svc.generation)
        # Starting a replica is CPU-bound (imports, init()); starting more at once than there are
        # CPUs delays them all, so the rest wait for a later tick and the first ones serve sooner.
        starting = sum(1 for r in self._all_replicas() if r.state == "starting")
        for _ in range(min(svc.desired - len(current), max(0, self._max_starting - starting))):
            try:
                self._create(svc, now)
            except ConflictError:
                # deploy and scale checked capacity up front: the GPUs are still held by replicas
                # that are stopping (a recreate), so try again on the next tick
                break
            except ModelhostError as exc:
                if raise_errors:
                    raise
                svc.error = exc.one_line()
                break
        if len(current) > svc.desired:
            for r in sorted(current, key=lambda r: (r.state == "ready", -r.started_at))[
                : len(current) - svc.desired
            ]:
                self._begin_stop(r, now, self._grace, drain_s=self._drain_s)
        ready = sum(1 for r in svc.of_generation(svc.generation) if r.state == "ready")
        if ready >= svc.desired:
            for r in svc.replicas.values():
                if r.generation < svc.generation and r.state != "stopping":
                    self._begin_stop(r, now, self._grace, drain_s=self._drain_s)

    # -- replicas ------------------------------------------------------------------------------

    def _create(self, svc: _Service, now: float) -> None:
        d = svc.current
        rid = ReplicaId(f"{svc.name}-{d.generation}-{secrets.token_hex(3)}")
        limits = plan_limits(d.resources, self._machine, self._cpu_usage(), self._gpus_in_use())
        folder = self._replicas_dir / svc.name / rid
        self._prepare(d, folder)
        r = _Replica(
            id=rid, generation=d.generation, folder=folder, log=self._log_path(svc.name, rid), limits=limits
        )
        svc.replicas[rid] = r
        self._dirty.add(svc.name)
        self._launch(svc, r, now)

    def _launch(self, svc: _Service, r: _Replica, now: float) -> None:
        d = svc.deployments[r.generation]
        try:
            if not r.folder.is_dir():
                self._prepare(d, r.folder)
            layout = layout_for(d, r.folder)
            # a fixed port (LocalWebservice) or a fresh free one at every start
            r.port = d.port or processes.free_port(HOST, avoid=self._ports_in_use())
            r.argv = [
                str(d.python),
                *self._server,
                "--entry_script",
                str(layout.entry_script),
                "--model_dir",
                str(layout.model_dir),
                "--port",
                str(r.port),
                "--host",
                HOST,
            ]
            env = {**replica_env(d, layout, r.id, self._user_env(r.folder)), **r.limits.env()}
            r.log_offset = r.log.stat().st_size if r.log.exists() else 0
            r.pid = processes.spawn(
                r.argv, env=env, cwd=r.folder, log=r.log, limits=r.limits, user=self._user
            )
        except (OSError, ModelhostError) as exc:
            r.pid, r.started_at, r.ready_this_run = None, now, False
            r.kill_reason = f"the replica could not be started: {exc}"
            self._on_exit(svc, r, None, now)
            return
        if r.history:
            r.restarts += 1
        r.state, r.started_at, r.ready_this_run = "starting", now, False
        r.next_probe_at, r.probe_failures, r.kill_reason = now, 0, None
        self._dirty.add(svc.name)

    def _prepare(self, d: ServiceDeployment, folder: Path) -> None:
        prepare_replica(d, folder, self._artifacts, self._extract, private_models=self._private_models)
        protect_home(self.home, share_replicas=self._user is not None)  # files created since
        if self._user is not None:
            try:
                os.chmod(folder.parent, 0o711)
                hand_over(folder, self._user)
            except BaseException:
                remove_folder(folder)
                raise

    def _user_env(self, folder: Path) -> dict[str, str]:
        """The inherited variables; a replica user gets its own name and its folder as HOME."""
        if self._user is None:
            return self._base_env
        name = self._user.name
        return {**self._base_env, "HOME": str(folder), "USER": name, "LOGNAME": name}

    def _begin_stop(self, r: _Replica, now: float, grace_s: float, drain_s: float = 0.0) -> None:
        if r.state == "stopping":
            return
        r.state = "stopping"
        if r.pid is None:
            return
        if drain_s > 0:
            # Added by control-services: a replica retired by a rolling update or scale-down is
            # `stopping` (out of the routing table) for drain_s before its SIGTERM, so the router
            # stops sending to it before it closes its keep-alive connections (Kubernetes does the
            # same: endpoints removed, then preStop).
            r.term_at, r.kill_at = now + drain_s, now + drain_s + grace_s
        else:
            processes.signal_group(r.pid, signal.SIGTERM)
            r.kill_at = now + grace_s

    def _finalize(self, svc: _Service, r: _Replica) -> None:
        self._discard_folder(svc.name, r)
        svc.replicas.pop(r.id, None)
        live = {x.generation for x in svc.replicas.values()} | {svc.generation}
        for generation in [g for g in svc.deployments if g not in live]:
            del svc.deployments[generation]
        self._dirty.add(svc.name)

    def _discard_folder(self, service: str, r: _Replica) -> None:
        """Keep what the replica wrote to ./outputs, then remove its temp folder."""
        try:
            keep_outputs(r.folder, self._outputs_root / service / "outputs" / r.id)
        except OSError as exc:
            log.error("could not keep the outputs of replica %s: %s", r.id, exc)
        remove_folder(r.folder)

    def _adopt_replica(self, rec: state.ReplicaRecord, now: float) -> _Replica:
        limits = ProcessLimits(
            cpus=tuple(rec.cpus), nice=rec.nice, memory_bytes=rec.memory_bytes, gpus=tuple(rec.gpus)
        )
        r = _Replica(
            id=ReplicaId(rec.id),
            generation=rec.generation,
            folder=Path(rec.folder),
            log=Path(rec.log),
            limits=limits,
            port=rec.port,
            argv=list(rec.argv),
            started_at=rec.started_at,
            restarts=rec.restarts,
            ever_ready=rec.ever_ready,
            last_error=rec.last_error,
        )
        pid = rec.pid
        alive = pid is not None and processes.is_running(pid) and processes.matches(pid, rec.argv)
        if rec.state == "failed":
            r.state = "failed"
        elif alive and pid is not None and rec.state == "stopping":
            r.state, r.pid, r.kill_at = "stopping", pid, now + self._grace
            processes.signal_group(pid, signal.SIGTERM)
        elif alive:
            r.pid = pid
            ready = _probe(rec.port, 1.0)
            r.state, r.ready_this_run, r.next_probe_at = ("ready" if ready else "starting"), ready, now
            r.ever_ready = r.ever_ready or ready
        elif rec.state == "stopping":
            r.state = "stopping"
        else:
            r.history = [Exit(now, max(0.0, now - rec.started_at), rec.state == "ready", None)]
            r.state, r.restart_at = "crashed", now
            r.last_error = "the replica was not running when the control plane adopted it; restarting"
        return r

    # -- bookkeeping ---------------------------------------------------------------------------

    def _get(self, service: ServiceName) -> _Service:
        svc = self._services.get(service)
        if svc is None:
            raise NotFoundError(
                f"service {service!r} not found", hint="List services with 'modelhost service list'."
            )
        return svc

    def _log_path(self, service: str, replica: str) -> Path:
        return self._logs_dir / service / f"{replica}.log"

    def _all_replicas(self) -> Iterable[_Replica]:
        for svc in self._services.values():
            yield from svc.replicas.values()

    def _gpus_in_use(self) -> set[int]:
        return {g for r in self._all_replicas() if r.state != "failed" for g in r.limits.gpus}

    def _cpu_usage(self) -> dict[int, int]:
        usage: dict[int, int] = {}
        for r in self._all_replicas():
            if r.state != "failed":
                for c in r.limits.cpus:
                    usage[c] = usage.get(c, 0) + 1
        return usage

    def _ports_in_use(self) -> set[int]:
        return {r.port for r in self._all_replicas() if r.port}

    def _wait_gone(self, pids: list[int], grace_s: float) -> None:
        end = time.monotonic() + grace_s
        while time.monotonic() < end and any(processes.is_running(p) for p in pids):
            time.sleep(0.05)
        for pid in pids:
            if processes.is_running(pid):
                processes.signal_group(pid, signal.SIGKILL)
        end = time.monotonic() + 10.0
        while time.monotonic() < end and any(processes.is_running(p) for p in pids):
            time.sleep(0.05)

    def _status(self, svc: _Service) -> ServiceStatus:
        replicas = sorted(svc.replicas.values(), key=lambda r: (r.generation, r.id))
        current = [r for r in replicas if r.generation == svc.generation]
        return ServiceStatus(
            service=svc.name,
            generation=svc.generation,
            state=service_state(
                [r.state for r in current],
                svc.desired,
                failed=svc.error is not None,
                ever_ready=any(r.ever_ready for r in current),
            ),
            desired_replicas=svc.desired,
            replicas=tuple(
                ReplicaStatus(
                    id=r.id,
                    service=svc.name,
                    generation=r.generation,
                    state=r.state,
                    host=HOST,
                    port=r.port,
                    pid=r.pid,
                    restarts=r.restarts,
                    last_error=r.last_error,
                    started_at=r.started_at,
                )
                for r in replicas
            ),
            error=svc.error,
        )

    def _save(self, svc: _Service) -> None:
        record = state.ServiceRecord(
            service=svc.name,
            generation=svc.generation,
            desired=svc.desired,
            error=svc.error,
            deployments=dict(svc.deployments),
            replicas=[
                state.ReplicaRecord(
                    id=r.id,
                    generation=r.generation,
                    state=r.state,
                    pid=r.pid,
                    port=r.port,
                    argv=r.argv,
                    folder=str(r.folder),
                    log=str(r.log),
                    started_at=r.started_at,
                    restarts=r.restarts,
                    cpus=list(r.limits.cpus),
                    gpus=list(r.limits.gpus),
                    nice=r.limits.nice,
                    memory_bytes=r.limits.memory_bytes,
                    ever_ready=r.ever_ready,
                    last_error=r.last_error,
                )
                for r in svc.replicas.values()
            ],
        )
        state.save(self._state_dir / f"{svc.name}.json", record)
