"""The Kubernetes runtime's status derivation, over hand-built pod and Deployment dicts shaped as the
API server sends them (fields as in `kubectl get -o json` of a 1.20 to 1.30 cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.runtime import k8s_status as ks
from modelhost.runtime.k8s_status import StatusPolicy

T0 = "2026-11-23T16:00:00Z"
NOW = ks.parse_time(T0) or 0.0
UNSCHEDULABLE = "0/1 nodes are available: 1 Insufficient cpu."
IMAGE = "registry.test/modelhost-env:" + "a" * 64


def _labels(generation: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "modelhost-replica",
        "modelhost.io/service": "svc",
        "modelhost.io/generation": str(generation),
    }


def deployment(generation: int, replicas: int | None = 1, progressing: tuple[str, str] | None = None) -> Any:
    conditions = []
    if progressing is not None:
        conditions.append(
            {
                "type": "Progressing",
                "status": progressing[0],
                "reason": progressing[1],
                "message": "timed out",
            }
        )
    spec = {} if replicas is None else {"replicas": replicas}
    return {
        "metadata": {"name": f"svc-g{generation}", "labels": _labels(generation)},
        "spec": spec,
        "status": {"conditions": conditions},
    }


def running(restarts: int = 0, last_exit: int | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "scoring", "restartCount": restarts, "state": {"running": {"startedAt": T0}}}
    if last_exit is not None:
        c["lastState"] = {"terminated": {"exitCode": last_exit, "reason": "Error"}}
    return c


def fetch_done() -> dict[str, Any]:
    return {
        "name": "fetch",
        "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
    }


def pod(
    name: str = "svc-g1-abc-x1",
    generation: int = 1,
    *,
    ready: bool = False,
    scheduled: tuple[str, str | None, str | None] = ("True", None, None),
    init: list[dict[str, Any]] | None = None,
    main: list[dict[str, Any]] | None = None,
    deleting: bool = False,
    created: str = T0,
    ip: str = "127.1.0.5",
) -> dict[str, Any]:
    conditions = [
        {"type": "PodScheduled", "status": scheduled[0], "reason": scheduled[1], "message": scheduled[2]},
        {"type": "Ready", "status": "True" if ready else "False"},
    ]
    meta: dict[str, Any] = {"name": name, "labels": _labels(generation), "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = T0
    status: dict[str, Any] = {"conditions": conditions, "startTime": created}
    if scheduled[0] == "True":
        status["podIP"] = ip
        status["initContainerStatuses"] = init if init is not None else [fetch_done()]
        status["containerStatuses"] = main if main is not None else [running()]
    return {
        "metadata": meta,
        "spec": {
            "initContainers": [{"name": "fetch", "image": IMAGE}],
            "containers": [{"name": "scoring", "image": IMAGE}],
        },
        "status": status,
    }


def crash_looping(restarts: int, exit_code: int = 3) -> dict[str, Any]:
    return {
        "name": "scoring",
        "restartCount": restarts,
        "state": {
            "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}
        },
        "lastState": {"terminated": {"exitCode": exit_code, "reason": "Error"}},
    }


def test_ready_pod_is_a_ready_replica_at_its_ip() -> None:
    r = ks.replica_status(pod(ready=True), service="svc", now=NOW, ever_ready=True)
    assert (r.state, r.host, r.port, r.pid, r.generation, r.id) == (
        "ready",
        "127.1.0.5",
        5001,
        None,
        1,
        "svc-g1-abc-x1",
    )
    assert r.started_at == NOW and r.last_error is None


@pytest.mark.parametrize(
    ("age_s", "state", "wording"),
    [
        (5, "starting", "cannot be scheduled yet"),
        (299, "starting", "cannot be scheduled yet"),
        (300, "failed", "after trying for 00:05:00"),
    ],
    ids=["at-once", "just-before-timeout", "at-timeout"],
)
def test_unschedulable_carries_the_scheduler_message(age_s: float, state: str, wording: str) -> None:
    p = pod(scheduled=("False", "Unschedulable", UNSCHEDULABLE))
    st = ks.service_status("svc", [deployment(1)], [p], now=NOW + age_s)
    assert st.replicas[0].state == state
    assert st.error is not None and UNSCHEDULABLE in st.error and wording in st.error
    assert st.state == ("Failed" if state == "failed" else "Transitioning")


def test_schedule_timeout_is_a_policy() -> None:
    p = pod(scheduled=("False", "Unschedulable", UNSCHEDULABLE))
    st = ks.service_status(
        "svc", [deployment(1)], [p], now=NOW + 11, policy=StatusPolicy(schedule_timeout_s=10)
    )
    assert st.state == "Failed" and "00:00:10" in (st.error or "")


def test_crash_loop_of_init_fails_with_v1_wording_and_log_lines() -> None:
    p = pod(main=[crash_looping(2)])
    lines = ["Traceback (most recent call last):", "RuntimeError: boom: cannot load the model file"]
    st = ks.service_status("svc", [deployment(1)], [p], now=NOW, logs={"svc-g1-abc-x1": lines})
    assert st.state == "Failed"
    assert st.error is not None
    assert "Your container application crashed" in st.error
    assert "init() failed" in st.error and "CrashLoopBackOff" in st.error
    assert "boom: cannot load the model file" in st.error
    assert st.replicas[0].state == "failed" and st.replicas[0].restarts == 2


def test_crash_after_serving_is_unhealthy_not_failed() -> None:
    p = pod(main=[crash_looping(1, exit_code=137)])
    st = ks.service_status("svc", [deployment(1)], [p], now=NOW, ever_ready={"svc-g1-abc-x1"})
    assert st.replicas[0].state == "crashed"
    assert st.state == "Unhealthy"
    assert "exited with code 137" in (st.error or "")


def test_first_exit_without_backoff_is_still_starting() -> None:
    main = [
        {"name": "scoring", "restartCount": 0, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}
    ]
    r = ks.replica_status(pod(main=main), service="svc", now=NOW, ever_ready=False)
    assert r.state == "starting" and "init() failed" in (r.last_error or "")


def test_restarts_beyond_the_policy_fail_even_without_backoff_reason() -> None:
    main = [running(restarts=3, last_exit=1)]
    main[0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    r = ks.replica_status(pod(main=main), service="svc", now=NOW, ever_ready=False, log_lines=["boom"])
    assert r.state == "failed"


def test_failed_waits_for_the_crash_log_then_reports_without_it() -> None:
    """A crash's log can lag its status: no lines yet means 'starting' for crash_log_wait_s after
    the pod started, then Failed saying the replica wrote nothing."""
    p = pod(main=[crash_looping(2)])
    policy = ks.StatusPolicy(crash_log_wait_s=30)
    early = ks.replica_status(p, service="svc", now=NOW + 5, ever_ready=False, policy=policy)
    assert early.state == "starting" and "reading its log" in (early.last_error or "")
    late = ks.replica_status(p, service="svc", now=NOW + 31, ever_ready=False, policy=policy)
    assert late.state == "failed" and "(the replica wrote nothing)" in (late.last_error or "")


def test_failing_fetch_init_container_is_named() -> None:
    init = [
        {
            "name": "fetch",
            "restartCount": 1,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 10, "reason": "Error"}},
        }
    ]
    main = [{"name": "scoring", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]
    p = pod(init=init, main=main)
    st = ks.service_status(
        "svc", [deployment(1)], [p], now=NOW, logs={"svc-g1-abc-x1": ["fetch: error: 401"]}
    )
    assert st.state == "Failed"
    assert "init container fetch" in (st.error or "") and "code 10" in (st.error or "")
    assert ks.crash_logs_wanted([p], ()) == [("svc-g1-abc-x1", "fetch")]
    assert ks.crash_logs_wanted([p], {"svc-g1-abc-x1"}) == []  # a pod that served: no failure message


@pytest.mark.parametrize(
    ("reason", "state"),
    [("ErrImagePull", "starting"), ("ImagePullBackOff", "failed"), ("InvalidImageName", "failed")],
)
def test_image_pull_errors_name_the_image(reason: str, state: str) -> None:
    init = [
        {"name": "fetch", "restartCount": 0, "state": {"waiting": {"reason": reason, "message": "not found"}}}
    ]
    main = [{"name": "scoring", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]
    st = ks.service_status("svc", [deployment(1)], [pod(init=init, main=main)], now=NOW)
    assert st.replicas[0].state == state
    assert IMAGE in (st.error or "") and reason in (st.error or "")
    assert st.state == ("Failed" if state == "failed" else "Transitioning")


def test_progress_deadline_exceeded_fails_the_service() -> None:
    st = ks.service_status(
        "svc", [deployment(1, progressing=("False", "ProgressDeadlineExceeded"))], [pod()], now=NOW
    )
    assert st.state == "Failed" and "svc-g1" in (st.error or "") and "deadline" in (st.error or "")


def test_healthy_needs_every_wanted_replica_ready() -> None:
    pods = [pod("svc-g1-a-1", ready=True), pod("svc-g1-a-2", ip="127.1.0.6")]
    st = ks.service_status("svc", [deployment(1, replicas=2)], pods, now=NOW, ever_ready={"svc-g1-a-1"})
    assert (st.state, st.desired_replicas, len(st.ready)) == ("Transitioning", 2, 1)
    pods[1] = pod("svc-g1-a-2", ready=True, ip="127.1.0.6")
    st = ks.service_status("svc", [deployment(1, replicas=2)], pods, now=NOW)
    assert st.state == "Healthy" and st.error is None


def test_deleting_pods_are_stopping_and_not_counted() -> None:
    pods = [pod("svc-g1-a-1", ready=True), pod("svc-g1-a-2", ready=True, deleting=True)]
    st = ks.service_status("svc", [deployment(1, replicas=1)], pods, now=NOW)
    assert [r.state for r in st.replicas] == ["ready", "stopping"]
    assert st.state == "Healthy"


def test_rolling_update_reports_both_generations_and_retires_the_old_when_new_is_ready() -> None:
    deps = [deployment(1, replicas=2), deployment(2, replicas=2)]
    pods = [
        pod("svc-g1-a-1", ready=True),
        pod("svc-g1-a-2", ready=True),
        pod("svc-g2-b-1", generation=2, ready=True),
        pod("svc-g2-b-2", generation=2),
    ]
    st = ks.service_status("svc", deps, pods, now=NOW)
    assert st.generation == 2 and st.desired_replicas == 2 and st.state == "Transitioning"
    assert [r.generation for r in st.replicas] == [1, 1, 2, 2]
    assert ks.retired_deployments(deps, pods) == []
    pods[3] = pod("svc-g2-b-2", generation=2, ready=True)
    assert ks.retired_deployments(deps, pods) == ["svc-g1"]
    assert ks.retired_deployments(deps[1:], pods) == []


def test_replicas_default_to_one_when_the_api_omits_them() -> None:
    st = ks.service_status("svc", [deployment(1, replicas=None)], [pod(ready=True)], now=NOW)
    assert st.desired_replicas == 1 and st.state == "Healthy"


def test_no_deployment_yet() -> None:
    st = ks.service_status("svc", [], [], now=NOW)
    assert (st.generation, st.desired_replicas, st.replicas, st.state) == (0, 0, (), "Healthy")
