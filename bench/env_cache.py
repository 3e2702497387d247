"""Environment cache benchmark: how long a cache hit takes (goal: under a second).

Builds one small spec (``six``; cold, or from the machine cache when an earlier run built it) in a
throw-away workspace that shares the real machine-wide cache (``MODELHOST_CACHE_DIR``, default
``~/.cache/modelhost``), then asks for it again and prints::

    env first ensure: 1.62 s (source built)
    env cache hit: 0.004 s (goal < 1 s)
    env cache hit (cli): 0.71 s (goal < 1 s)
    cli startup alone (modelhost version): 0.45 s

The CLI figure runs ``modelhost env build`` twice against a control plane started for the
throw-away workspace on free ports (and stopped afterwards); it is skipped when the ``modelhost``
command is not installed. Usage: .venv/bin/python bench/env_cache.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modelhost.build.environment import EnvironmentBuilder
from modelhost.settings import Settings
from modelhost.spec.environment import EnvironmentSpec

GOAL_S = 1.0
REQUIREMENTS = "six\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def in_process(home: Path, rounds: int) -> None:
    settings = Settings.from_env(home=home)
    spec = EnvironmentSpec.from_pip_requirements("bench-env", REQUIREMENTS)
    start = time.perf_counter()
    first = EnvironmentBuilder(settings).ensure(spec)
    print(f"env first ensure: {time.perf_counter() - start:.2f} s (source {first.source})")
    times = []
    for _ in range(rounds):
        builder = EnvironmentBuilder(settings)  # a fresh builder: no in-memory shortcuts
        start = time.perf_counter()
        hit = builder.ensure(spec)
        times.append(time.perf_counter() - start)
        assert hit.source in {"workspace", "machine"}, hit.source
    print(f"env cache hit: {statistics.median(times):.3f} s (goal < {GOAL_S:.0f} s)")


def via_cli(home: Path, rounds: int) -> None:
    exe = shutil.which("modelhost") or str(Path(sys.executable).with_name("modelhost"))
    if not Path(exe).exists():
        print("env cache hit (cli): skipped (the modelhost command is not installed)")
        return
    env = {**os.environ, "MODELHOST_HOME": str(home), "MODELHOST_CONTROL_PORT": str(free_port()),
           "MODELHOST_ROUTER_PORT": str(free_port())}
    home.mkdir(parents=True, exist_ok=True)
    req = home.parent / "requirements.txt"
    req.write_text(REQUIREMENTS)

    def build() -> float:
        start = time.perf_counter()
        proc = subprocess.run([exe, "env", "build", "bench-cli-env", "--pip-file", str(req)], env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"modelhost env build failed:\n{proc.stdout}\n{proc.stderr}")
        return time.perf_counter() - start

    try:
        build()  # starts the control plane and builds (or finds) the environment
        times = [build() for _ in range(rounds)]
        print(f"env cache hit (cli): {statistics.median(times):.2f} s (goal < {GOAL_S:.0f} s)")
        startup = []
        for _ in range(rounds):
            start = time.perf_counter()
            subprocess.run([exe, "version"], env=env, capture_output=True, timeout=60, check=True)
            startup.append(time.perf_counter() - start)
        print(f"cli startup alone (modelhost version): {statistics.median(startup):.2f} s")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"env cache hit (cli): failed: {exc}")
    finally:
        subprocess.run([exe, "down"], env=env, capture_output=True, timeout=60, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelhost-bench-env-") as tmp:
        in_process(Path(tmp) / "ws", args.rounds)
        via_cli(Path(tmp) / "ws-cli", max(1, args.rounds // 2))


if __name__ == "__main__":
    main()
