"""Control planes whose replicas run as ``nobody`` (docs/security.md).

Running replicas as another user needs root, and an interpreter that user can reach. This machine's
test venv points into ``/root`` (mode 0700), so :func:`nobody_python` makes a venv under ``/tmp`` from
a system interpreter of the same minor version, with the test venv's site-packages added (nothing is
installed). Without root the tests skip with the reason; under CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelhost
from modelhost.errors import ValidationError
from modelhost.runtime.replica_user import ReplicaUser, check_reachable, resolve
from modelhost.sdk import local
from tests.e2e.deploy.conftest import Plane, machine_cache, make_plane, shared  # noqa: F401 - fixtures
from tests.support.net import wait_until

REPLICA_USER = "nobody"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: this test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def nobody() -> ReplicaUser:
    if os.geteuid() != 0:
        _unavailable("replicas can run as another user only when the control plane runs as root")
    try:
        user = resolve(REPLICA_USER, os.geteuid())
    except ValidationError as exc:
        _unavailable(f"no user {REPLICA_USER!r} on this machine: {exc}")
    assert user is not None
    return user


def _reachable(user: ReplicaUser, path: Path, bits: int) -> bool:
    try:
        check_reachable(user, path, bits, "test interpreter")
    except ValidationError:
        return False
    return True


@pytest.fixture(scope="session")
def nobody_python(nobody: ReplicaUser) -> Iterator[Path]:
    """An interpreter ``nobody`` can run, with modelhost and the test venv's packages importable."""
    source_root = Path(modelhost.__file__).parent.parent  # editable: src/; else site-packages
    venv_site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    needed = (source_root, venv_site)
    if _reachable(nobody, Path(sys.executable), 1) and all(_reachable(nobody, p, 5) for p in needed):
        yield Path(sys.executable)
        return
    unreachable = [str(p) for p in needed if not _reachable(nobody, p, 5)]
    if unreachable:
        _unavailable(f"{REPLICA_USER} cannot read the test packages: {unreachable}")
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    bases = [Path(f"{d}/python{minor}") for d in ("/usr/bin", "/usr/local/bin")]
    base = next((b for b in bases if b.is_file() and _reachable(nobody, b, 1)), None)
    if base is None:
        _unavailable(f"no python{minor} that {REPLICA_USER} can run (looked at {bases})")
    root = Path(tempfile.mkdtemp(prefix="modelhost-secrets-venv-", dir="/tmp"))
    root.chmod(0o755)
    try:
        subprocess.run([str(base), "-m", "venv", "--without-pip", str(root / "venv")], check=True)
        site = next((root / "venv").glob("lib/python3*/site-packages"))
        # addsitedir (not a bare path) so the test venv's own .pth files (the editable install) apply
        (site / "_modelhost_test_venv.pth").write_text(f"import site; site.addsitedir({str(venv_site)!r})\n")
        yield root / "venv" / "bin" / "python"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def nobody_plane(nobody_python: Path, machine_cache: Path) -> Iterator[Plane]:  # noqa: F811
    """A workspace under /tmp (pytest's own temp folders are 0700) whose control plane runs with
    ``nobody_python`` and ``MODELHOST_REPLICA_USER=nobody``."""
    root = Path(tempfile.mkdtemp(prefix="modelhost-secrets-", dir="/tmp"))
    root.chmod(0o711)
    p = make_plane(root, machine_cache)
    p.env["MODELHOST_REPLICA_USER"] = REPLICA_USER
    # secrets of the control plane's own environment, which no replica may inherit
    p.env["CLOUD_API_TOKEN"] = secrets.token_urlsafe(32)
    p.env["MODELHOST_DB_PASSWORD"] = secrets.token_urlsafe(32)
    p.settings.logs_dir.mkdir(parents=True, exist_ok=True)
    with open(p.settings.logs_dir / "control.log", "ab") as log:
        server = subprocess.Popen(
            [str(nobody_python), "-m", "modelhost.control"],
            env=p.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def up() -> bool:
            if server.poll() is not None:
                log_text = (p.settings.logs_dir / "control.log").read_text(errors="replace")
                raise AssertionError(f"the control plane exited ({server.returncode}):\n{log_text[-3000:]}")
            return local.find_running(p.settings) is not None

        wait_until(up, 60, what="control plane up")
        p.start()  # finds the running one
        yield p
    finally:
        p.stop_all()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)
