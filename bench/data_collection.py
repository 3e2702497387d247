"""Data-collection benchmark: the same entry script with ModelDataCollector off vs on, at c=16.

One modelhost-score process pinned to CPU 1 serves bench/entry_collect/score.py, which collects each
request's input row (with v1's correlation columns) and its correlated prediction. "off" runs it
without ``MODELHOST_DATA_COLLECTION_DIR`` (collect() is a no-op), "on" with it set to a temp folder.
wrk (CPU 0) POSTs bench/post.lua's body; the two servers are measured alternately, round by round,
and ``ratio`` (on/off req/s) is the median of the per-round ratios. The target: on costs <= 10 % of
throughput (ratio >= 0.90). Also prints the server's CPU time per request (user + system of the
supervisor and its worker, read from /proc around each timed run): on a shared machine it moves less
than req/s, and off/on of it is the throughput ratio a CPU-bound server would see. And the rows written
and dropped (a full buffer would flatter "on": dropped rows cost nothing).

Usage: .venv/bin/python bench/data_collection.py [--duration 5] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _wrk import ensure_wrk, run_wrk
from scoring import REPO, Server, free_port, paired_ratio

ENTRY = Path(__file__).resolve().parent / "entry_collect" / "score.py"
TARGET = 0.90
WRK_CPU = 0


def _server(name: str) -> Server:
    port = free_port()
    server = str(REPO / ".venv" / "bin" / "modelhost-score")
    argv = [server, "--entry_script", str(ENTRY), "--port", str(port)]
    return Server(name, argv, port)


def _start(server: Server, pin: bool, data_dir: str | None) -> None:
    # Server.start copies os.environ: set the switch only around the "on" server's start
    old = os.environ.pop("MODELHOST_DATA_COLLECTION_DIR", None)
    if data_dir is not None:
        os.environ["MODELHOST_DATA_COLLECTION_DIR"] = data_dir
        os.environ["SERVICE_NAME"] = "bench"
    try:
        server.start(pin)
    finally:
        os.environ.pop("MODELHOST_DATA_COLLECTION_DIR", None)
        os.environ.pop("SERVICE_NAME", None)
        if old is not None:
            os.environ["MODELHOST_DATA_COLLECTION_DIR"] = old


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children (the scoring workers) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for p in [str(pid), *children]:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _counters(data_dir: str) -> tuple[int, int]:
    written = dropped = 0
    for path in Path(data_dir, ".stats").rglob("*.json"):
        stats = json.loads(path.read_text())
        written += int(stats["written"])
        dropped += int(stats["dropped"])
    return written, dropped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per server")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; figures are medians")
    args = parser.parse_args(argv)
    c = args.connections
    pin = (os.cpu_count() or 1) >= 2
    wrk_cpu = WRK_CPU if pin else None
    ensure_wrk()
    data_dir = tempfile.mkdtemp(prefix="modelhost-bench-data-")
    off, on = _server("collect_off"), _server("collect_on")
    cpu: dict[str, list[float]] = {off.name: [], on.name: []}
    try:
        _start(off, pin, None)
        _start(on, pin, data_dir)
        for round_no in range(args.rounds):
            for server in (off, on):
                url = f"http://127.0.0.1:{server.port}/score"
                run_wrk(url, c, args.warmup, wrk_cpu)
                assert server.proc is not None
                before = _cpu_s(server.proc.pid)
                result = run_wrk(url, c, args.duration, wrk_cpu)
                # CPU per request: robust to other tenants of a shared machine, unlike req/s
                cpu_us = (_cpu_s(server.proc.pid) - before) / (result.requests_per_s * args.duration) * 1e6
                cpu[server.name].append(cpu_us)
                server.results.setdefault(c, []).append(result)
                print(f"# round {round_no} {server.name}: {result.requests_per_s:.0f} req/s "
                      f"p50={result.p50_ms:.3f}ms p99={result.p99_ms:.3f}ms errors={result.errors} "
                      f"cpu={cpu_us:.0f}us/req", file=sys.stderr)
    finally:
        off.stop()
        on.stop()  # SIGTERM: the writer flushes, so the counters below are final
    written, dropped = _counters(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    for attr, label in (("requests_per_s", "req_per_s"), ("p50_ms", "p50_ms"), ("p99_ms", "p99_ms")):
        a, b = on.median(c, attr), off.median(c, attr)
        r = paired_ratio(on, off, c, attr)
        print(f"{label}_c{c}_collect_on_vs_off: ours={a:.3f} baseline={b:.3f} ratio={r:.2f}"
              if a is not None and b is not None and r is not None else f"{label}_c{c}: n/a")
    cpu_ratios = [a / b for a, b in zip(cpu[on.name], cpu[off.name], strict=False) if b]
    if cpu_ratios:
        r_cpu = statistics.median(cpu_ratios)
        print(f"cpu_us_per_req_c{c}_collect_on_vs_off: ours={statistics.median(cpu[on.name]):.1f} "
              f"baseline={statistics.median(cpu[off.name]):.1f} ratio={r_cpu:.2f} "
              f"(throughput if CPU-bound: {1 / r_cpu:.2f} of off)")
    print(f"rows_collected: written={written} dropped={dropped}")
    r = paired_ratio(on, off, c, "requests_per_s")
    median_on = statistics.median(x.requests_per_s for x in on.results.get(c, [])) if on.results else 0
    verdict = "UNKNOWN" if r is None else ("PASS" if r >= TARGET else "FAIL")
    print(f"verdict collection on >= {TARGET:.0%} of off req/s at c={c}: {verdict} "
          f"(ratio={r if r is None else round(r, 2)}, on={median_on:.0f} req/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
