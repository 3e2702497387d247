"""Deploy benchmark: how long a deploy takes from the request to ``Healthy`` with a cached environment.

Starts a control plane for a throw-away workspace on free ports (sharing the machine-wide
environment cache, ``MODELHOST_CACHE_DIR``, default ``~/.cache/modelhost``), registers a small
environment (``six``) and builds it once, then deploys a one-model service N times (a new name each
time, deleting the previous one) with fast liveness-probe settings, timing ``POST /api/v1/services``
until its operation succeeded (the service is ``Healthy`` and routed). Prints::

    env first build: 12.3 s (source built)
    deploy to Healthy (cached env): median 1.42 s (goal <= 3 s)  [runs: 1.40 1.42 1.51]
    deploy to Healthy (inherited env): median 1.10 s

Everything it started is stopped at the end. Usage: .venv/bin/python bench/deploy.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from modelhost.build.snapshot import make_snapshot
from modelhost.control.server import stop_all
from modelhost.sdk import local
from modelhost.settings import Settings
from modelhost.spec.deployment import AksDeploymentConfig

GOAL_S = 3.0
SCRIPT = "import os\n\ndef init():\n    pass\n\ndef run(raw):\n    return {'ok': True}\n"
PROBE = {"initial_delay_seconds": 5, "period_seconds": 1, "timeout_seconds": 1, "failure_threshold": 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bench:
    def __init__(self, home: Path) -> None:
        env = {
            **os.environ,
            "MODELHOST_HOME": str(home),
            "MODELHOST_CONTROL_PORT": str(free_port()),
            "MODELHOST_ROUTER_PORT": str(free_port()),
        }
        self.settings = Settings.from_env(env)
        info = local.ensure_running(self.settings)
        self.client = httpx.Client(
            base_url=info.url, headers={"Authorization": f"Bearer {info.token}"}, timeout=600
        )

    def upload(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.client.put(f"/api/v1/blobs/{digest}", content=data).raise_for_status()
        return digest

    def wait(self, op_id: str) -> dict[str, Any]:
        while True:
            op = self.client.get(f"/api/v1/operations/{op_id}", params={"wait": 10}).json()
            if op["state"] != "Running":
                return dict(op)

    def deploy(self, name: str, body: dict[str, Any]) -> float:
        start = time.perf_counter()
        r = self.client.post("/api/v1/services", json={**body, "name": name})
        r.raise_for_status()
        op = self.wait(r.json()["operation"]["id"])
        elapsed = time.perf_counter() - start
        if op["state"] != "Succeeded":
            raise SystemExit(f"deploy of {name} failed: {op['error']}")
        return elapsed

    def delete(self, name: str) -> None:
        r = self.client.delete(f"/api/v1/services/{name}")
        r.raise_for_status()
        self.wait(r.json()["operation"]["id"])


def rounds_of(bench: Bench, body: dict[str, Any], prefix: str, rounds: int) -> list[float]:
    times = []
    for i in range(rounds):
        name = f"{prefix}-{i}"
        times.append(bench.deploy(name, body))
        bench.delete(name)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelhost-bench-deploy-") as tmp:
        root = Path(tmp)
        bench = Bench(root / "ws")
        try:
            model = b"weights"
            digest = bench.upload(model)
            files = [{"path": "model.bin", "sha256": digest, "size": len(model)}]
            bench.client.post(
                "/api/v1/models", json={"name": "m", "basename": "model.bin", "is_dir": False, "files": files}
            ).raise_for_status()
            src = root / "src"
            src.mkdir()
            (src / "score.py").write_text(SCRIPT)
            snapshot = bench.upload(make_snapshot(src, "score.py", root / "snap").path.read_bytes())
            env = bench.client.post(
                "/api/v1/environments", json={"name": "bench-env", "pip_requirements": "six\n"}
            )
            env.raise_for_status()
            version = env.json()["version"]
            start = time.perf_counter()
            build = bench.client.post("/api/v1/environments/bench-env/build", json={"version": version})
            built = bench.wait(build.json()["id"])
            if built["state"] != "Succeeded":
                raise SystemExit(f"environment build failed: {built['error']}")
            print(
                f"env first build: {time.perf_counter() - start:.1f} s (source {built['result']['source']})"
            )
            config = AksDeploymentConfig.checked(
                autoscale_enabled=False, num_replicas=1, **PROBE
            ).to_payload()
            body = {
                "models": ["m:1"],
                "entry_script": "score.py",
                "source_directory": "src",
                "snapshot": snapshot,
                "deployment_config": config,
            }
            cached = rounds_of(
                bench,
                {**body, "environment": {"name": "bench-env", "version": version}},
                "cached",
                args.rounds,
            )
            inherited = rounds_of(bench, {**body, "environment": None}, "inherit", args.rounds)
            runs = " ".join(f"{t:.2f}" for t in cached)
            print(
                f"deploy to Healthy (cached env): median {statistics.median(cached):.2f} s "
                f"(goal <= {GOAL_S:g} s)  [runs: {runs}]"
            )
            print(f"deploy to Healthy (inherited env): median {statistics.median(inherited):.2f} s")
        finally:
            bench.client.close()
            stop_all(bench.settings)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
