"""A Python base image for local (buildah) build tests, assembled from this machine's interpreter.

No base image can be pulled here and debootstrap would be slow, so :func:`assemble_python_base`
copies the interpreter that runs the tests (``sys.base_prefix``: binary, ``libpython``, the standard
library without ``site-packages`` and ``test``) and every shared library ``ldd`` names for it and its
extension modules into a ``buildah from scratch`` container, at the same paths, adds
``/usr/local/bin/python3`` and the CA bundle, and commits it. Enough for the rendered Dockerfile's
``python3 -m venv`` and ``pip install`` (pip comes from ensurepip's bundled wheel).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["assemble_python_base"]

_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "__pycache__"}
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _libraries(binaries: Sequence[Path]) -> set[Path]:
    found: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
        found.update(Path(p) for p in re.findall(r"(/\S+) \(0x", out))
    return found


def _stage_file(src: Path, root: Path) -> None:
    """``src`` at its own path under ``root`` (a symlink stays one, its target staged too); its
    folder's path resolved, since the top-level merged-usr links (/lib -> usr/lib) are staged as links."""
    src = src.parent.resolve() / src.name
    dst = root / src.relative_to("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        if not dst.exists():
            os.symlink(os.readlink(src), dst)
        _stage_file(src.resolve(), root)
    elif not dst.exists():
        shutil.copy2(src, dst)


def _stage(root: Path) -> None:
    for top in ("bin", "sbin", "lib", "lib64"):  # Debian's merged /usr: keep the links
        if Path("/", top).is_symlink():
            root.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(Path("/", top)), root / top)
    prefix = Path(sys.base_prefix)
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = prefix / "lib" / minor
    shutil.copytree(stdlib, root / stdlib.relative_to("/"), symlinks=True,
                    ignore=lambda _d, names: [n for n in names if n in _SKIP])
    binary = prefix / "bin" / minor
    _stage_file(binary, root)
    for lib in (prefix / "lib").glob("libpython*.so*"):
        _stage_file(lib, root)
    for lib in _libraries([binary, *(stdlib / "lib-dynload").glob("*.so")]):
        _stage_file(lib, root)
    (root / "usr/local/bin").mkdir(parents=True, exist_ok=True)
    os.symlink(binary, root / "usr/local/bin/python3")
    if CA_BUNDLE.is_file():
        _stage_file(CA_BUNDLE, root)
    (root / "tmp").mkdir(exist_ok=True)
    os.chmod(root / "tmp", 0o1777)


def assemble_python_base(buildah: Sequence[str], name: str, workdir: Path) -> str:
    """Commit the base image ``name`` with ``buildah`` (its argv prefix, e.g. with ``--root``)."""
    root = workdir / "rootfs"
    _stage(root)

    def run(*args: str) -> str:
        return subprocess.run([*buildah, *args], capture_output=True, text=True, check=True).stdout.strip()

    container = run("from", "scratch")
    try:
        run("copy", container, str(root), "/")
        env = ["--env", "PATH=/usr/local/bin:/usr/bin:/bin"]
        if CA_BUNDLE.is_file():
            env += ["--env", f"PIP_CERT={CA_BUNDLE}", "--env", f"SSL_CERT_FILE={CA_BUNDLE}"]
        run("config", *env, container)
        run("commit", container, name)
    finally:
        subprocess.run([*buildah, "rm", container], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)
    return name
