"""Environments through the real control plane: register, build as an operation, stream, prune."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from modelhost.control.discovery import load_or_create_token
from modelhost.errors import NotFoundError, ValidationError
from modelhost.sdk import CondaDependencies, Environment, Workspace
from tests.e2e.control.conftest import Home


def _auth(home: Home) -> dict[str, str]:
    return {"Authorization": f"Bearer {load_or_create_token(home.settings.home)}"}


def _env_ids(ws: Workspace) -> list[str]:
    return sorted(f"{e.name}:{e.version}" for e in Environment.list_versions(ws))


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_cli_build_twice_reports_a_cache_hit_and_its_time(shared_home: Home, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six  # tiny\n")
    first = shared_home.cli("env", "build", "six-env", "--pip-file", str(requirements))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Building environment six-env:1" in first.stdout
    assert "Environment six-env:1 ready" in first.stdout
    second = shared_home.cli("env", "build", "six-env")
    assert second.returncode == 0, second.stderr
    ready = [line for line in second.stdout.splitlines() if line.startswith("Environment six-env:1 ready")]
    assert len(ready) == 1 and "cache hit (workspace)" in ready[0] and " s, Python " in ready[0]

    listing = shared_home.cli("env", "list")
    assert listing.returncode == 0 and "six-env" in listing.stdout and "ready" in listing.stdout
    shown = shared_home.cli("env", "show", "six-env:1")
    assert shown.returncode == 0 and "six" in shown.stdout and "build log:" in shown.stdout


def test_concurrent_builds_of_one_spec_share_one_operation(ws: Workspace, shared_home: Home) -> None:
    env = Environment("shared-build")
    # a specifier no other test uses: a spec hash not built yet, so the build runs long enough to overlap
    unique = f"six!=0.0.{uuid.uuid4().int % 10**9}"
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=[unique])
    env.register(ws)
    with httpx.Client(base_url=ws.url, headers=_auth(shared_home), timeout=60) as client:

        def start(_: int) -> str:
            response = client.post("/api/v1/environments/shared-build/build", json={"version": env.version})
            assert response.status_code == 202
            assert response.headers["Operation-Location"].endswith(response.json()["id"])
            return str(response.json()["id"])

        with ThreadPoolExecutor(4) as pool:
            ids = set(pool.map(start, range(4)))
        assert len(ids) == 1
        op_id = ids.pop()
        lines: list[str] = []
        state, offset = "Running", 0
        while state == "Running":  # long-poll: each answer carries the lines past the offset
            op = client.get(f"/api/v1/operations/{op_id}", params={"offset": offset, "wait": 20}).json()
            assert op["offset"] == offset
            lines += [text for _, text in op["log"]]
            offset, state = op["next_offset"], op["state"]
        assert state == "Succeeded", lines
        assert sum(1 for line in lines if line.startswith("Building environment shared-build:")) == 1
        assert op["result"]["python_version"] and Path(op["result"]["python"]).exists()
        listed = client.get("/api/v1/operations").json()["value"]
        assert any(o["id"] == op_id and o["kind"] == "environment-build" for o in listed)
        assert client.get("/api/v1/operations/nope").status_code == 404


def test_register_makes_a_new_version_only_when_the_content_changes(ws: Workspace) -> None:
    env = Environment("versioned")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"], python_version="3.11")
    assert env.register(ws).version == 1
    same = Environment("versioned")
    same.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"], python_version="3.11")
    assert same.register(ws).version == 1
    env.python.conda_dependencies.add_pip_package("six>=1.16")
    assert env.register(ws).version == 2
    assert Environment.get(ws, "versioned").version == 2
    got = Environment.get(ws, "versioned", version=1)
    assert got.version == 1 and got.python.conda_dependencies.pip_packages == ["six"]
    assert got.status == "building"  # registered, never built
    assert "versioned" in Environment.list(ws) and Environment.list(ws)["versioned"].version == 2
    with pytest.raises(NotFoundError):
        Environment.get(ws, "versioned", version=7)


def test_from_files_and_inherit(ws: Workspace, tmp_path: Path) -> None:
    conda = tmp_path / "myenv.yml"
    conda.write_text("name: x\ndependencies:\n  - python=3.11\n  - pip:\n    - six\n    - azureml-defaults\n")
    env = Environment.from_conda_specification("from-conda", conda)
    assert env.register(ws).version == 1
    assert env.spec is not None and env.spec["requirements"] == ["six"]
    assert any("azureml-defaults" in note for note in env.spec["notes"])

    result = Environment.from_current("inherited").build(ws).wait_for_completion()
    assert result["source"] == "inherited" and result["cache_hit"] is True
    assert Environment.get(ws, "inherited").status == "ready"


def test_conda_only_dependency_is_refused_and_nothing_stored(
    shared_home: Home, ws: Workspace, tmp_path: Path
) -> None:
    conda = tmp_path / "gpu.yml"
    conda.write_text("dependencies:\n  - python=3.11\n  - cudatoolkit=11.8\n  - mkl\n  - numpy\n")
    before = _env_ids(ws)
    result = shared_home.cli("env", "build", "gpu-env", "--conda-file", str(conda))
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert "cudatoolkit" in line and "mkl" in line
    with pytest.raises(ValidationError, match="cudatoolkit"):
        Environment.from_conda_specification("gpu-env", conda).register(ws)
    assert _env_ids(ws) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["env", "show", "no-such-env"], "not found"),
        (["env", "build", "x", "--pip-file", "missing.txt"], "does not exist"),
        (["env", "build", "bad name", "--inherit"], "Invalid environment name"),
        (["env", "build", "x:1", "--inherit"], "version cannot be given"),
        (["env", "build", "x", "--inherit", "--pip-file", "r.txt"], "at most one"),
    ],
    ids=["unknown", "missing-file", "bad-name", "version-with-source", "two-sources"],
)
def test_cli_bad_input(shared_home: Home, ws: Workspace, args: list[str], message: str) -> None:
    before = _env_ids(ws)
    result = shared_home.cli(*args)
    assert result.returncode == 1
    assert message in _one_error_line(result.stderr)
    assert _env_ids(ws) == before


def test_prune_keeps_ready_environments(shared_home: Home, ws: Workspace) -> None:
    env = Environment("keep-me")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"])
    result = env.build(ws).wait_for_completion()
    orphan = shared_home.settings.envs_dir / ("f" * 64)
    orphan.mkdir(parents=True)
    pruned = shared_home.cli("env", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert str(orphan) in pruned.stdout and not orphan.exists()
    assert Path(result["python"]).exists()
    assert Environment.get(ws, "keep-me").status == "ready"


def test_unsupported_environment_calls(ws: Workspace) -> None:
    with pytest.raises(ValidationError, match="from_docker_image"):
        Environment.from_docker_image("x", "ubuntu")
    env = Environment("docker-env")
    env.docker.base_image = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
    with pytest.raises(ValidationError, match="base_image"):
        env.register(ws)
    assert not any(e.startswith("docker-env:") for e in _env_ids(ws))
