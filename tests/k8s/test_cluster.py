"""The test Kubernetes infrastructure itself: a real API server, controller manager and scheduler
(1.20) with the node agent standing in for a kubelet (there is no container runtime here: "containers"
are local processes running from the test venv)."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support.k8s.cluster import K8sCluster
from tests.support.k8s.images import LocalImages
from tests.support.k8s.node_agent import NodeAgent
from tests.support.k8s.registry import OciRegistry
from tests.support.net import wait_until

Obj = dict[str, Any]
pytestmark = pytest.mark.k8s
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def core(k8s_cluster: K8sCluster, k8s_node: NodeAgent) -> Iterator[client.CoreV1Api]:
    with k8s_cluster.api_client() as api:
        yield client.CoreV1Api(api)


def _pod(name: str, image: str, command: list[str], **container: Any) -> Obj:
    spec: Obj = {"name": "main", "image": image, "command": command, **container}
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [spec], "terminationGracePeriodSeconds": 5},
    }


def _read(core: client.CoreV1Api, ns: str, name: str) -> Obj:
    pod = core.read_namespaced_pod(name, ns, _preload_content=False)
    result: Obj = json.loads(pod.data)
    return result


def _condition(pod: Obj, kind: str) -> Obj:
    return next((c for c in pod["status"].get("conditions") or [] if c["type"] == kind), {})


def _wait_pod(
    core: client.CoreV1Api, ns: str, name: str, predicate: Any, what: str, deadline: float = 60
) -> Obj:
    seen: list[Obj] = []

    def check() -> bool:
        seen[:] = [_read(core, ns, name)]
        return bool(predicate(seen[0]))

    try:
        wait_until(check, deadline, 0.2, what=f"pod {name}: {what}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last status: {seen[0]['status'] if seen else None}") from exc
    return seen[0]


def _http_get(url: str) -> tuple[int, bytes]:
    with _NO_PROXY.open(url, timeout=5) as resp:
        return int(resp.status), resp.read()


def test_node_registers_with_capacity(core: client.CoreV1Api) -> None:
    node = core.read_node("node-1")
    assert node.status.allocatable["cpu"] == "4"
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    assert node.status.daemon_endpoints.kubelet_endpoint.port > 0


def test_deployment_pods_run_ready_serve_the_same_port_and_are_listed_in_the_endpoint_slice(
    k8s_cluster: K8sCluster, core: client.CoreV1Api, k8s_namespace: str, k8s_images: LocalImages
) -> None:
    ns = k8s_namespace
    http = {"httpGet": {"path": "/", "port": "web"}, "periodSeconds": 1}
    container = {
        "name": "web",
        "image": k8s_images.modelhost_image(),
        "command": ["python"],
        "args": ["-u", "-m", "http.server", "--bind", "0.0.0.0", "8080"],
        "ports": [{"name": "web", "containerPort": 8080}],
        "readinessProbe": http,
    }
    labels = {"app": "web"}
    deployment = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 5},
            },
        },
    }
    service = {
        "metadata": {"name": "web"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    with k8s_cluster.api_client() as api:
        apps = client.AppsV1Api(api)
        apps.create_namespaced_deployment(ns, deployment)
        core.create_namespaced_service(ns, service)
        wait_until(
            lambda: len(core.list_namespaced_pod(ns, label_selector="app=web").items) == 2,
            30,
            what="the Deployment's two pods",
        )
        names = [p.metadata.name for p in core.list_namespaced_pod(ns, label_selector="app=web").items]
        pods = [
            _wait_pod(core, ns, n, lambda p: _condition(p, "Ready").get("status") == "True", "Ready")
            for n in names
        ]
        ips = {p["status"]["podIP"] for p in pods}
        assert len(ips) == 2 and all(ip.startswith("127.1.") for ip in ips), ips
        assert {p["spec"]["nodeName"] for p in pods} == {"node-1"}
        for ip in ips:  # both bound "0.0.0.0:8080": each got its own address
            assert _http_get(f"http://{ip}:8080/")[0] == 200

        slices = client.CustomObjectsApi(api)

        def slice_lists_both() -> bool:
            items = slices.list_namespaced_custom_object(
                "discovery.k8s.io",
                "v1beta1",
                ns,
                "endpointslices",
                label_selector="kubernetes.io/service-name=web",
            )["items"]
            ready = {
                a
                for s in items
                for e in s.get("endpoints") or []
                if e["conditions"].get("ready")
                for a in e["addresses"]
            }
            return ready == ips

        wait_until(slice_lists_both, 30, 0.2, what="EndpointSlice with both pods' ready addresses")
        wait_until(
            lambda: (
                "GET / HTTP" in core.read_namespaced_pod_log(names[0], ns, container="web", tail_lines=50)
            ),
            20,
            0.2,
            what="the request in the pod's log",
        )

        pids = [pid for n in names for pid in _pod_pids(n)]
        apps.delete_namespaced_deployment("web", ns, propagation_policy="Foreground")
        wait_until(
            lambda: not core.list_namespaced_pod(ns, label_selector="app=web").items,
            30,
            0.2,
            what="the pods deleted",
        )
        wait_until(lambda: not any(_alive(p) for p in pids), 10, 0.1, what="the pods' processes ended")


def _pod_pids(name: str) -> list[int]:
    """The pids whose command line mentions http.server and run with this pod's address."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    env = f.read()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if (
                b"http.server" in cmd
                and b"MODELHOST_TEST_POD_IP=" in env
                and f"HOSTNAME={name}".encode() in env
            ):
                pids.append(int(entry))
    assert pids, f"no process found for pod {name}"
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_env_volumes_and_init_containers_reach_the_process(
    core: client.CoreV1Api, k8s_namespace: str, k8s_images: LocalImages
) -> None:
    ns = k8s_namespace
    core.create_namespaced_secret(
        ns, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cret-value"}}
    )
    core.create_namespaced_config_map(ns, {"metadata": {"name": "conf"}, "data": {"mode": "fast"}})
    root = "/var/modelhost-test"
    script = (
        "import os, pathlib; e = os.environ; "
        "print('ENV', e['TOKEN'], e['MODE'], e['ME'], e['GREETING']); "
        f"print('FILE', pathlib.Path('{root}/creds/token').read_text()); "
        f"print('INIT', pathlib.Path('{root}/work/from-init').read_text()); print('CWD', os.getcwd())"
    )
    image = k8s_images.modelhost_image()
    pod = _pod(
        "env",
        image,
        ["python", "-c", script],
        env=[
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "mode"}}},
            {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "GREETING", "value": "hello-$(ME)"},
        ],
        workingDir="/var/modelhost-test/work",
        volumeMounts=[
            {"name": "creds", "mountPath": "/var/modelhost-test/creds", "readOnly": True},
            {"name": "work", "mountPath": "/var/modelhost-test/work"},
        ],
    )
    pod["spec"]["restartPolicy"] = "Never"
    pod["spec"]["volumes"] = [
        {"name": "creds", "secret": {"secretName": "creds"}},
        {"name": "work", "emptyDir": {}},
    ]
    pod["spec"]["initContainers"] = [
        {
            "name": "init",
            "image": image,
            "command": ["sh", "-c", "echo from-init > /var/modelhost-test/work/from-init"],
            "volumeMounts": [{"name": "work", "mountPath": "/var/modelhost-test/work"}],
        }
    ]
    core.create_namespaced_pod(ns, pod)
    done = _wait_pod(core, ns, "env", lambda p: p["status"].get("phase") == "Succeeded", "Succeeded")
    assert done["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    out = core.read_namespaced_pod_log("env", ns, container="main")
    assert "ENV s3cret-value fast env hello-env" in out
    assert "FILE s3cret-value" in out
    assert "INIT from-init" in out
    assert "CWD /var/modelhost-test/work" in out
    # the mounts lived only in the process's private mount namespace
    assert not os.path.exists("/var/modelhost-test/creds/token")


def test_pod_asking_for_more_cpu_than_any_node_stays_unschedulable(
    core: client.CoreV1Api, k8s_namespace: str, k8s_images: LocalImages
) -> None:
    pod = _pod(
        "big", k8s_images.modelhost_image(), ["python", "-c", "pass"], resources={"requests": {"cpu": "64"}}
    )
    core.create_namespaced_pod(k8s_namespace, pod)
    seen = _wait_pod(
        core,
        k8s_namespace,
        "big",
        lambda p: _condition(p, "PodScheduled").get("reason"),
        "a PodScheduled condition",
    )
    cond = _condition(seen, "PodScheduled")
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert "Insufficient cpu" in cond["message"]
    assert seen["status"]["phase"] == "Pending"


def test_crashing_container_reaches_crash_loop_back_off_with_previous_logs(
    core: client.CoreV1Api, k8s_namespace: str, k8s_images: LocalImages
) -> None:
    ns = k8s_namespace
    pod = _pod(
        "crash",
        k8s_images.modelhost_image(),
        ["python", "-c", "import sys; print('boom', flush=True); sys.exit(3)"],
    )
    core.create_namespaced_pod(ns, pod)

    def crash_looping(p: Obj) -> bool:
        status = (p["status"].get("containerStatuses") or [{}])[0]
        return (
            status.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
            and status.get("restartCount", 0) >= 1
        )

    seen = _wait_pod(core, ns, "crash", crash_looping, "CrashLoopBackOff after a restart")
    status = seen["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status["ready"] is False
    assert "boom" in core.read_namespaced_pod_log("crash", ns, container="main", previous=True)


def test_unknown_image_waits_in_image_pull_back_off(core: client.CoreV1Api, k8s_namespace: str) -> None:
    pod = _pod("nopull", "registry.invalid/nothing-here:1", ["python", "-c", "pass"])
    core.create_namespaced_pod(k8s_namespace, pod)

    def backing_off(p: Obj) -> bool:
        waiting = (p["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting", {})
        return waiting.get("reason") == "ImagePullBackOff"

    seen = _wait_pod(core, k8s_namespace, "nopull", backing_off, "ImagePullBackOff", 30)
    waiting = seen["status"]["containerStatuses"][0]["state"]["waiting"]
    assert "registry.invalid/nothing-here:1" in waiting["message"]
    assert seen["status"]["phase"] == "Pending"


def test_gpu_pod_lands_on_the_gpu_node(
    core: client.CoreV1Api, k8s_namespace: str, k8s_images: LocalImages, k8s_gpu_node: NodeAgent
) -> None:
    pod = _pod(
        "gpu",
        k8s_images.modelhost_image(),
        ["python", "-c", "import time; time.sleep(60)"],
        resources={"limits": {"nvidia.com/gpu": "1"}},
    )
    pod["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    core.create_namespaced_pod(k8s_namespace, pod)
    seen = _wait_pod(core, k8s_namespace, "gpu", lambda p: p["status"].get("phase") == "Running", "Running")
    assert seen["spec"]["nodeName"] == "gpu-node-1"
    assert seen["status"]["podIP"].startswith("127.2.")


def test_limited_identity_is_refused_by_rbac(k8s_cluster: K8sCluster, k8s_namespace: str) -> None:
    with k8s_cluster.api_client("limited") as api, pytest.raises(client.ApiException) as err:
        client.CoreV1Api(api).list_namespaced_pod(k8s_namespace)
    assert err.value.status == 403
    assert "limited" in k8s_cluster.kubeconfig_for("limited").read_text()


def test_registry_answers_the_v2_api(oci_registry: OciRegistry) -> None:
    status, _ = _http_get(f"{oci_registry.url}/v2/")
    assert status == 200


def test_failing_liveness_probe_restarts_the_container(
    core: client.CoreV1Api, k8s_namespace: str, k8s_images: LocalImages
) -> None:
    probe = {"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 1}
    pod = _pod("sick", k8s_images.modelhost_image(), ["sleep", "60"], livenessProbe=probe)
    core.create_namespaced_pod(k8s_namespace, pod)

    def restarted(p: Obj) -> bool:
        status = (p["status"].get("containerStatuses") or [{}])[0]
        return bool(status.get("restartCount", 0) >= 1 and status.get("lastState", {}).get("terminated"))

    seen = _wait_pod(core, k8s_namespace, "sick", restarted, "a restart after the liveness probe failed")
    assert seen["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137


def test_deletion_runs_pre_stop_then_ends_the_pod(
    core: client.CoreV1Api, k8s_namespace: str, k8s_images: LocalImages, tmp_path: Path
) -> None:
    stop = ["sh", "-c", "echo drained > /var/modelhost-test/data/pre-stop"]
    hook = {"preStop": {"exec": {"command": stop}}}
    pod = _pod(
        "stopper", k8s_images.modelhost_image(), ["sleep", "60"], lifecycle=hook,
        volumeMounts=[{"name": "data", "mountPath": "/var/modelhost-test/data"}],
    )  # fmt: skip
    pod["spec"]["volumes"] = [{"name": "data", "hostPath": {"path": str(tmp_path)}}]
    core.create_namespaced_pod(k8s_namespace, pod)
    _wait_pod(core, k8s_namespace, "stopper", lambda p: p["status"].get("phase") == "Running", "Running")
    core.delete_namespaced_pod("stopper", k8s_namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_pod("stopper", k8s_namespace)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, 20, 0.2, what="the pod deleted")
    assert (tmp_path / "pre-stop").read_text() == "drained\n"


def test_logs_follow_streams_until_the_container_exits_and_waiting_containers_say_so(
    core: client.CoreV1Api, k8s_namespace: str, k8s_images: LocalImages
) -> None:
    script = "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.3)"
    pod = _pod("talker", k8s_images.modelhost_image(), ["python", "-c", script])
    pod["spec"]["restartPolicy"] = "Never"
    core.create_namespaced_pod(k8s_namespace, pod)
    _wait_pod(core, k8s_namespace, "talker", lambda p: p["status"].get("phase") != "Pending", "started")
    resp: Any = core.read_namespaced_pod_log("talker", k8s_namespace, follow=True, _preload_content=False)
    assert resp.data.decode().splitlines() == ["line 0", "line 1", "line 2"]
    assert core.read_namespaced_pod_log("talker", k8s_namespace, tail_lines=1) == "line 2\n"

    core.create_namespaced_pod(k8s_namespace, _pod("never", "registry.invalid/x:1", ["true"]))
    _wait_pod(core, k8s_namespace, "never", lambda p: p["status"].get("containerStatuses"), "a status")
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_pod_log("never", k8s_namespace)
    assert err.value.status == 400
    assert "is waiting to start" in str(err.value.body)


def test_job_pod_completes_and_the_job_controller_sees_it(
    k8s_cluster: K8sCluster, core: client.CoreV1Api, k8s_namespace: str, k8s_images: LocalImages
) -> None:
    template = _pod("job", k8s_images.modelhost_image(), ["python", "-c", "print('built')"])
    template["spec"]["restartPolicy"] = "Never"
    job = {"metadata": {"name": "build"}, "spec": {"backoffLimit": 0, "template": template}}
    with k8s_cluster.api_client() as api:
        batch = client.BatchV1Api(api)
        batch.create_namespaced_job(k8s_namespace, job)
        wait_until(
            lambda: (batch.read_namespaced_job_status("build", k8s_namespace).status.succeeded or 0) == 1,
            30,
            0.2,
            what="the Job succeeded",
        )
    pods = core.list_namespaced_pod(k8s_namespace, label_selector="job-name=build").items
    assert [p.status.phase for p in pods] == ["Succeeded"]
    assert core.read_namespaced_pod_log(pods[0].metadata.name, k8s_namespace) == "built\n"
