"""Building an environment image: a Job in the cluster (kaniko / rootless BuildKit), or buildah here.

:class:`ClusterBuilder` applies :func:`~.k8s_render.render_build` (the Dockerfile's ConfigMap and the
Job, by server-side apply: the names come from the environment hash, so two deploys of one
environment meet at one Job) and follows the Job: a progress line whenever the builder pod's phase
or its last log line changes, at most every ``progress_s``. Success returns (the caller looks the
tag up again); failure raises ``DeploymentFailedError`` with the builder's last log lines and the
Job's and pod's events. A finished Job of an earlier build (failed, or succeeded but the tag is
gone) is deleted first, so a deploy always gets a fresh attempt.

:class:`LocalBuilder` runs ``buildah bud --isolation chroot`` from the same Dockerfile and
``buildah push`` to the cluster's registry (``--tls-verify=false`` only for a plain-HTTP registry:
one marked insecure, or localhost as Docker does). Credentials reach buildah in a 0600 auth file,
never on the command line.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelhost.errors import DeploymentFailedError, ValidationError
from modelhost.runtime import k8s_names as names
from modelhost.runtime.k8s_render import BuildOptions, K8sOptions, dockerfile, render_build
from modelhost.runtime.oci import Registry

__all__ = ["ClusterBuilder", "LocalBuilder", "buildah_binary"]

LogFn = Callable[[str], None]
_APPLY = "application/apply-patch+yaml"
_TAIL = 20
_FAILED_LINES = 8


def _failed(what: str, lines: Sequence[str], hint: str, details: Sequence[str] = ()) -> DeploymentFailedError:
    last = [line for line in lines if line.strip()][-_FAILED_LINES:]
    message = f"{what}" + (": " + " | ".join(last) if last else "")
    return DeploymentFailedError(message, hint=hint, details=[*last, *details])


class ClusterBuilder:
    """Builds in the cluster with a Job (see the module docstring)."""

    def __init__(
        self,
        api_client: Any,
        options: K8sOptions,
        build: BuildOptions | None = None,
        *,
        poll_s: float = 1.0,
        progress_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from kubernetes import client  # the server extra

        self._client = client
        self._core: Any = client.CoreV1Api(api_client)
        self._batch: Any = client.BatchV1Api(api_client)
        self._options = options
        self._build = build or BuildOptions()
        self._poll_s = poll_s
        self._progress_s = progress_s
        self._clock = clock

    def build(
        self, env_hash: str, requirements: Sequence[str], python: str | None, tag_reference: str, log: LogFn
    ) -> None:
        from urllib3.exceptions import HTTPError

        build = replace(self._build, python=python) if python else self._build
        context, job = render_build(env_hash, requirements, self._options, build)
        name, ns = job["metadata"]["name"], self._options.namespace
        try:
            existing = self._read_job(name)
            if existing is not None and _outcome(existing) is not None:
                log(f"build: removing the finished Job {name} of an earlier build")
                self._delete_job(name)
            self._core.patch_namespaced_config_map(
                name, ns, context, field_manager=names.FIELD_MANAGER, force=True, _content_type=_APPLY
            )
            self._batch.patch_namespaced_job(
                name, ns, job, field_manager=names.FIELD_MANAGER, force=True, _content_type=_APPLY
            )
            log(f"build: Job {name} ({build.builder}) pushes {tag_reference}")
            self._follow(name, log)
        except self._client.ApiException as exc:
            raise DeploymentFailedError(
                f"the build Job {name} in namespace {ns}: the cluster answered "
                f"HTTP {exc.status} {exc.reason}",
                hint="The kubeconfig's user needs get/create/patch/delete on jobs (batch) and configmaps, "
                "list on pods and events, get on pods/log in that namespace.",
            ) from exc
        except (HTTPError, OSError) as exc:
            raise DeploymentFailedError(
                f"the build Job {name}: the cluster cannot be reached ({type(exc).__name__})",
                hint="Check that the API server runs; deploy again to follow the same Job.",
            ) from exc

    # -- following the Job -----------------------------------------------------------------------

    def _follow(self, name: str, log: LogFn) -> None:
        deadline = self._clock() + self._build.timeout_s + 60
        said, said_at = "", float("-inf")
        while True:
            job = self._read_job(name)
            if job is None:
                raise DeploymentFailedError(
                    f"the build Job {name} disappeared while it ran",
                    hint="Something deleted it; deploy again to build anew.",
                )
            pod = self._pod(name)
            outcome = _outcome(job)
            line = self._progress(pod)
            now = self._clock()
            if line != said and (now - said_at >= self._progress_s or outcome is not None):
                log(line)
                said, said_at = line, now
            if outcome == "Succeeded":
                log(f"build: Job {name} succeeded")
                return
            if outcome == "Failed":
                raise self._failure(name, job, pod)
            if now > deadline:
                raise DeploymentFailedError(
                    f"the build Job {name} did not finish within {self._build.timeout_s + 60} s",
                    hint="Raise BuildOptions.timeout_s, or check the builder pod's events.",
                    timed_out=True,
                )
            time.sleep(self._poll_s)

    def _read_job(self, name: str) -> dict[str, Any] | None:
        try:
            resp = self._batch.read_namespaced_job(name, self._options.namespace, _preload_content=False)
        except self._client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return json.loads(resp.data)  # type: ignore[no-any-return]

    def _delete_job(self, name: str) -> None:
        try:
            self._batch.delete_namespaced_job(
                name, self._options.namespace, propagation_policy="Foreground", grace_period_seconds=0
            )
        except self._client.ApiException as exc:
            if exc.status != 404:
                raise
        end = self._clock() + 60
        while self._read_job(name) is not None and self._clock() < end:
            time.sleep(self._poll_s)

    def _pod(self, job: str) -> dict[str, Any] | None:
        resp = self._core.list_namespaced_pod(
            self._options.namespace, label_selector=f"job-name={job}", _preload_content=False
        )
        pods = json.loads(resp.data).get("items") or []
        pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
        return pods[-1] if pods else None

    def _log_tail(self, pod: dict[str, Any] | None, lines: int) -> list[str]:
        if pod is None or (pod.get("status") or {}).get("phase") in (None, "Pending"):
            return []
        try:
            text = self._core.read_namespaced_pod_log(
                pod["metadata"]["name"], self._options.namespace, container="build", tail_lines=lines
            )
        except self._client.ApiException:
            return []  # no log yet (the container has not started): the phase says enough
        return [str(x) for x in str(text).splitlines()]

    def _progress(self, pod: dict[str, Any] | None) -> str:
        if pod is None:
            return "build: waiting for the builder pod"
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        waiting = _waiting_reason(pod)
        tail = self._log_tail(pod, 1)
        line = f"build: pod {pod['metadata']['name']} {phase}" + (f" ({waiting})" if waiting else "")
        return line + (f": {tail[-1]}" if tail else "")

    def _events(self, *objects: str) -> list[str]:
        found = []
        for name in objects:
            resp = self._core.list_namespaced_event(
                self._options.namespace, field_selector=f"involvedObject.name={name}", _preload_content=False
            )
            for ev in json.loads(resp.data).get("items") or []:
                kind = (ev.get("involvedObject") or {}).get("kind", "")
                found.append(f"event {kind}/{name}: {ev.get('reason', '')}: {ev.get('message', '')}")
        return found

    def _failure(self, name: str, job: dict[str, Any], pod: dict[str, Any] | None) -> DeploymentFailedError:
        lines = self._log_tail(pod, _TAIL)
        reasons = [
            f"{c.get('reason', '')}: {c.get('message', '')}"
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("type") == "Failed"
        ]
        events = self._events(name, *([pod["metadata"]["name"]] if pod else []))
        return _failed(
            f"the build Job {name} failed" + (f" ({'; '.join(reasons)})" if reasons else ""),
            lines,
            f"Read the builder's log: kubectl logs -n {self._options.namespace} job/{name}; "
            "fix the requirement or base image it names and deploy again.",
            events,
        )


def _outcome(job: dict[str, Any]) -> str | None:
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return "Succeeded" if cond["type"] == "Complete" else "Failed"
    if status.get("succeeded"):
        return "Succeeded"
    if status.get("failed"):  # backoffLimit 0: one failed pod fails the Job
        return "Failed"
    return None


def _waiting_reason(pod: dict[str, Any]) -> str:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    return ""


# ---------------------------------------------------------------------------------------------
# buildah on this machine


def buildah_binary() -> str | None:
    return shutil.which("buildah")


def _auth_file(registry: Registry, folder: Path) -> Path | None:
    if registry.username is None or registry.password is None:
        return None
    raw = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    path = folder / "auth.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"auths": {registry.host: {"auth": raw}}}, out)
    return path


class LocalBuilder:
    """Builds with ``buildah`` on this machine and pushes to ``registry`` (see the module docstring).

    ``buildah_args``: buildah's global options (e.g. ``--root``, ``--runroot``, ``--storage-driver``).
    ``context_files``: files or folders copied into the build context under their own names (e.g. a
    modelhost wheel that ``BuildOptions.modelhost_source`` names)."""

    def __init__(
        self,
        registry: Registry,
        build: BuildOptions | None = None,
        *,
        buildah: str | None = None,
        buildah_args: Sequence[str] = (),
        context_files: Sequence[Path] = (),
        timeout_s: float | None = None,
    ) -> None:
        self._registry = registry
        self._build = build or BuildOptions()
        self._buildah = buildah
        self._buildah_args = tuple(buildah_args)
        self._context_files = tuple(context_files)
        self._timeout_s = timeout_s if timeout_s is not None else float(self._build.timeout_s)

    def _base(self) -> list[str]:
        binary = self._buildah or buildah_binary()
        if binary is None:
            raise ValidationError(
                "the compute target builds locally (builder 'local') but buildah is not installed here",
                hint="Install buildah (apt-get install buildah), or attach with --builder kaniko.",
            )
        return [binary, *self._buildah_args]

    def _run(self, argv: list[str], log: LogFn, what: str) -> None:
        tail: deque[str] = deque(maxlen=_TAIL)
        env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
        out, err, quiet = subprocess.PIPE, subprocess.STDOUT, subprocess.DEVNULL
        with subprocess.Popen(argv, stdout=out, stderr=err, stdin=quiet, env=env, text=True) as proc:
            timer = threading.Timer(self._timeout_s, proc.kill)  # a hung build ends at the timeout
            timer.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    tail.append(line.rstrip())
                    if line.strip():
                        log(f"build: {line.rstrip()}")
                code = proc.wait()
            finally:
                timer.cancel()
        if code != 0:
            raise _failed(
                f"{what} failed (exit {code})",
                list(tail),
                "Read the build lines above; fix the requirement or base image they name and deploy again.",
            )

    def build(
        self, env_hash: str, requirements: Sequence[str], python: str | None, tag_reference: str, log: LogFn
    ) -> None:
        base = self._base()
        build = replace(self._build, python=python) if python else self._build
        with tempfile.TemporaryDirectory(prefix="modelhost-build-") as tmp:
            ctx = Path(tmp) / "context"
            ctx.mkdir()
            (ctx / "Dockerfile").write_text(dockerfile(env_hash, requirements, build))
            for item in self._context_files:
                copy = shutil.copytree if item.is_dir() else shutil.copy2
                copy(item, ctx / item.name)
            log(f"build: buildah bud --isolation chroot -t {tag_reference}")
            # --pull=false: a base image already here is used as is (none may be pullable)
            bud = ["bud", "--isolation", "chroot", "--pull=false", "-f", str(ctx / "Dockerfile")]
            self._run([*base, *bud, "-t", tag_reference, str(ctx)], log, "buildah bud")
            push = [*base, "push"]
            if self._registry.base_url.startswith("http://"):
                push.append("--tls-verify=false")  # only a plain-HTTP registry (insecure or localhost)
            auth = _auth_file(self._registry, Path(tmp))
            if auth is not None:
                push += ["--authfile", str(auth)]
            log(f"build: buildah push {tag_reference}")
            self._run([*push, tag_reference, f"docker://{tag_reference}"], log, "buildah push")
