"""The control-plane process: auto-start, discovery, the token, up/down/status and start failures."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from modelhost.control import discovery
from modelhost.errors import AuthenticationError, ConflictError
from modelhost.sdk import Model, Workspace, local
from modelhost.store.artifacts import ArtifactStore
from tests.e2e.control.conftest import CLI, Home
from tests.support.net import wait_until


def _mode(path: os.PathLike[str]) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _one_error_line(stderr: str, *, logs_allowed: bool = False) -> str:
    """The one error line; a foreground ``up`` may log before it, nothing else prints more."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    if not logs_allowed:
        assert lines == errors, stderr
    return errors[0]


def test_sdk_autostarts_once_and_down_stops_it(home: Home) -> None:
    assert not home.settings.discovery_file.exists()
    ws = Workspace()
    info = local.read_info(home.settings.discovery_file)
    assert info is not None and info.url == ws.url
    assert info.url == f"http://127.0.0.1:{home.env['MODELHOST_CONTROL_PORT']}"
    assert _mode(home.settings.discovery_file) == 0o600
    assert _mode(discovery.token_file(home.settings.home)) == 0o600
    assert ws.get_details()["pid"] == info.pid
    assert (home.settings.logs_dir / "control.log").exists()

    again = Workspace()  # found through control.json, not started twice
    assert again.get_details()["pid"] == info.pid

    status = home.cli("status")
    assert status.returncode == 0, status.stderr
    assert info.url in status.stdout and str(info.pid) in status.stdout

    down = home.cli("down")
    assert down.returncode == 0, down.stderr
    assert f"pid {info.pid}" in down.stdout
    assert not local.pid_alive(info.pid)
    assert not home.settings.discovery_file.exists()

    status = home.cli("status")
    assert status.returncode == 1
    assert "not running" in status.stderr
    assert "no control plane runs" in home.cli("down").stdout


def test_every_api_call_needs_the_admin_token(home: Home) -> None:
    ws = Workspace()
    token = discovery.load_or_create_token(home.settings.home)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
        response = httpx.get(f"{ws.url}/api/v1/models", headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == AuthenticationError.code and "/api/v1/models" in error["message"]
    ok = httpx.get(f"{ws.url}/api/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json() == {"value": []}
    assert httpx.get(f"{ws.url}/healthz").json()["status"] == "ok"
    schema = httpx.get(f"{ws.url}/openapi.json").json()
    assert {"/api/v1/models", "/api/v1/blobs/{sha256}", "/api/v1/operations/{id}"} <= set(schema["paths"])
    missing = httpx.get(f"{ws.url}/api/v1/nothing-here", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    remote = Workspace(url=ws.url, token=token)  # a remote client: URL and token, no discovery file
    assert (
        remote.name == "ws" and remote.home is None and remote.get_details()["pid"] == ws.get_details()["pid"]
    )
    with pytest.raises(AuthenticationError):
        Workspace(url=ws.url, token="wrong").get_details()


def test_restart_keeps_the_token_and_collects_old_unreferenced_blobs(home: Home, tmp_path: Path) -> None:
    ws = Workspace()
    first_pid = ws.get_details()["pid"]
    token = discovery.load_or_create_token(home.settings.home)
    model_file = tmp_path / "kept.bin"
    model_file.write_bytes(b"referenced by a model")
    kept = Model.register(ws, model_file, "kept", show_output=False).files[0]["sha256"]
    artifacts = ArtifactStore(home.settings.blobs_dir)
    orphan, fresh_orphan = artifacts.put_bytes(b"nobody uses me"), artifacts.put_bytes(b"just uploaded")
    two_hours_ago = time.time() - 7200
    for digest in (kept, orphan):
        os.utime(artifacts.path(digest), (two_hours_ago, two_hours_ago))
    home.stop()

    assert Workspace().get_details()["pid"] != first_pid
    info = local.read_info(home.settings.discovery_file)
    assert info is not None and info.token == token
    assert artifacts.exists(kept) and artifacts.exists(fresh_orphan) and not artifacts.exists(orphan)


def test_two_clients_starting_at_once_get_one_server(home: Home) -> None:
    code = "from modelhost.sdk import Workspace; print(Workspace().get_details()['pid'])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=home.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    pids = {out.strip() for out, _ in outputs}
    assert len(pids) == 1
    info = local.read_info(home.settings.discovery_file)
    assert info is not None and pids == {str(info.pid)}


def test_stale_control_json_is_replaced(home: Home) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    home.settings.home.mkdir(parents=True)
    stale = local.ControlInfo(url="http://127.0.0.1:1", token="old", pid=dead.pid, version="0.0.1")
    discovery.write_info(home.settings.discovery_file, stale)
    ws = Workspace()
    info = local.read_info(home.settings.discovery_file)
    assert info is not None and info.pid != dead.pid and info.url == ws.url
    assert ws.get_details()["pid"] == info.pid


def test_up_in_the_foreground_and_down(home: Home) -> None:
    with (home.path / "up.out").open("wb") as out:
        proc = subprocess.Popen([CLI, "up"], env=home.env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: local.find_running(home.settings) is not None, 60, what="foreground control plane")
        info = local.find_running(home.settings)
        assert info is not None and info.pid == proc.pid
        again = home.cli("up")  # a second one for the same workspace is refused
        assert again.returncode != 0
        assert "already runs" in _one_error_line(again.stderr)
        detached = home.cli("up", "--detach")
        assert detached.returncode == 0 and "already running" in detached.stdout
        assert home.cli("down").returncode == 0
        assert proc.wait(timeout=30) == 0
        output = (home.path / "up.out").read_text()
        assert "control plane stopped" in output and "Traceback" not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_detach_with_port_option(home: Home) -> None:
    from tests.support.net import free_port

    port = free_port()
    result = home.cli("up", "--detach", "--port", str(port))
    assert result.returncode == 0, result.stderr
    assert f"http://127.0.0.1:{port}" in result.stdout
    info = local.read_info(home.settings.discovery_file)
    assert info is not None and info.url.endswith(f":{port}")
    assert Workspace().url == info.url  # clients find it through control.json, whatever the port


def test_port_taken_by_another_program(home: Home) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(home.env["MODELHOST_CONTROL_PORT"])))
        blocker.listen(1)
        result = home.cli("up", "--detach")
        line = _one_error_line(result.stderr)
        assert result.returncode != 0
        assert home.env["MODELHOST_CONTROL_PORT"] in line and "MODELHOST_CONTROL_PORT" in line
        with pytest.raises(ConflictError) as caught:
            Workspace()
        assert home.env["MODELHOST_CONTROL_PORT"] in str(caught.value)
    assert not home.settings.discovery_file.exists()


def test_unreachable_database_fails_the_start_with_its_reason(home: Home) -> None:
    bad = {"MODELHOST_DATABASE_URL": "postgresql+psycopg://x:y@127.0.0.1:1/db"}
    foreground = home.cli("up", extra_env=bad, timeout_s=60)
    assert foreground.returncode != 0
    line = _one_error_line(foreground.stderr, logs_allowed=True)
    assert "cannot open the store" in line and "127.0.0.1:1" in line and "y@" not in line
    autostart = home.cli("model", "list", extra_env=bad, timeout_s=90)
    assert autostart.returncode != 0
    assert "cannot open the store" in _one_error_line(autostart.stderr)
    assert not home.settings.discovery_file.exists()
    log = (home.settings.logs_dir / "control.log").read_text()
    assert "cannot open the store" in log
    marker_lines = [ln for ln in log.splitlines() if ln.startswith(local.START_ERROR_MARKER)]
    assert (
        json.loads(marker_lines[-1][len(local.START_ERROR_MARKER) :])["error"]["code"] == "store_unavailable"
    )


def test_cli_talks_to_a_remote_control_plane_with_url_and_token_file(home: Home, tmp_path: Path) -> None:
    ws = Workspace()
    model_file = tmp_path / "remote.bin"
    model_file.write_bytes(b"registered locally, listed remotely")
    Model.register(ws, model_file, "remote-model", show_output=False)
    token_file = tmp_path / "admin.token"
    token_file.write_text(discovery.load_or_create_token(home.settings.home) + "\n")
    token_file.chmod(0o600)
    # another, empty home: only MODELHOST_URL can make the model appear
    elsewhere = {**home.env, "MODELHOST_HOME": str(tmp_path / "elsewhere"), "MODELHOST_URL": ws.url}

    listed = home.cli("model", "list", extra_env={**elsewhere, "MODELHOST_TOKEN_FILE": str(token_file)})
    assert listed.returncode == 0, listed.stderr
    assert "remote-model" in listed.stdout
    assert not (tmp_path / "elsewhere" / "control.json").exists()  # nothing started locally

    no_file = home.cli("model", "list", extra_env=elsewhere)
    assert no_file.returncode != 0 and "MODELHOST_TOKEN_FILE is not set" in no_file.stderr

    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token")
    refused = home.cli("model", "list", extra_env={**elsewhere, "MODELHOST_TOKEN_FILE": str(wrong)})
    assert refused.returncode != 0 and "wrong token" in refused.stderr
    assert "not-the-token" not in refused.stderr + refused.stdout
