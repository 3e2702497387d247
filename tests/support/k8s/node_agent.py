"""A test-only stand-in for a kubelet. There is no container runtime on these machines, so pods bound
to this agent's Node run as local process groups instead of containers.

Real: the Node object (capacity, allocatable, Ready condition, heartbeats), scheduling (kube-scheduler
binds pods to it), pod status as a kubelet reports it (podIP, phase, conditions, container states with
restarts, CrashLoopBackOff, ImagePullBackOff), probes, graceful deletion, and the kubelet's
``containerLogs`` endpoint over HTTPS (so ``read_namespaced_pod_log`` goes through the API server).

Faked: images (an :data:`~tests.support.k8s.images.ImageResolver` maps an image to a local Python
environment), the pod network (each pod gets a loopback address 127.<n>.x.y; Python processes that bind
0.0.0.0 bind that address instead), mounts (bind mounts in a private mount namespace per process), and
resource limits (not enforced). Processes run as root; ``securityContext`` is ignored.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from kubernetes import client

from modelhost.errors import NotFoundError
from tests.support.k8s.container import Container, Timings, rfc3339
from tests.support.k8s.images import ImageResolver
from tests.support.k8s.kubelet_server import KubeletServer
from tests.support.k8s.pod_worker import NodeContext, PodWorker

__all__ = ["NodeAgent"]

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class NodeAgent:
    """Registers Node ``name`` and runs the pods bound to it until ``stop()``.

    ``api`` is an admin ``ApiClient`` the agent owns from then on; ``tls`` is the (cert, key) its log
    endpoint serves; ``ip_block`` is the second octet of its pods' addresses (127.<ip_block>.x.y), so
    two agents never hand out the same address.
    """

    def __init__(
        self,
        api: client.ApiClient,
        name: str,
        resolver: ImageResolver,
        workdir: Path,
        tls: tuple[Path, Path],
        *,
        capacity: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        taints: list[Obj] | None = None,
        ip_block: int = 1,
        timings: Timings | None = None,
    ) -> None:
        self.api, self.name = api, name
        self.core = client.CoreV1Api(api)
        self.capacity = dict(capacity or {"cpu": "4", "memory": "8Gi", "pods": "110"})
        self.labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})}
        self.taints = list(taints or [])
        self.workdir = workdir
        self.ip_block = ip_block
        host = urllib.parse.urlsplit(api.configuration.host)
        self.ctx = NodeContext(
            self.core,
            name,
            resolver,
            timings or Timings(),
            workdir,
            self.capacity,
            host.hostname or "127.0.0.1",
            host.port or 443,
        )
        self._server = KubeletServer(self._find, *tls)
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._next_ip = 0
        self._stop = threading.Event()
        self._watch_response: Any = None
        self._threads = [
            threading.Thread(target=self._watch_loop, name=f"agent-{name}-watch", daemon=True),
            threading.Thread(target=self._heartbeat_loop, name=f"agent-{name}-heartbeat", daemon=True),
        ]

    # lifecycle --------------------------------------------------------------------------------------
    def start(self) -> NodeAgent:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._server.start()
        self._register()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop watching and kill every pod process (pods stay in the API: the cluster goes next)."""
        self._stop.set()
        _interrupt(self._watch_response)
        with self._lock:
            workers = list(self._workers.values())
        for w in workers:
            w.abort(wait=False)
        for w in workers:
            w.abort(wait=True)
        for t in self._threads:
            t.join(10)
        self._server.stop()
        self.api.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pod_processes(self) -> list[int]:
        """The pids of every running container process (tests check deletion ends them)."""
        with self._lock:
            workers = list(self._workers.values())
        return [c.run.pid for w in workers for c in [*w.inits, *w.containers] if c.run is not None]

    def kill_container(self, namespace: str, pod: str, container: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to a running container's process group (a crash, for tests); its pid."""
        found = self._find(namespace, pod, container)
        if found is None or found.run is None:
            raise NotFoundError(
                f"container {container!r} of pod {namespace}/{pod} is not running on node {self.name}",
                hint="Wait until the pod's container is running (its status shows state.running).",
            )
        found.run.signal(sig)
        return found.run.pid

    # the Node ---------------------------------------------------------------------------------------
    def _node_status(self) -> Obj:
        now = rfc3339()
        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "test node agent is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self._server.port}},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "containerRuntimeVersion": "modelhost-test-agent://1",
                "machineID": self.name,
                "systemUUID": self.name,
                "bootID": self.name,
                "kernelVersion": "",
                "osImage": "modelhost test node agent",
            },
        }

    def _register(self) -> None:
        body = {
            "metadata": {"name": self.name, "labels": self.labels},
            "spec": {"taints": self.taints} if self.taints else {},
            "status": self._node_status(),
        }
        try:
            self.core.create_node(cast(Any, body))
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        # 1.20's TaintNodesByCondition admission adds node.kubernetes.io/not-ready on create; the
        # node lifecycle controller that would lift it is off, so the agent sets its own taints
        self.core.patch_node(
            self.name,
            {"metadata": {"labels": self.labels}, "spec": {"taints": self.taints or None}},
            _content_type="application/merge-patch+json",
        )
        self._patch_node_status()

    def _patch_node_status(self) -> None:
        self.core.patch_node_status(
            self.name, {"status": self._node_status()}, _content_type="application/merge-patch+json"
        )

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(5.0):
            with contextlib.suppress(Exception):
                self._patch_node_status()

    # pods -------------------------------------------------------------------------------------------
    def _allocate_ip(self) -> str:
        with self._lock:
            self._next_ip += 1
            n = self._next_ip
        return str(ipaddress.ip_address(f"127.{self.ip_block}.0.0") + n)

    def _find(self, namespace: str, pod: str, container: str) -> Container | None:
        with self._lock:
            workers = [w for w in self._workers.values() if (w.namespace, w.name) == (namespace, pod)]
        for w in workers:
            found = w.find(container)
            if found is not None:
                return found
        return None

    def _handle(self, kind: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.abort(wait=False)
                with self._lock:
                    self._workers.pop(uid, None)
            return
        if worker is not None:
            worker.update(pod)
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and not pod["metadata"].get(
            "deletionTimestamp"
        ):
            return  # finished before this agent (re)started; nothing to run
        worker = PodWorker(self.ctx, pod, self._allocate_ip())
        worker.update(pod)
        with self._lock:
            self._workers[uid] = worker
        worker.start()

    def _forget_finished(self) -> None:
        with self._lock:
            for uid in [u for u, w in self._workers.items() if not w.alive]:
                del self._workers[uid]

    def _watch_loop(self) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list()
                version = self._watch(version)
            except client.ApiException as exc:
                if exc.status == 410:
                    version = ""
                elif not self._stop.is_set():
                    log.warning("node agent %s watch: %s", self.name, exc.reason)
                    time.sleep(0.5)
            except Exception as exc:  # connection dropped: watch again from where it was
                if not self._stop.is_set():
                    log.debug("node agent %s watch: %r", self.name, exc)
                    time.sleep(0.2)
            self._forget_finished()

    def _selector(self) -> str:
        return f"spec.nodeName={self.name}"

    def _list(self) -> str:
        raw: Any = self.core.list_pod_for_all_namespaces(
            field_selector=self._selector(), _preload_content=False
        )
        listing = json.loads(raw.data)
        seen = set()
        for pod in listing["items"]:
            seen.add(pod["metadata"]["uid"])
            self._handle("MODIFIED", pod)
        with self._lock:
            gone = [u for u in self._workers if u not in seen]
        for uid in gone:
            self._handle("DELETED", {"metadata": {"uid": uid}})
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str:
        resp: Any = self.core.list_pod_for_all_namespaces(
            field_selector=self._selector(),
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=60,
            _preload_content=False,
        )
        self._watch_response = resp
        try:
            buffer = b""
            for chunk in resp.stream(4096, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        version = self._event(json.loads(line), version)
                if self._stop.is_set():
                    break
        finally:
            resp.release_conn()
        return version

    def _event(self, event: Obj, version: str) -> str:
        kind, obj = event["type"], event["object"]
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise client.ApiException(status=410, reason="Expired")
            raise client.ApiException(status=int(obj.get("code") or 500), reason=str(obj.get("message")))
        if kind != "BOOKMARK":
            self._handle(kind, obj)
        return str(obj["metadata"].get("resourceVersion") or version)


def _interrupt(response: Any) -> None:
    """Wake the watch thread blocked reading ``response``: shutting the socket down does that at once
    (closing the response from another thread would wait for the read to finish)."""
    conn = getattr(response, "connection", None) or getattr(response, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
