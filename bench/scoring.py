"""Scoring-server benchmark: modelhost-score vs azureml-inference-server-http 1.5.1 vs bare Starlette.

All three serve the same trivial entry script (bench/entry/score.py) with their default concurrency,
each as one process pinned to CPU 1 (azmlinfsrv: gunicorn with its one sync worker, request log on;
modelhost-score: defaults; bare Starlette: uvicorn + uvloop + httptools, run() on a one-thread
executor). wrk runs pinned to CPU 0 and POSTs a small JSON body. The servers are measured
alternately, round by round, so drift on a shared machine hits all of them alike; ``ours`` and
``baseline`` are medians over the rounds, ``ratio`` is the median of the per-round ratios. Prints
``name: ours=… baseline=… ratio=…`` lines and a verdict for the two targets (>= 8x azmlinfsrv and
>= 85 % of bare Starlette in req/s at c=16).

Usage: .venv/bin/python bench/scoring.py [--duration 5] [--connections 1,16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _wrk import WrkResult, ensure_wrk, run_wrk

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ENTRY = BENCH / "entry" / "score.py"
OUT = BENCH / "out"
SERVER_CPU, WRK_CPU = 1, 0
TARGET_VS_V1 = 8.0
TARGET_VS_BARE = 0.85


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def azmlinfsrv_venv() -> Path:
    """The reference server's venv: MODELHOST_TEST_AZMLINFSRV, else what setup-azmlinfsrv.sh prints."""
    venv = os.environ.get("MODELHOST_TEST_AZMLINFSRV")
    if not venv:
        venv = subprocess.run([str(REPO / "scripts" / "setup-azmlinfsrv.sh")], check=True, text=True,
                              stdout=subprocess.PIPE, timeout=900).stdout.strip()
    return Path(venv)


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    proc: subprocess.Popen[bytes] | None = None
    results: dict[int, list[WrkResult]] = field(default_factory=dict)

    def start(self, pin: bool, deadline_s: float = 120) -> None:
        argv = ["taskset", "-c", str(SERVER_CPU), *self.argv] if pin else self.argv
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AML_", "AZUREML_", "SCORING_"))}
        env["AML_APP_ROOT"] = str(ENTRY.parent)
        OUT.mkdir(exist_ok=True)
        # Server logs (v1's per-request line included) go to a file: logging stays on, off the terminal.
        log = (OUT / f"{self.name}.log").open("wb")
        self.proc = subprocess.Popen(argv, cwd=ENTRY.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {log.name}")
            if self._healthy():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready within {deadline_s} s; see {log.name}")

    def _healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)

    def median(self, connections: int, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.results.get(connections, [])]
        return statistics.median(values) if values else None


def servers() -> list[Server]:
    v1 = azmlinfsrv_venv() / "bin" / "azmlinfsrv"
    python = REPO / ".venv" / "bin" / "python"
    ports = [free_port() for _ in range(3)]
    return [
        Server("modelhost", [str(REPO / ".venv" / "bin" / "modelhost-score"), "--entry_script", str(ENTRY),
                             "--port", str(ports[0])], ports[0]),
        Server("azmlinfsrv", [str(v1), "--entry_script", str(ENTRY), "--port", str(ports[1])], ports[1]),
        Server("bare_starlette", [str(python), str(BENCH / "_bare_app.py"), str(ENTRY), str(ports[2])],
               ports[2]),
    ]


def fmt(value: float | None, attr: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if attr == "requests_per_s" else f"{value:.3f}"


def paired_ratio(ours: Server, base: Server, c: int, attr: str) -> float | None:
    """Median over rounds of ours/baseline measured in the same round: robust to drift between rounds."""
    pairs = zip(ours.results.get(c, []), base.results.get(c, []), strict=False)
    ratios = [getattr(a, attr) / getattr(b, attr) for a, b in pairs if getattr(b, attr)]
    return statistics.median(ratios) if ratios else None


def report(ours: Server, base: Server, connections: Sequence[int]) -> None:
    for c in connections:
        for attr, label in (("requests_per_s", "req_per_s"), ("p50_ms", "p50_ms"), ("p99_ms", "p99_ms")):
            a, b = ours.median(c, attr), base.median(c, attr)
            r = paired_ratio(ours, base, c, attr)
            ratio = "n/a" if r is None else f"{r:.2f}"
            print(f"{label}_c{c}_{ours.name}_vs_{base.name}: ours={fmt(a, attr)} baseline={fmt(b, attr)} "
                  f"ratio={ratio}")


def verdict(ours: Server, base: Server, target: float, c: int) -> None:
    r = paired_ratio(ours, base, c, "requests_per_s")
    goal = f"{target:g}x" if target >= 1 else f"{target:.0%} of"
    prefix = f"verdict {ours.name} >= {goal} {base.name} req/s at c={c}"
    if r is None:
        print(f"{prefix}: UNKNOWN (not measured)")
        return
    print(f"{prefix}: {'PASS' if r >= target else 'FAIL'} (ratio={r:.2f})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per server and c")
    parser.add_argument("--connections", default="1,16", help="comma list of wrk connection counts")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; figures are medians")
    args = parser.parse_args(argv)
    connections = [int(c) for c in args.connections.split(",")]
    pin = (os.cpu_count() or 1) >= 2
    wrk_cpu = WRK_CPU if pin else None
    ensure_wrk()
    all_servers = servers()
    live: list[Server] = []
    try:
        for server in all_servers:
            try:
                server.start(pin)
                live.append(server)
            except (RuntimeError, TimeoutError) as exc:
                print(f"# {server.name} unavailable: {exc}", file=sys.stderr)
        for round_no in range(args.rounds):
            for c in connections:
                for server in live:
                    url = f"http://127.0.0.1:{server.port}/score"
                    run_wrk(url, c, args.warmup, wrk_cpu)
                    result = run_wrk(url, c, args.duration, wrk_cpu)
                    if result.errors:
                        print(f"# {server.name} c={c} round {round_no}: {result.errors} errors",
                              file=sys.stderr)
                    server.results.setdefault(c, []).append(result)
                    print(f"# round {round_no} c={c} {server.name}: {result.requests_per_s:.0f} req/s "
                          f"p50={result.p50_ms:.3f}ms p99={result.p99_ms:.3f}ms", file=sys.stderr)
    finally:
        for server in all_servers:
            server.stop()
    modelhost, v1, bare = all_servers
    report(modelhost, v1, connections)
    report(modelhost, bare, connections)
    top = max(connections)
    verdict(modelhost, v1, TARGET_VS_V1, top)
    verdict(modelhost, bare, TARGET_VS_BARE, top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
