"""One pod on the node agent, run by one thread: volumes, init containers in order, then the
containers; status patched to the API server whenever it changes; graceful deletion."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.support.k8s.container import Container, Timings, rfc3339
from tests.support.k8s.images import ImageResolver
from tests.support.k8s.pod_env import ConfigError, command_line, container_env
from tests.support.k8s.process import NETSHIM_DIR, ProcessRun, run_probe
from tests.support.k8s.volumes import container_mounts, materialise_volumes

__all__ = ["NodeContext", "PodWorker"]

Obj = dict[str, Any]
log = logging.getLogger(__name__)
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class NodeContext:
    """What every pod worker of one node shares."""

    core: client.CoreV1Api
    node_name: str
    resolver: ImageResolver
    timings: Timings
    workdir: Path
    allocatable: Mapping[str, str]
    api_host: str
    api_port: int


class PodWorker:
    """Runs one pod until it is deleted (or the agent stops)."""

    def __init__(self, ctx: NodeContext, pod: Obj, pod_ip: str) -> None:
        self.ctx, self.pod, self.ip = ctx, pod, pod_ip
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = ctx.workdir / "pods" / self.uid
        spec = pod["spec"]
        policy = spec.get("restartPolicy") or "Always"
        logs = self.dir / "logs"
        self.inits = [
            Container(c, "", logs, ctx.timings, "Never" if policy == "Never" else "OnFailure", is_init=True)
            for c in spec.get("initContainers") or []
        ]
        self.containers = [Container(c, "", logs, ctx.timings, policy) for c in spec.get("containers") or []]
        self.started = rfc3339()
        self._volumes: dict[str, Path] | None = None
        self._volume_error = ""
        self._pull_failures: dict[str, int] = {}
        self._deleting = threading.Event()
        self._abort = threading.Event()
        self._published: Obj = {}
        self._transitions: dict[str, tuple[str, str]] = {}
        self._thread = threading.Thread(
            target=self._main, name=f"pod-{self.namespace}/{self.name}", daemon=True
        )

    # control from the agent ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def update(self, pod: Obj) -> None:
        """A newer version of the pod from the watch; deletion starts graceful termination."""
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self._deleting.set()

    def abort(self, wait: bool = True) -> None:
        """Kill everything now (the pod is gone or the agent stops)."""
        self._abort.set()
        if wait and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(15)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def find(self, container: str) -> Container | None:
        return next((c for c in [*self.inits, *self.containers] if c.name == container), None)

    # the thread ---------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            while not self._abort.is_set() and not self._deleting.is_set():
                self._tick(time.monotonic())
                self._publish()
                time.sleep(self.ctx.timings.tick_s)
            if self._deleting.is_set() and not self._abort.is_set():
                self._terminate()
                self._delete()
        except Exception:  # a test-infra bug must not pass silently, but must not leak processes either
            log.exception("pod worker %s/%s failed", self.namespace, self.name)
        finally:
            for c in [*self.inits, *self.containers]:
                if c.run is not None:
                    c.run.kill()
            shutil.rmtree(self.dir / "volumes", ignore_errors=True)

    def _tick(self, now: float) -> None:
        if self._volumes is None:
            try:
                self._volumes = materialise_volumes(self._view(), self.dir / "volumes", self._lookup)
                self._volume_error = ""
            except ConfigError as exc:
                self._volume_error = str(exc)
                return
        pending_init = next((c for c in self.inits if not c.succeeded), None)
        if pending_init is not None:
            self._step(pending_init, now)
            return
        for c in self.containers:
            self._step(c, now)

    def _step(self, c: Container, now: float) -> None:
        if c.can_start(now):
            self._try_start(c, now)
        c.step(now, self.ip, self._ports(c))

    def _ports(self, c: Container) -> dict[str, int]:
        return {p["name"]: int(p["containerPort"]) for p in c.spec.get("ports") or [] if p.get("name")}

    def _try_start(self, c: Container, now: float) -> None:
        image = str(c.spec.get("image", ""))
        resolved = self.ctx.resolver(image)
        if resolved is None:
            self._pull_failed(c, image, now)
            return
        c.image_id = resolved.image_id
        try:
            env = container_env(
                self._view(), c.spec, self._lookup, self.ctx.allocatable, self._base_env(resolved)
            )
            argv = command_line(c.spec, resolved.entrypoint, resolved.cmd, env)
            mounts = container_mounts(c.spec, self._volumes or {})
        except ConfigError as exc:
            c.waiting_reason, c.waiting_message = "CreateContainerConfigError", str(exc)
            c.next_start = now + 1.0
            return
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NETSHIM_DIR), env.get("PYTHONPATH")) if p)
        env["MODELHOST_TEST_POD_IP"] = self.ip
        c.env = env
        workdir = c.spec.get("workingDir")
        c.start(lambda ct: ProcessRun(argv, env, mounts, workdir, ct.log_path_for_next()), now)

    def _pull_failed(self, c: Container, image: str, now: float) -> None:
        """The kubelet's reasons: ErrImagePull at an attempt, then ImagePullBackOff between attempts."""
        failures = self._pull_failures.get(c.name, 0) + 1
        self._pull_failures[c.name] = failures
        if c.spec.get("imagePullPolicy") == "Never":
            c.waiting_reason = "ErrImageNeverPull"
            c.waiting_message = f'Container image "{image}" is not present with pull policy of Never'
        elif failures == 1:
            c.waiting_reason = "ErrImagePull"
            c.waiting_message = (
                f'rpc error: code = NotFound desc = failed to pull image "{image}": not found '
                "(test node agent: no local environment is registered for it)"
            )
        else:
            c.waiting_reason, c.waiting_message = "ImagePullBackOff", f'Back-off pulling image "{image}"'
        backoff = self.ctx.timings.image_backoff_s * 2 ** min(failures - 1, 4)
        c.next_start = now + min(backoff, self.ctx.timings.backoff_max_s)

    def _view(self) -> Obj:
        """The pod with the addresses this worker gave it, before the watch brings them back."""
        status = {**(self.pod.get("status") or {}), "podIP": self.ip, "podIPs": [{"ip": self.ip}]}
        return {**self.pod, "status": {**status, "hostIP": "127.0.0.1"}}

    def _base_env(self, resolved: Any) -> dict[str, str]:
        prefix: Path | None = resolved.prefix
        env = {
            "PATH": f"{prefix}/bin:{_SYSTEM_PATH}" if prefix else _SYSTEM_PATH,
            "HOSTNAME": str(self.pod["spec"].get("hostname") or self.name),
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "KUBERNETES_SERVICE_HOST": self.ctx.api_host,
            "KUBERNETES_SERVICE_PORT": str(self.ctx.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.ctx.api_port),
        }
        if prefix is not None and (prefix / "pyvenv.cfg").exists():
            env["VIRTUAL_ENV"] = str(prefix)
        env.update(resolved.env)
        return env

    def _lookup(self, kind: str, name: str) -> dict[str, str] | None:
        try:
            if kind == "secret":
                secret = self.ctx.core.read_namespaced_secret(name, self.namespace)
                return {
                    k: base64.b64decode(v).decode("utf-8", "surrogateescape")
                    for k, v in (secret.data or {}).items()
                }
            cm = self.ctx.core.read_namespaced_config_map(name, self.namespace)
            data = dict(cm.data or {})
            data.update(
                {
                    k: base64.b64decode(v).decode("utf-8", "surrogateescape")
                    for k, v in (cm.binary_data or {}).items()
                }
            )
            return data
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # status ---------------------------------------------------------------------------------------
    def _phase(self) -> str:
        if any(c.terminated and not c.succeeded for c in self.inits):
            return "Failed"
        if any(not c.succeeded for c in self.inits) or self._volumes is None:
            return "Pending"
        if any(c.running or c.last_terminated for c in self.containers) and not all(
            c.terminated for c in self.containers
        ):
            return "Running"
        if self.containers and all(c.terminated for c in self.containers):
            return "Succeeded" if all(c.succeeded for c in self.containers) else "Failed"
        return "Pending"

    def _condition(self, kind: str, ok: bool, reason: str = "") -> Obj:
        value = "True" if ok else "False"
        if self._transitions.get(kind, ("", ""))[0] != value:
            self._transitions[kind] = (value, rfc3339())
        cond: Obj = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": self._transitions[kind][1],
        }
        if reason and not ok:
            cond["reason"] = reason
        return cond

    def status(self) -> Obj:
        inits_done = all(c.succeeded for c in self.inits) and self._volumes is not None
        ready = inits_done and all(c.ready for c in self.containers)
        waiting = [c for c in self.containers if not c.ready]
        if self._volume_error:
            for c in self.containers:
                c.waiting_message = self._volume_error
        elif not inits_done:
            for c in self.containers:
                c.waiting_reason = "PodInitializing"
        out: Obj = {
            "phase": self._phase(),
            "hostIP": "127.0.0.1",
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.started,
            "conditions": [
                self._condition("Initialized", inits_done, "ContainersNotInitialized"),
                self._condition("Ready", ready, "ContainersNotReady"),
                self._condition("ContainersReady", ready, "ContainersNotReady"),
                self._condition("PodScheduled", True),
            ],
            "containerStatuses": [c.status() for c in self.containers],
        }
        if waiting and not ready:
            names = ", ".join(c.name for c in waiting)
            out["conditions"][1]["message"] = out["conditions"][2]["message"] = (
                f"containers with unready status: [{names}]"
            )
        if self.inits:
            out["initContainerStatuses"] = [c.status() for c in self.inits]
        return out

    def _publish(self) -> None:
        status = self.status()
        if status == self._published:
            return
        try:
            self.ctx.core.patch_namespaced_pod_status(
                self.name, self.namespace, {"status": status}, _content_type="application/merge-patch+json"
            )
            self._published = status
        except client.ApiException as exc:
            if exc.status == 404:
                self._abort.set()
            else:
                log.warning("status of pod %s/%s: %s", self.namespace, self.name, exc.reason)

    # deletion ---------------------------------------------------------------------------------------
    def _terminate(self) -> None:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        grace = int(grace if grace is not None else spec.get("terminationGracePeriodSeconds", 30))
        deadline = time.monotonic() + grace
        for c in self.inits:
            if c.run is not None:
                c.run.kill()
        running = [c for c in self.containers if c.run is not None]
        for c in running:
            self._pre_stop(c, deadline)
        for c in running:
            if c.run is not None:
                c.run.signal(signal.SIGTERM)
        while time.monotonic() < deadline and not self._abort.is_set():
            if all(c.run is None or c.run.poll() is not None for c in running):
                break
            time.sleep(0.05)
        for c in running:
            if c.run is not None:
                c.run.kill()

    def _pre_stop(self, c: Container, deadline: float) -> None:
        hook = ((c.spec.get("lifecycle") or {}).get("preStop")) or {}
        remaining = deadline - time.monotonic()
        if not hook or c.run is None or remaining <= 0:
            return
        if "exec" in hook:
            c.run.exec_in(hook["exec"]["command"], c.env, remaining)
        elif "httpGet" in hook:
            run_probe(
                {"httpGet": hook["httpGet"], "timeoutSeconds": remaining},
                self.ip,
                self._ports(c),
                c.run,
                c.env,
            )
        elif "sleep" in hook:
            time.sleep(min(float(hook["sleep"].get("seconds", 0)), remaining))

    def _delete(self) -> None:
        body = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
        )
        with contextlib.suppress(client.ApiException):
            self.ctx.core.delete_namespaced_pod(self.name, self.namespace, body=body)
