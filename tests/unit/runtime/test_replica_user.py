"""Who replicas run as, what they may reach, what they inherit (docs/security.md)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from modelhost.errors import ValidationError
from modelhost.runtime.file_copies import private_copy
from modelhost.runtime.inherited_env import inherited_env
from modelhost.runtime.layout import keep_outputs
from modelhost.runtime.replica_user import ReplicaUser, blocked_at, check_reachable, protect_home, resolve

USERS = {"nobody": ("nobody", 65534, 65534), "65534": ("nobody", 65534, 65534), "root": ("root", 0, 0)}


@pytest.mark.parametrize(
    ("value", "euid", "expected"),
    [
        (None, 0, None),
        ("", 0, None),
        ("nobody", 0, ReplicaUser("nobody", 65534, 65534)),
        ("65534", 0, ReplicaUser("nobody", 65534, 65534)),
        ("4242", 0, ReplicaUser("4242", 4242, 4242)),  # a uid without a passwd entry (containers)
        ("root", 0, None),  # the control plane's own user: nothing to drop
        ("nobody", 65534, None),
    ],
    ids=["unset", "empty", "name", "uid", "unknown-uid", "root-itself", "own-user"],
)
def test_resolve(value: str | None, euid: int, expected: ReplicaUser | None) -> None:
    assert resolve(value, euid, USERS.get) == expected


@pytest.mark.parametrize(
    ("value", "euid", "words"),
    [("no-such-user", 0, "is not a user"), ("nobody", 1000, "only root")],
    ids=["unknown-name", "not-root"],
)
def test_resolve_refuses(value: str, euid: int, words: str) -> None:
    with pytest.raises(ValidationError, match=words) as info:
        resolve(value, euid, USERS.get)
    assert "MODELHOST_REPLICA_USER" in info.value.message and info.value.hint


def _st(mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


TREE = {
    "/": _st(stat.S_IFDIR | 0o755),
    "/root": _st(stat.S_IFDIR | 0o700),
    "/root/bin": _st(stat.S_IFDIR | 0o755),
    "/root/bin/python": _st(stat.S_IFREG | 0o755),
    "/srv": _st(stat.S_IFDIR | 0o711),
    "/srv/python": _st(stat.S_IFREG | 0o755),
    "/srv/group-only": _st(stat.S_IFDIR | 0o710, gid=50),
    "/srv/group-only/python": _st(stat.S_IFREG | 0o755),
    "/srv/mine": _st(stat.S_IFDIR | 0o700, uid=65534),
    "/srv/mine/secret": _st(stat.S_IFREG | 0o600),
}


def _stat(path: Path) -> os.stat_result:
    try:
        return TREE[str(path)]
    except KeyError:
        raise FileNotFoundError(path) from None


@pytest.mark.parametrize(
    ("path", "gids", "bits", "blocked"),
    [
        ("/root/bin/python", {65534}, 1, "/root"),
        ("/srv/python", {65534}, 1, None),
        ("/srv/group-only/python", {65534}, 1, "/srv/group-only"),
        ("/srv/group-only/python", {50}, 1, None),
        ("/srv/mine/secret", {65534}, 4, "/srv/mine/secret"),
        ("/srv/missing", {65534}, 1, "/srv/missing"),
    ],
    ids=["root-home", "passable", "group-denied", "group-member", "unreadable-file", "missing"],
)
def test_blocked_at(path: str, gids: set[int], bits: int, blocked: str | None) -> None:
    found = blocked_at(Path(path), 65534, gids, bits, _stat)
    assert found == (None if blocked is None else Path(blocked))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_protect_home_narrows_secrets_and_opens_replica_paths(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    for folder in ("replicas", "envs", "router", "logs", "secrets"):
        (home / folder).mkdir(parents=True)
        (home / folder).chmod(0o755)
    for name in ("modelhost.db", "control.json"):
        (home / name).write_text("x")
        (home / name).chmod(0o644)
    home.chmod(0o755)
    protect_home(home, share_replicas=False)
    assert {p.name: _mode(p) for p in home.iterdir()} == {
        "replicas": 0o755, "envs": 0o755, "router": 0o700, "logs": 0o700, "secrets": 0o700,
        "modelhost.db": 0o600, "control.json": 0o600,
    }  # fmt: skip
    assert _mode(home) == 0o711
    protect_home(home, share_replicas=True)
    assert (_mode(home), _mode(home / "replicas"), _mode(home / "envs")) == (0o711, 0o711, 0o711)


@pytest.mark.parametrize("same_user", [True, False], ids=["same-user", "replica-user"])
def test_inherited_env_is_an_allow_list(same_user: bool) -> None:
    control_plane = {
        "PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/root", "TMPDIR": "/root/tmp",
        "MODELHOST_HOME": "/ws", "MODELHOST_ADMIN_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "k",
        "GITHUB_TOKEN": "g", "DB_PASSWORD": "p", "PYTHONPATH": "/x", "VIRTUAL_ENV": "/v",
        "HTTPS_PROXY": "http://user:pw@proxy", "CUDA_VISIBLE_DEVICES": "0",
    }  # fmt: skip
    expected = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    if same_user:
        expected |= {"HOME": "/root", "TMPDIR": "/root/tmp"}
    assert inherited_env(control_plane, same_user=same_user) == expected


def test_private_copy_breaks_a_hard_link_and_keeps_the_mode(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"weights")
    blob.chmod(0o444)
    link = tmp_path / "model.bin"
    os.link(blob, link)
    private_copy(link)
    assert link.read_bytes() == b"weights" and _mode(link) == 0o444
    assert link.stat().st_ino != blob.stat().st_ino and blob.stat().st_nlink == 1
    before = link.stat().st_ino
    private_copy(link)  # one link only: left alone
    assert link.stat().st_ino == before


def test_keep_outputs_ignores_an_outputs_folder_the_script_swapped_for_a_link(tmp_path: Path) -> None:
    """keep_outputs runs with the control plane's rights: it must not copy what a link points to."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret").write_text("not the replica's")
    folder = tmp_path / "replica"
    folder.mkdir()
    (folder / "outputs").symlink_to(elsewhere)
    keep_outputs(folder, tmp_path / "kept")
    assert not (tmp_path / "kept").exists()


def test_check_reachable_names_the_folder_in_the_way() -> None:
    nobody = ReplicaUser("nobody", 65534, 65534)
    # pytest's own temp folders sit in a 0700 folder: a passable one under /tmp instead
    with tempfile.TemporaryDirectory(prefix="modelhost-reachable-", dir="/tmp") as raw:
        root = Path(raw)
        root.chmod(0o755)
        if blocked_at(root, nobody.uid, {nobody.gid}, 1, Path.stat) is not None:
            pytest.skip(f"{root} is not passable for nobody on this machine")
        private = root / "private"
        (private / "bin").mkdir(parents=True)
        python = private / "bin" / "python"
        python.write_text("")
        python.chmod(0o755)
        private.chmod(0o700)
        with pytest.raises(ValidationError) as info:
            check_reachable(nobody, python, 1, "the interpreter")
        assert f"{private} (mode 0700" in info.value.message and "MODELHOST_CACHE_DIR" in info.value.hint
        private.chmod(0o711)
        check_reachable(nobody, python, 1, "the interpreter")
