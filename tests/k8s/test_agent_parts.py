"""The node agent's pure parts, without a cluster: env and command expansion, volumes, log tails,
image resolution."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.k8s.container import Container, Launcher, Timings
from tests.support.k8s.images import LocalImages, split_reference
from tests.support.k8s.kubelet_server import tail_bytes
from tests.support.k8s.pod_env import ConfigError, command_line, container_env, expand
from tests.support.k8s.process import ProcessRun
from tests.support.k8s.volumes import container_mounts, materialise_volumes

POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "a"}},
    "spec": {"nodeName": "node-1", "containers": [{"name": "c", "resources": {"limits": {"memory": "1Gi"}}}]},
    "status": {"podIP": "127.1.0.9"},
}
NAME = {"fieldPath": "metadata.name"}
DATA = {("secret", "s"): {"k": "secret-v"}, ("configmap", "m"): {"a": "1", "b": "2"}}


def lookup(kind: str, name: str) -> dict[str, str] | None:
    return DATA.get((kind, name))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)-x", "1-x"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("a$$b", "a$b"),
        ("$(A)$(B)", "12"),
    ],
    ids=["defined", "undefined-kept", "escaped", "dollar-dollar", "adjacent"],
)
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expected


def test_container_env_resolves_every_source_in_order() -> None:
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "m"}, "prefix": "CM_"}],
        "env": [
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "URL", "value": "http://$(IP):$(CM_a)"},
        ],
    }
    env = container_env(POD, container, lookup, {"cpu": "4"}, {"PATH": "/bin"})
    assert env == {
        "PATH": "/bin", "CM_a": "1", "CM_b": "2", "S": "secret-v", "IP": "127.1.0.9", "APP": "a",
        "MEM": "1024", "CPU": "4", "URL": "http://127.1.0.9:1",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("var", "message"),
    [
        ({"valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}, 'secret "nope" not found'),
        ({"valueFrom": {"secretKeyRef": {"name": "s", "key": "x"}}}, "couldn't find key x"),
        ({"valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}, "unsupported fieldRef"),
    ],
    ids=["missing-secret", "missing-key", "bad-field"],
)
def test_container_env_names_what_is_missing(var: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        container_env(POD, {"name": "c", "env": [{"name": "X", **var}]}, lookup, {}, {})


def test_optional_missing_reference_is_left_out() -> None:
    var = {"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}}
    assert "X" not in container_env(POD, {"name": "c", "env": [var]}, lookup, {}, {})


def test_command_line_combines_with_the_image_defaults() -> None:
    env = {"PORT": "5001"}
    assert command_line({"command": ["srv"], "args": ["--port", "$(PORT)"]}, ("ep",), ("cmd",), env) == [
        "srv", "--port", "5001",
    ]  # fmt: skip
    assert command_line({"args": ["x"]}, ("ep",), ("cmd",), env) == ["ep", "x"]
    assert command_line({}, ("ep",), ("cmd",), env) == ["ep", "cmd"]
    with pytest.raises(ConfigError, match="no command"):
        command_line({}, (), (), env)


def test_volumes_are_written_and_mounted_parents_first(tmp_path: Path) -> None:
    pod = {
        **POD,
        "spec": {
            "volumes": [
                {"name": "sec", "secret": {"secretName": "s", "items": [{"key": "k", "path": "dir/key"}]}},
                {"name": "conf", "configMap": {"name": "m"}},
                {"name": "down", "downwardAPI": {"items": [{"path": "name", "fieldRef": NAME}]}},
                {"name": "scratch", "emptyDir": {}},
            ]
        },
    }  # fmt: skip
    paths = materialise_volumes(pod, tmp_path, lookup)
    assert (paths["sec"] / "dir" / "key").read_text() == "secret-v"
    assert (paths["conf"] / "b").read_text() == "2"
    assert (paths["down"] / "name").read_text() == "p"
    container = {"volumeMounts": [
        {"name": "sec", "mountPath": "/app/secrets", "readOnly": True},
        {"name": "scratch", "mountPath": "/app"},
    ]}  # fmt: skip
    mounts = container_mounts(container, paths)
    assert [m.target for m in mounts] == ["/app", "/app/secrets"]
    assert mounts[1].read_only


def test_unsupported_volume_and_missing_secret_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not supported"):
        materialise_volumes(
            {"spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {}}]}}, tmp_path, lookup
        )
    with pytest.raises(ConfigError, match='secret "gone" not found'):
        materialise_volumes(
            {"spec": {"volumes": [{"name": "v", "secret": {"secretName": "gone"}}]}}, tmp_path, lookup
        )


@pytest.mark.parametrize(
    ("lines", "limit", "expected"),
    [(None, None, b"a\nb\nc"), (2, None, b"b\nc"), (0, None, b""), (5, None, b"a\nb\nc"), (2, 3, b"b\nc")],
    ids=["all", "tail-2", "tail-0", "tail-more", "tail-then-limit"],
)
def test_tail_bytes(lines: int | None, limit: int | None, expected: bytes) -> None:
    assert tail_bytes(b"a\nb\nc", lines, limit) == expected


def test_local_images_resolve_modelhost_envs_and_registered_digests(tmp_path: Path) -> None:
    (tmp_path / "abc123" / "bin").mkdir(parents=True)
    images = LocalImages(tmp_path)
    assert images(images.modelhost_image()).prefix == Path(sys.prefix)  # type: ignore[union-attr]
    assert images("docker.io/modelhost/modelhost:1.0").prefix == Path(sys.prefix)  # type: ignore[union-attr]
    assert images("127.0.0.1:5000/modelhost-env:abc123").prefix == tmp_path / "abc123"  # type: ignore[union-attr]
    assert images("127.0.0.1:5000/modelhost-env:missing") is None
    assert images("reg.io/other@sha256:ff") is None
    images.register("sha256:ff", tmp_path / "abc123")
    assert images("reg.io/other@sha256:ff").prefix == tmp_path / "abc123"  # type: ignore[union-attr]
    assert split_reference("localhost:5000/a/b:t@sha256:d") == ("localhost:5000/a/b", "t", "sha256:d")


def _exiting(code: int) -> Launcher:
    def launch(ct: Container) -> ProcessRun:
        return ProcessRun(["sh", "-c", f"echo run; exit {code}"], {"PATH": "/usr/bin:/bin"}, [], None,
                          ct.log_path_for_next())  # fmt: skip

    return launch


@pytest.mark.skipif(os.geteuid() != 0, reason="the node agent's mount namespaces need root")
def test_restarts_back_off_exponentially_then_report_crash_loop(tmp_path: Path) -> None:
    c = Container({"name": "x"}, "", tmp_path, Timings(backoff_base_s=1, backoff_max_s=4), "Always")
    now, delays = 100.0, []
    for _ in range(5):
        assert c.can_start(now)
        c.start(_exiting(3), now)
        assert c.run is not None
        c.run.popen.wait(10)
        c.step(now, "127.0.0.1", {})
        delays.append(c.next_start - now)
        now = c.next_start
    assert delays == [0, 1, 2, 4, 4]  # the first restart is immediate, as a kubelet's
    status = c.status()
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status["restartCount"] == 4
    assert len(c.runs) == 5 and c.runs[-1].read_text() == "run\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="the node agent's mount namespaces need root")
@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [("OnFailure", 0, False), ("OnFailure", 1, True), ("Never", 1, False), ("Always", 0, True)],
    ids=["onfailure-success", "onfailure-failure", "never", "always-success"],
)
def test_restart_policy_decides_what_an_exit_leads_to(
    tmp_path: Path, policy: str, code: int, restarts: bool
) -> None:
    c = Container({"name": "x"}, "", tmp_path, Timings(), policy)
    c.start(_exiting(code), 0.0)
    assert c.run is not None
    c.run.popen.wait(10)
    c.step(0.0, "127.0.0.1", {})
    assert (c.terminated is None) is restarts
    if not restarts:
        assert c.status()["state"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")
