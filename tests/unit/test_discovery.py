"""control.json and the admin token: private files, stale entries, process liveness."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from modelhost.control import discovery
from modelhost.sdk import local
from modelhost.sdk.local import ControlInfo


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_private_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "sub" / "secret"
        discovery.write_private(path, "x")
    finally:
        os.umask(old)
    assert path.read_text() == "x" and _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no temporary left behind


def test_token_is_created_once_and_kept_private(tmp_path: Path) -> None:
    first = discovery.load_or_create_token(tmp_path)
    assert len(first) >= 40
    assert discovery.load_or_create_token(tmp_path) == first
    token_file = discovery.token_file(tmp_path)
    token_file.chmod(0o644)
    assert discovery.load_or_create_token(tmp_path) == first
    assert _mode(token_file) == 0o600


def test_info_round_trip_and_removal_only_by_its_pid(tmp_path: Path) -> None:
    path = tmp_path / "control.json"
    info = ControlInfo(url="http://127.0.0.1:8790", token="t", pid=4242, version="0.1.0")
    discovery.write_info(path, info)
    assert local.read_info(path) == info and _mode(path) == 0o600
    discovery.remove_info(path, 1)
    assert path.exists()
    discovery.remove_info(path, 4242)
    assert not path.exists()
    discovery.remove_info(path, 4242)  # already gone: fine


@pytest.mark.parametrize(
    "content",
    ["", "not json", "[]", '{"url": "x"}', '{"url": "x", "token": "t", "pid": "a"}'],
    ids=["empty", "garbage", "list", "missing-keys", "bad-pid"],
)
def test_unreadable_info_reads_as_none(tmp_path: Path, content: str) -> None:
    path = tmp_path / "control.json"
    path.write_text(content)
    assert local.read_info(path) is None
    assert local.read_info(tmp_path / "absent.json") is None


def test_pid_alive_sees_through_zombies() -> None:
    assert local.pid_alive(os.getpid())
    assert not local.pid_alive(0) and not local.pid_alive(-5)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
        if sys.platform.startswith("linux"):
            assert not local.pid_alive(child.pid)
    finally:
        child.wait()
    assert not local.pid_alive(child.pid)
