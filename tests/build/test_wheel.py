"""modelhost's base-layer wheel, built from the running installation."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from pathlib import Path

import modelhost
from modelhost.build.wheel import base_requirements, build_modelhost_wheel, package_digest


def test_wheel_is_a_valid_base_layer(tmp_path: Path) -> None:
    wheel = build_modelhost_wheel(tmp_path)
    assert wheel.path.name == f"modelhost-{modelhost.__version__}-py3-none-any.whl"
    assert wheel.path.is_relative_to(tmp_path / "wheels")
    dist_info = f"modelhost-{modelhost.__version__}.dist-info"
    with zipfile.ZipFile(wheel.path) as archive:
        names = archive.namelist()
        assert "modelhost/__init__.py" in names and "modelhost/py.typed" in names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        wheel_file = archive.read(f"{dist_info}/WHEEL").decode()
        rows = list(csv.reader(io.StringIO(archive.read(f"{dist_info}/RECORD").decode())))
        for name, digest, size in rows:
            if name.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data)
        assert {r[0] for r in rows} == set(names)
    assert f"Version: {modelhost.__version__}" in metadata
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any(r.startswith("starlette") for r in requires)
    assert not any(r.startswith(("sqlalchemy", "kubernetes", "typer", "alembic")) for r in requires)
    assert not any("extra ==" in r for r in requires)
    assert "modelhost-score = modelhost.scoring.__main__:main" in entry_points
    assert "azmlinfsrv = " in entry_points
    assert "\nmodelhost = " not in "\n" + entry_points  # the CLI needs the server extra
    assert "Tag: py3-none-any" in wheel_file and "Root-Is-Purelib: true" in wheel_file


def test_wheel_is_cached_by_version_and_content(tmp_path: Path) -> None:
    first = build_modelhost_wheel(tmp_path)
    mtime = first.path.stat().st_mtime_ns
    second = build_modelhost_wheel(tmp_path)
    assert second == first and second.path.stat().st_mtime_ns == mtime
    assert first.digest == package_digest()
    assert first.digest[:16] in first.path.parent.name


def test_package_digest_tracks_content(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    before = package_digest(tmp_path / "pkg")
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    assert package_digest(tmp_path / "pkg") == before
    (tmp_path / "pkg" / "a.py").write_text("A = 2\n")
    assert package_digest(tmp_path / "pkg") != before


def test_base_requirements_have_no_extras() -> None:
    requires, requires_python = base_requirements()
    assert requires and requires_python.startswith(">=3.")
    assert all("extra" not in r for r in requires)
