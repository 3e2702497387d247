"""modelhost's base layer as a wheel built from the running installation.

Every model environment gets the same modelhost that builds it, installed offline from this wheel
(modelhost is never fetched from an index). The wheel holds the package's files as installed and a
``.dist-info`` whose ``Requires-Dist`` lists only the base dependencies (starlette, uvicorn, ...;
no extras), so an environment never pulls in SQLAlchemy or the Kubernetes client. Wheels are
cached by version and content digest under ``<cache_dir>/wheels/``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import re
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import modelhost
from modelhost.errors import EnvironmentBuildError

__all__ = [
    "CONSOLE_SCRIPTS",
    "ModelhostWheel",
    "base_requirements",
    "build_modelhost_wheel",
    "package_digest",
]

# The scoring entry points; the `modelhost` CLI needs the server extra and is left out.
CONSOLE_SCRIPTS = {
    "modelhost-score": "modelhost.scoring.__main__:main",
    "azmlinfsrv": "modelhost.scoring.__main__:main_azmlinfsrv",
}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_WHEEL = b"Wheel-Version: 1.0\nGenerator: modelhost\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


@dataclass(frozen=True)
class ModelhostWheel:
    """A built base-layer wheel: ``digest`` is the content digest of the package files it holds."""

    path: Path
    version: str
    digest: str


def _package_dir() -> Path:
    return Path(modelhost.__file__).resolve().parent


def _package_files(package_dir: Path) -> list[Path]:
    files: list[Path] = []
    for current, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        files.extend(Path(current) / f for f in filenames if not f.endswith((".pyc", ".pyo")))
    return sorted(files, key=lambda p: p.relative_to(package_dir).as_posix())


def package_digest(package_dir: Path | None = None) -> str:
    """sha256 over the package's file names and contents (bytecode caches excluded)."""
    root = package_dir or _package_dir()
    digest = hashlib.sha256()
    for path in _package_files(root):
        rel = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        digest.update(len(rel).to_bytes(4, "big") + rel + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _without_extras(requirements: Iterable[str]) -> list[str]:
    return [r for r in requirements if not re.search(r"\bextra\s*==", r.partition(";")[2])]


def _dist() -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution("modelhost")
    except importlib.metadata.PackageNotFoundError:
        return None


def base_requirements() -> tuple[list[str], str]:
    """(base ``Requires-Dist`` without extras, ``Requires-Python``) of the running modelhost.

    From the installed distribution's metadata; a source checkout without metadata falls back to
    its ``pyproject.toml``.
    """
    dist = _dist()
    if dist is not None and dist.requires is not None:
        return _without_extras(dist.requires), (dist.metadata.get_all("Requires-Python") or [">=3.11"])[0]
    pyproject = _package_dir().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text())["project"]
        return list(project.get("dependencies", [])), str(project.get("requires-python", ">=3.11"))
    raise EnvironmentBuildError(
        "cannot find modelhost's metadata to build its base layer",
        hint="Install modelhost (pip install modelhost) rather than running it from a bare source tree.",
    )


def _console_scripts() -> dict[str, str]:
    dist = _dist()
    scripts = dict(CONSOLE_SCRIPTS)
    if dist is not None:
        for ep in dist.entry_points:
            if ep.group == "console_scripts" and ep.name in scripts:
                scripts[ep.name] = ep.value
    return scripts


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _metadata(version: str, requires: list[str], requires_python: str) -> str:
    lines = [
        "Metadata-Version: 2.1",
        "Name: modelhost",
        f"Version: {version}",
        "Summary: modelhost scoring runtime (base layer, built from the installation that built this env)",
        f"Requires-Python: {requires_python}",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    return "\n".join(lines) + "\n"


def _write_wheel(target: Path, package_dir: Path, version: str) -> None:
    requires, requires_python = base_requirements()
    dist_info = f"modelhost-{version}.dist-info"
    entries: list[tuple[str, bytes]] = [
        ("modelhost/" + p.relative_to(package_dir).as_posix(), p.read_bytes())
        for p in _package_files(package_dir)
    ]
    scripts = "".join(f"{name} = {value}\n" for name, value in sorted(_console_scripts().items()))
    entries += [
        (f"{dist_info}/METADATA", _metadata(version, requires, requires_python).encode()),
        (f"{dist_info}/WHEEL", _WHEEL),
        (f"{dist_info}/entry_points.txt", f"[console_scripts]\n{scripts}".encode()),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    record += f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode()))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)


def build_modelhost_wheel(cache_dir: Path) -> ModelhostWheel:
    """The base-layer wheel for the running modelhost, built once per version and content digest."""
    package_dir = _package_dir()
    version = modelhost.__version__
    digest = package_digest(package_dir)
    folder = Path(cache_dir) / "wheels" / f"{version}-{digest[:16]}"
    path = folder / f"modelhost-{version}-py3-none-any.whl"
    if path.is_file():
        return ModelhostWheel(path, version, digest)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".wheel-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        _write_wheel(Path(tmp_name), package_dir, version)
        os.replace(tmp_name, path)  # atomic: a concurrent builder writes the same bytes
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return ModelhostWheel(path, version, digest)
