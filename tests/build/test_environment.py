"""The environment lookup chain with real uv builds (tiny requirement sets; uv's cache keeps them fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from filelock import FileLock

from modelhost.build.environment import MARKER, BuiltEnvironment, EnvironmentBuilder
from modelhost.errors import EnvironmentBuildError, ValidationError
from modelhost.settings import Settings
from modelhost.spec.environment import EnvironmentSpec
from tests.support.net import wait_until

SIX = EnvironmentSpec.from_pip_requirements("six-env", "six\n")
BARE = EnvironmentSpec.from_pip_requirements("bare-env", "")


def make_settings(root: Path, workspace: str = "ws") -> Settings:
    return Settings.from_env({"HOME": str(root)}, home=root / workspace).with_(cache_dir=root / "cache")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def run_in(env: BuiltEnvironment, code: str) -> str:
    proc = subprocess.run(
        [str(env.python), "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def scoring_importable_here() -> bool:
    proc = subprocess.run([sys.executable, "-c", "import modelhost.scoring"], capture_output=True, timeout=60,
                          check=False)
    return proc.returncode == 0


def test_build_then_cache_hits(settings: Settings) -> None:
    lines: list[str] = []
    builder = EnvironmentBuilder(settings, log=lines.append)
    assert builder.lookup(SIX) is None
    built = builder.ensure(SIX)
    assert built.source == "built"
    assert built.path == settings.machine_envs_dir / built.spec_hash
    assert (built.path / MARKER).is_file()
    assert built.log_path is not None and "six" in built.log_path.read_text()
    assert (settings.envs_dir / built.spec_hash).resolve() == built.path
    assert run_in(built, "import six; print(six.__name__)") == "six"
    assert built.python_version == run_in(built, "import platform; print(platform.python_version())")
    assert "creating venv" in lines and any(line.startswith("done in ") for line in lines)

    lines.clear()
    again = builder.ensure(SIX)
    assert again.source == "workspace" and again.path == built.path and again.spec_hash == built.spec_hash
    assert any(line.startswith("cache hit (workspace)") for line in lines)
    assert "creating venv" not in lines
    assert again.seconds < 30  # generous: the goal is well under a second (bench/env_cache.py)
    looked = builder.lookup(SIX)
    assert looked is not None and looked.source == "workspace"


def test_second_workspace_hits_the_machine_cache(tmp_path: Path) -> None:
    first = EnvironmentBuilder(make_settings(tmp_path, "ws1")).ensure(SIX)
    other = make_settings(tmp_path, "ws2")
    second = EnvironmentBuilder(other).ensure(SIX)
    assert (first.source, second.source) == ("built", "machine")
    assert second.path == first.path
    assert (other.envs_dir / first.spec_hash).resolve() == first.path


def test_built_env_has_the_base_layer_but_not_the_server_extra(settings: Settings) -> None:
    env = EnvironmentBuilder(settings).ensure(BARE)
    out = json.loads(run_in(env, textwrap.dedent("""
        import importlib.util, json, modelhost
        print(json.dumps({
            "version": modelhost.__version__,
            "file": modelhost.__file__,
            "missing": [m for m in ("sqlalchemy", "alembic", "kubernetes", "typer")
                        if importlib.util.find_spec(m) is not None],
            "starlette": importlib.util.find_spec("starlette") is not None,
        }))
    """)))
    import modelhost

    assert out["version"] == modelhost.__version__
    assert out["file"].startswith(str(env.path))  # installed into the env, not the dev checkout
    assert out["missing"] == []
    assert out["starlette"]
    assert (env.path / "bin" / "modelhost-score").is_file()
    assert (env.path / "bin" / "azmlinfsrv").is_file()
    assert not (env.path / "bin" / "modelhost").exists()
    if scoring_importable_here():
        run_in(env, "import modelhost.scoring")


def test_old_python_builds_with_the_nearest_and_warns(settings: Settings) -> None:
    conda = "dependencies:\n  - python=3.6.2\n  - pip:\n    - azureml-defaults\n"
    spec = EnvironmentSpec.from_conda_yaml("v1", conda)
    lines: list[str] = []
    env = EnvironmentBuilder(settings).ensure(spec, log=lines.append)
    assert tuple(int(x) for x in env.python_version.split(".")[:2]) >= (3, 11)
    warnings = [line for line in lines if line.startswith("WARNING:")]
    assert len(warnings) == 1 and "3.6.2" in warnings[0]
    assert any("azureml-defaults" in n for n in env.notes)
    assert any(n.startswith("WARNING:") for n in env.notes)
    assert any("azureml-defaults" in line for line in lines)
    with pytest.raises(ValidationError, match=r"Python 3\.6\.2 is not available"):
        EnvironmentBuilder(settings).ensure(spec, strict_python=True)


def test_pinned_supported_python_is_used(settings: Settings) -> None:
    builder = EnvironmentBuilder(settings)
    spec = EnvironmentSpec(name="py", python="3.12", requirements=())
    try:
        builder.spec_hash(spec, strict_python=True)
    except ValidationError:
        pytest.skip("no Python 3.12 on this machine")
    env = builder.ensure(spec, strict_python=True)
    assert env.python_version.startswith("3.12.")
    assert env.spec_hash != builder.spec_hash(BARE)


def test_concurrent_processes_build_once(settings: Settings, tmp_path: Path) -> None:
    builder = EnvironmentBuilder(settings)
    spec_hash = builder.spec_hash(SIX)
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from modelhost.build.environment import EnvironmentBuilder
        from modelhost.settings import Settings
        from modelhost.spec.environment import EnvironmentSpec
        settings = Settings.from_env({{"HOME": {str(tmp_path)!r}}}, home=Path({str(settings.home)!r}))
        settings = settings.with_(cache_dir=Path({str(settings.cache_dir)!r}))
        env = EnvironmentBuilder(settings, log=lambda line: print(line, flush=True)).ensure(
            EnvironmentSpec.from_pip_requirements("six-env", "six\\n"))
        print("SOURCE=" + env.source, flush=True)
    """)
    outputs = [tmp_path / f"out{i}.txt" for i in range(2)]
    # Hold the build lock so that both processes are certainly waiting on it at once.
    lock = FileLock(str(settings.machine_envs_dir / f"{spec_hash}.lock"))
    lock.acquire()
    procs = []
    try:
        for out in outputs:
            with open(out, "w") as sink:
                cmd = [sys.executable, "-c", script]
                repo = Path(__file__).parents[2]
                procs.append(subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=repo))
        wait_until(lambda: all("waiting for another build" in o.read_text() for o in outputs), 60,
                   what="both builders waiting on the lock")
    finally:
        lock.release()
    for proc in procs:
        assert proc.wait(timeout=240) == 0
    texts = [o.read_text() for o in outputs]
    sources = sorted(line for t in texts for line in t.splitlines() if line.startswith("SOURCE="))
    assert sources == ["SOURCE=built", "SOURCE=machine"], texts
    assert sum(t.count("creating venv") for t in texts) == 1


def test_concurrent_threads_build_once(settings: Settings) -> None:
    builder = EnvironmentBuilder(settings)
    results: list[BuiltEnvironment] = []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            results.append(EnvironmentBuilder(settings).ensure(SIX))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors
    assert sorted(r.source for r in results).count("built") == 1
    assert len({r.path for r in results}) == 1
    assert builder.lookup(SIX) is not None


def test_interrupted_build_is_wiped_and_rebuilt(settings: Settings) -> None:
    builder = EnvironmentBuilder(settings)
    spec_hash = builder.spec_hash(SIX)
    half = settings.machine_envs_dir / spec_hash
    (half / "bin").mkdir(parents=True)
    (half / "bin" / "python").write_text("not a python")
    (half / "leftover.txt").write_text("from a killed build")
    assert builder.lookup(SIX) is None  # no marker: never used
    lines: list[str] = []
    env = builder.ensure(SIX, log=lines.append)
    assert env.source == "built"
    assert any(line.startswith("removing incomplete environment") for line in lines)
    assert not (half / "leftover.txt").exists()
    assert run_in(env, "import six; print('ok')") == "ok"


def test_failing_pin_names_the_requirement_and_leaves_no_env(settings: Settings) -> None:
    spec = EnvironmentSpec.from_pip_requirements("broken", "six==99.0\n")
    builder = EnvironmentBuilder(settings)
    with pytest.raises(EnvironmentBuildError) as info:
        builder.ensure(spec)
    err = info.value
    assert "six==99.0" in str(err)
    assert any("No solution found" in d for d in err.details)  # the log's tail
    spec_hash = builder.spec_hash(spec)
    assert not (settings.machine_envs_dir / spec_hash).exists()
    assert not (settings.envs_dir / spec_hash).exists()
    assert (settings.machine_envs_dir / f"{spec_hash}.failed.log").is_file()
    assert builder.lookup(spec) is None


def test_old_numpy_pin_fails_fast_with_the_fix(settings: Settings) -> None:
    spec = EnvironmentSpec.from_conda_yaml("old", "dependencies:\n  - python=3.6\n  - numpy=1.19.5\n")
    with pytest.raises(EnvironmentBuildError) as info:
        EnvironmentBuilder(settings).ensure(spec)
    message = str(info.value)
    assert "numpy==1.19.5 has no build for Python 3." in message
    assert "relax the pin to numpy>=" in message


def test_inherit_uses_the_current_interpreter(settings: Settings) -> None:
    env = EnvironmentBuilder(settings).ensure(EnvironmentSpec.inherit_current("dev"))
    assert env.source == "inherited" and env.python == Path(sys.executable)
    assert not settings.machine_envs_dir.exists()


def test_stale_base_layer_is_refreshed_in_place(settings: Settings) -> None:
    builder = EnvironmentBuilder(settings)
    env = builder.ensure(BARE)
    marker = json.loads((env.path / MARKER).read_text())
    marker["modelhost_digest"] = "stale"
    (env.path / MARKER).write_text(json.dumps(marker))
    lines: list[str] = []
    again = builder.ensure(BARE, log=lines.append)
    assert again.source == "workspace"
    assert any(line.startswith("refreshing modelhost base layer") for line in lines)
    assert json.loads((env.path / MARKER).read_text())["modelhost_digest"] != "stale"
    run_in(again, "import modelhost")


def test_prune_keeps_what_is_asked_and_what_other_workspaces_use(tmp_path: Path) -> None:
    ws1, ws2 = make_settings(tmp_path, "ws1"), make_settings(tmp_path, "ws2")
    b1, b2 = EnvironmentBuilder(ws1), EnvironmentBuilder(ws2)
    six, bare = b1.ensure(SIX), b1.ensure(BARE)
    b2.ensure(BARE)  # ws2 also uses the bare env
    removed = b1.prune(keep={six.spec_hash})
    assert str(ws1.envs_dir / bare.spec_hash) in removed
    assert not (ws1.envs_dir / bare.spec_hash).exists()
    assert bare.path.is_dir()  # still linked from ws2
    assert six.path.is_dir() and (ws1.envs_dir / six.spec_hash).exists()

    removed = b2.prune(keep=set())
    assert str(bare.path) in removed and not bare.path.exists()
    assert six.path.is_dir()  # ws1 still links it
    assert b1.lookup(SIX) is not None and b1.lookup(BARE) is None
    assert os.listdir(ws2.envs_dir) == []


def test_a_build_step_over_the_timeout_is_stopped_and_leaves_no_env(settings: Settings) -> None:
    builder = EnvironmentBuilder(settings, build_timeout_s=0.001)
    with pytest.raises(EnvironmentBuildError, match="was stopped after"):
        builder.ensure(SIX)
    assert builder.lookup(SIX) is None
    assert not (settings.machine_envs_dir / builder.spec_hash(SIX)).exists()
