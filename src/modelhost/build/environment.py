"""Cached environment builds: workspace cache -> machine cache -> build with uv.

An environment is a venv at ``<machine cache>/<hash>`` (``Settings.machine_envs_dir``), shared
by every workspace on the machine; a workspace records the ones it uses as symlinks
``Settings.envs_dir/<hash>`` (plus a reference file, so pruning one workspace never removes an
environment another still links). The hash is :meth:`EnvironmentSpec.content_hash` with the
resolved Python minor.

A venv's scripts hold absolute paths, so it is built in place at its final path and a completion
marker (:data:`MARKER`) is written last: a folder without it is a build that was interrupted, and
is wiped and rebuilt. Builds of one hash are serialised by a cross-process file lock
(``<machine cache>/<hash>.lock``); a second request waits and then finds the finished build. Each
build keeps its log in ``<env>/build.log``; a failed build leaves only ``<hash>.failed.log``.

Every environment gets modelhost's base layer from a wheel of the running installation (see
:mod:`modelhost.build.wheel`); when the installed modelhost's files change (a patch release, or a
development checkout) a cached environment's base layer is refreshed in place on the next use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout

import modelhost
from modelhost.build.interpreters import (
    MIN_SUPPORTED,
    Interpreter,
    InterpreterChoice,
    choose_interpreter,
    discover_interpreters,
    quick_interpreters,
)
from modelhost.build.uv_errors import ONLY_BINARY, explain_uv_failure
from modelhost.build.wheel import ModelhostWheel, build_modelhost_wheel
from modelhost.errors import EnvironmentBuildError, ValidationError
from modelhost.settings import Settings
from modelhost.spec.environment import EnvironmentSpec, python_minor

__all__ = ["MARKER", "BuiltEnvironment", "EnvironmentBuilder", "LogFn"]

MARKER = ".modelhost-env.json"
BUILD_LOG = "build.log"
_TAIL_LINES = 40
_HASH_NAME = re.compile(r"^[0-9a-f]{64}$")

LogFn = Callable[[str], None]


@dataclass(frozen=True)
class BuiltEnvironment:
    """A usable environment. ``source``: "workspace" | "machine" | "built" | "inherited".

    ``python`` is the interpreter to run replicas with; ``seconds`` what this lookup or build took.
    """

    spec_hash: str
    path: Path
    python: Path
    python_version: str
    source: str
    seconds: float
    log_path: Path | None
    notes: tuple[str, ...]


def _noop(_: str) -> None:
    pass


def _venv_python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _read_marker(env_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((env_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and _venv_python(env_dir).exists() else None


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


class _BuildLog:
    """Sends each line to the caller's callback and, once the env folder exists, to build.log."""

    def __init__(self, emit: LogFn) -> None:
        self._emit = emit
        self._file: IO[str] | None = None
        self._pending: list[str] = []
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.quiet(line)
        self._emit(line.rstrip("\n"))

    def quiet(self, line: str) -> None:
        """Record ``line`` in the log without sending it to the caller (it was sent already)."""
        line = line.rstrip("\n")
        self.lines.append(line)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        else:
            self._pending.append(line)

    def open(self, path: Path) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        for line in self._pending:
            self._file.write(line + "\n")
        self._pending.clear()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def tail(self) -> list[str]:
        return self.lines[-_TAIL_LINES:]


class EnvironmentBuilder:
    """Finds or builds environments for specs; safe to use from several threads and processes."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: LogFn | None = None,
        uv_bin: str | None = None,
        build_timeout_s: float = 1800.0,
        lock_timeout_s: float = 3600.0,
    ) -> None:
        self.settings = settings
        self._log = log or _noop
        self._uv_bin = uv_bin
        self._build_timeout_s = build_timeout_s
        self._lock_timeout_s = lock_timeout_s
        self._interpreters: list[Interpreter] | None = None
        self._full_discovery = False
        self._discovery_lock = threading.Lock()

    # -- paths ---------------------------------------------------------------------------------

    @property
    def uv_bin(self) -> str:
        if self._uv_bin is None:
            from uv import find_uv_bin

            self._uv_bin = find_uv_bin()
        return self._uv_bin

    def _machine_dir(self, spec_hash: str) -> Path:
        return self.settings.machine_envs_dir / spec_hash

    def _workspace_link(self, spec_hash: str) -> Path:
        return self.settings.envs_dir / spec_hash

    def _refs_dir(self, spec_hash: str) -> Path:
        return self.settings.machine_envs_dir / ".refs" / spec_hash

    def _lock(self, spec_hash: str) -> FileLock:
        self.settings.machine_envs_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.settings.machine_envs_dir / f"{spec_hash}.lock"), thread_local=False)

    # -- interpreter ---------------------------------------------------------------------------

    def _choose(self, spec: EnvironmentSpec, strict: bool) -> InterpreterChoice:
        def choose(candidates: list[Interpreter]) -> InterpreterChoice:
            return choose_interpreter(spec.python, candidates, default_minor=_running_minor(), strict=strict)

        with self._discovery_lock:
            if self._interpreters is None:
                self._interpreters = quick_interpreters()
            try:
                choice: InterpreterChoice | None = choose(self._interpreters)
            except ValidationError:
                choice = None
            if not self._full_discovery and (choice is None or not _is_ideal(spec.python, choice)):
                # The cheap candidates lack the wanted minor: ask uv and PATH too (slower, once).
                self._interpreters = discover_interpreters(self.uv_bin)
                self._full_discovery = True
                choice = None
            return choice if choice is not None else choose(self._interpreters)

    def spec_hash(self, spec: EnvironmentSpec, *, strict_python: bool = False) -> str:
        """The cache key of ``spec`` on this machine (its Python resolved to an installed minor)."""
        if spec.inherit:
            return spec.content_hash(modelhost.__version__, _running_minor())
        return spec.content_hash(modelhost.__version__, self._choose(spec, strict_python).interpreter.minor)

    # -- public --------------------------------------------------------------------------------

    def lookup(self, spec: EnvironmentSpec) -> BuiltEnvironment | None:
        """The cached environment for ``spec``, or None; never builds, links or refreshes."""
        start = time.monotonic()
        if spec.inherit:
            return self._inherited(spec, start)
        choice = self._choose(spec, strict=False)
        spec_hash = spec.content_hash(modelhost.__version__, choice.interpreter.minor)
        return self._cached(spec_hash, start)

    def ensure(
        self, spec: EnvironmentSpec, *, strict_python: bool = False, log: LogFn | None = None
    ) -> BuiltEnvironment:
        """The environment for ``spec``: from the workspace cache, the machine cache, or built now.

        Raises ValidationError (no usable interpreter, or ``strict_python`` and the pinned minor is
        missing) or EnvironmentBuildError (the install failed; message names the requirement, the
        details hold the log's tail).
        """
        start = time.monotonic()
        emit = log or self._log
        if spec.inherit:
            emit(f"inheriting the current interpreter {sys.executable}: nothing to build")
            return self._inherited(spec, start)
        emit("resolving interpreter")
        choice = self._choose(spec, strict_python)
        if choice.warning:
            emit(choice.warning)
        spec_hash = spec.content_hash(modelhost.__version__, choice.interpreter.minor)
        found = self._cached(spec_hash, start)
        if found is None:
            found = self._locked_build(spec, spec_hash, choice, emit, start)
        else:
            emit(f"cache hit ({found.source}): {found.path}")
            found = self._refresh_base_layer(found, emit)
        self._link(spec_hash)
        emit(f"done in {time.monotonic() - start:.1f} s")
        return dataclasses.replace(found, seconds=time.monotonic() - start)

    def prune(self, keep: set[str]) -> list[str]:
        """Remove this workspace's environments whose hash is not in ``keep``, then machine-cache
        environments no workspace links any more (skipping any being built). Returns removed paths."""
        removed: list[str] = []
        envs_dir = self.settings.envs_dir
        for entry in sorted(envs_dir.iterdir()) if envs_dir.is_dir() else []:
            if not _HASH_NAME.match(entry.name) or entry.name in keep:
                continue
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
            else:
                shutil.rmtree(entry, ignore_errors=True)
            self._ref_file(entry.name).unlink(missing_ok=True)
            removed.append(str(entry))
        machine = self.settings.machine_envs_dir
        for env_dir in sorted(machine.iterdir()) if machine.is_dir() else []:
            name = env_dir.name
            if not _HASH_NAME.match(name) or name in keep or not env_dir.is_dir():
                continue
            if self._has_live_refs(name):
                continue
            lock = self._lock(name)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # being built or refreshed right now
            try:
                shutil.rmtree(env_dir, ignore_errors=True)
                shutil.rmtree(self._refs_dir(name), ignore_errors=True)
                (machine / f"{name}.failed.log").unlink(missing_ok=True)
                removed.append(str(env_dir))
            finally:
                lock.release()
        return removed

    # -- lookup chain --------------------------------------------------------------------------

    def _inherited(self, spec: EnvironmentSpec, start: float) -> BuiltEnvironment:
        return BuiltEnvironment(
            spec_hash=spec.content_hash(modelhost.__version__, _running_minor()),
            path=Path(sys.prefix),
            python=Path(sys.executable),
            python_version=platform.python_version(),
            source="inherited",
            seconds=time.monotonic() - start,
            log_path=None,
            notes=spec.notes,
        )

    def _cached(self, spec_hash: str, start: float) -> BuiltEnvironment | None:
        link = self._workspace_link(spec_hash)
        if link.exists() and (marker := _read_marker(link.resolve())) is not None:
            return self._from_marker(link.resolve(), marker, "workspace", start)
        machine_dir = self._machine_dir(spec_hash)
        if (marker := _read_marker(machine_dir)) is not None:
            return self._from_marker(machine_dir, marker, "machine", start)
        return None

    def _from_marker(
        self, env_dir: Path, marker: dict[str, Any], source: str, start: float
    ) -> BuiltEnvironment:
        log_path = env_dir / BUILD_LOG
        return BuiltEnvironment(
            spec_hash=str(marker["spec_hash"]),
            path=env_dir,
            python=_venv_python(env_dir),
            python_version=str(marker.get("python_version", "")),
            source=source,
            seconds=time.monotonic() - start,
            log_path=log_path if log_path.exists() else None,
            notes=tuple(str(n) for n in marker.get("notes", [])),
        )

    def _locked_build(
        self, spec: EnvironmentSpec, spec_hash: str, choice: InterpreterChoice, emit: LogFn, start: float
    ) -> BuiltEnvironment:
        lock = self._lock(spec_hash)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            emit("waiting for another build of this environment to finish")
            try:
                lock.acquire(timeout=self._lock_timeout_s)
            except Timeout as exc:
                raise EnvironmentBuildError(
                    f"gave up waiting {self._lock_timeout_s:.0f} s for another build of "
                    f"environment {spec_hash[:12]}",
                    hint=f"If no build is running, remove {lock.lock_file} and try again.",
                ) from exc
        try:
            machine_dir = self._machine_dir(spec_hash)
            if (marker := _read_marker(machine_dir)) is not None:
                emit(f"cache hit (machine): {machine_dir} (built while waiting)")
                return self._from_marker(machine_dir, marker, "machine", start)
            return self._build(spec, spec_hash, choice, emit, start)
        finally:
            lock.release()

    # -- build ---------------------------------------------------------------------------------

    def _build(
        self, spec: EnvironmentSpec, spec_hash: str, choice: InterpreterChoice, emit: LogFn, start: float
    ) -> BuiltEnvironment:
        env_dir = self._machine_dir(spec_hash)
        failed_log = self.settings.machine_envs_dir / f"{spec_hash}.failed.log"
        log = _BuildLog(emit)
        if env_dir.exists():
            log(f"removing incomplete environment {env_dir} (an earlier build did not finish)")
            shutil.rmtree(env_dir)
        env_dir.mkdir(parents=True)
        log.open(env_dir / BUILD_LOG)
        interp = choice.interpreter
        notes = [*spec.notes, *([choice.warning] if choice.warning else [])]
        try:
            log(f"building environment {spec_hash[:12]} ({spec.name}) with Python {interp.version}")
            log(f"interpreter: {interp.path}")
            if choice.warning:
                log.quiet(choice.warning)
            for note in spec.notes:
                log(f"note: {note}")
            wheel = build_modelhost_wheel(self.settings.cache_dir)
            log(f"modelhost base layer: {wheel.path.name} (installed offline)")
            log("creating venv")
            venv = [self.uv_bin, "venv", "--allow-existing", "--python", str(interp.path), str(env_dir)]
            self._run(venv, log)
            requirements = [f"modelhost @ {wheel.path.as_uri()}", *spec.requirements]
            (env_dir / "requirements.txt").write_text("\n".join(requirements) + "\n")
            listed = ", ".join(spec.requirements) or "(none)"
            log(f"installing {len(spec.requirements)} requirement(s) and modelhost's base layer: {listed}")
            install = self._install_cmd(env_dir, ["-r", str(env_dir / "requirements.txt")])
            code = self._run(install, log, check=False)
            if code != 0:
                failure = explain_uv_failure("\n".join(log.lines), spec.requirements, interp.minor)
                raise EnvironmentBuildError(
                    f"environment {spec.name!r} failed to build: {failure.message}", hint=failure.hint
                )
            python_version = self._verify(env_dir, log)
            seconds = time.monotonic() - start
            log(f"built in {seconds:.1f} s")
            marker = self._marker(spec, spec_hash, interp, python_version, wheel, notes)
            _write_json_atomic(env_dir / MARKER, marker)  # last: from here on the env is usable
        except BaseException as exc:
            log.close()
            self._discard_failed(env_dir, failed_log)
            if isinstance(exc, EnvironmentBuildError):
                exc.details = [*exc.details, f"build log: {failed_log}", *log.tail()]
                raise
            if isinstance(exc, Exception):
                raise EnvironmentBuildError(
                    f"environment {spec.name!r} failed to build: {exc}",
                    hint=f"Read the build log {failed_log}.",
                    details=log.tail(),
                ) from exc
            raise
        log.close()
        failed_log.unlink(missing_ok=True)
        return BuiltEnvironment(
            spec_hash=spec_hash,
            path=env_dir,
            python=_venv_python(env_dir),
            python_version=python_version,
            source="built",
            seconds=seconds,
            log_path=env_dir / BUILD_LOG,
            notes=tuple(notes),
        )

    def _install_cmd(self, env_dir: Path, args: Sequence[str]) -> list[str]:
        only_binary = ["--only-binary", ",".join(ONLY_BINARY)]
        return [self.uv_bin, "pip", "install", "--python", str(_venv_python(env_dir)), *only_binary, *args]

    def _marker(
        self,
        spec: EnvironmentSpec,
        spec_hash: str,
        interp: Interpreter,
        python_version: str,
        wheel: ModelhostWheel,
        notes: Sequence[str],
    ) -> dict[str, Any]:
        return {
            "spec_hash": spec_hash,
            "spec": spec.to_dict(),
            "python_version": python_version,
            "base_interpreter": str(interp.path),
            "modelhost_version": wheel.version,
            "modelhost_digest": wheel.digest,
            "notes": list(notes),
            "built_at": time.time(),
        }

    def _verify(self, env_dir: Path, log: LogFn) -> str:
        log("checking the environment imports modelhost")
        proc = subprocess.run(
            [str(_venv_python(env_dir)), "-c", "import modelhost, platform as p; print(p.python_version())"],
            capture_output=True, text=True, timeout=120, check=False, env=self._subprocess_env(),
            cwd=env_dir,  # not the caller's folder: a checkout there would shadow the installed package
        )
        if proc.returncode != 0:
            for line in (proc.stdout + proc.stderr).splitlines():
                log(line)
            raise EnvironmentBuildError(
                "the built environment cannot import modelhost",
                hint="Read the build log; this is likely a bug.",
            )
        return proc.stdout.strip()

    def _discard_failed(self, env_dir: Path, failed_log: Path) -> None:
        with contextlib.suppress(OSError):
            shutil.copyfile(env_dir / BUILD_LOG, failed_log)
        shutil.rmtree(env_dir, ignore_errors=True)

    def _subprocess_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
        env.update({"NO_COLOR": "1", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never"})
        return env

    def _run(self, cmd: Sequence[str], log: LogFn, *, check: bool = True) -> int:
        """Run ``cmd``, streaming its merged output to ``log``; kill it after the build timeout."""
        log("$ " + " ".join(_short(c) for c in cmd))
        with subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self._subprocess_env()
        ) as proc:
            expired = threading.Event()

            def kill() -> None:
                expired.set()
                proc.kill()

            timer = threading.Timer(self._build_timeout_s, kill)
            timer.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log(line)
                code = proc.wait()
            finally:
                timer.cancel()
        if expired.is_set():
            raise EnvironmentBuildError(
                f"build step '{' '.join(cmd[1:3])}' was stopped after {self._build_timeout_s:.0f} s",
                hint="Pin packages that ship wheels (building from source is slow) or raise the timeout.",
            )
        if code != 0 and check:
            raise EnvironmentBuildError(f"command failed with exit code {code}: {' '.join(cmd[:3])}")
        return code

    # -- base layer refresh and workspace links -------------------------------------------------

    def _refresh_base_layer(self, found: BuiltEnvironment, emit: LogFn) -> BuiltEnvironment:
        """Reinstall modelhost's base layer in a cached env when the running modelhost's files differ."""
        wheel = build_modelhost_wheel(self.settings.cache_dir)
        marker = _read_marker(found.path)
        if marker is None or marker.get("modelhost_digest") == wheel.digest:
            return found
        with self._lock(found.spec_hash):
            marker = _read_marker(found.path)
            if marker is None or marker.get("modelhost_digest") == wheel.digest:
                return found
            emit(f"refreshing modelhost base layer ({marker.get('modelhost_version')} -> {wheel.version})")
            args = ["--reinstall-package", "modelhost", f"modelhost @ {wheel.path.as_uri()}"]
            code = self._run(self._install_cmd(found.path, args), emit, check=False)
            if code != 0:
                raise EnvironmentBuildError(
                    f"refreshing modelhost in environment {found.spec_hash[:12]} failed (exit code {code})",
                    hint=f"Remove {found.path} to rebuild it from scratch.",
                )
            marker.update(modelhost_version=wheel.version, modelhost_digest=wheel.digest)
            _write_json_atomic(found.path / MARKER, marker)
        return found

    def _ref_file(self, spec_hash: str) -> Path:
        key = hashlib.sha256(str(self.settings.envs_dir.resolve()).encode()).hexdigest()[:16]
        return self._refs_dir(spec_hash) / key

    def _link(self, spec_hash: str) -> None:
        """Record the env in this workspace: a symlink to the machine cache and a back-reference."""
        link = self._workspace_link(spec_hash)
        target = self._machine_dir(spec_hash)
        if not (link.is_symlink() and Path(os.readlink(link)) == target):
            link.parent.mkdir(parents=True, exist_ok=True)
            tmp = link.with_name(f".{spec_hash}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target, target_is_directory=True)
            os.replace(tmp, link)
        ref = self._ref_file(spec_hash)
        if not ref.exists():
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(str(link.absolute()))

    def _has_live_refs(self, spec_hash: str) -> bool:
        refs = self._refs_dir(spec_hash)
        live = False
        for ref in refs.iterdir() if refs.is_dir() else []:
            with contextlib.suppress(OSError):
                link = Path(ref.read_text().strip())
                if link.is_symlink() and link.resolve() == self._machine_dir(spec_hash).resolve():
                    live = True
                    continue
            ref.unlink(missing_ok=True)  # the workspace dropped it (or is gone)
        return live


def _is_ideal(requested: str | None, choice: InterpreterChoice) -> bool:
    """Whether no other interpreter could be a better match (so a slow full discovery is moot)."""
    if choice.warning is None:
        return True
    minor = python_minor(requested) or _running_minor()
    wanted = tuple(int(x) for x in minor.split("."))
    ideal = max(wanted, MIN_SUPPORTED)
    return choice.interpreter.version_tuple[:2] == ideal


def _running_minor() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _short(arg: str) -> str:
    return arg if len(arg) < 120 else arg[:117] + "..."

