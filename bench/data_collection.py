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

``--micro N`` instead calls the entry script's run() N times in this process, off and on alternately,
and prints the CPU time per call of this process's threads (the writer thread's CSV formatting
included: it shares the GIL): a steadier figure than req/s on a busy machine. The buffer is made large
enough that no row is dropped, and each round ends when the writer has written everything.

Usage: .venv/bin/python bench/data_collection.py [--duration 5] [--rounds 3] [--connections 16]
       .venv/bin/python bench/data_collection.py --micro 20000 [--rounds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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


def _thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid`` and its children, by thread id (creation order)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for p in [str(pid), *children]:
        for tid in os.listdir(f"/proc/{p}/task"):
            fields = Path(f"/proc/{p}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _counters(data_dir: str) -> tuple[int, int]:
    written = dropped = 0
    for path in Path(data_dir, ".stats").rglob("*.json"):
        stats = json.loads(path.read_text())
        written += int(stats["written"])
        dropped += int(stats["dropped"])
    return written, dropped


def _load_entry(name: str) -> Callable[[str], object]:
    spec = importlib.util.spec_from_file_location(name, ENTRY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    run: Callable[[str], object] = module.run
    return run


def micro(calls: int, rounds: int) -> int:
    """CPU µs per run() with collection off and on, in this process (writer thread included)."""
    from modelhost.scoring import data_collector
    from modelhost.scoring.invoke import current_request_id
    from modelhost.scoring.v1_compat import install_shims

    install_shims()
    os.environ.pop("MODELHOST_DATA_COLLECTION_DIR", None)
    runs = {"off": _load_entry("entry_off")}
    data_dir = tempfile.mkdtemp(prefix="modelhost-bench-data-")
    os.environ.update(MODELHOST_DATA_COLLECTION_DIR=data_dir, SERVICE_NAME="bench",
                      MODELHOST_DATA_COLLECTION_BUFFER_ROWS=str(4 * calls + 10))
    runs["on"] = _load_entry("entry_on")
    current_request_id.set("0a1b2c3d-0000-4000-8000-000000000000")
    body = '{"data": [[1.0, 2.0, 3.0, 4.0]]}'  # bench/post.lua's
    total: dict[str, list[float]] = {"off": [], "on": []}
    request: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for _ in range(rounds):
            for name, run in runs.items():
                cpu0, thread0 = time.process_time(), time.thread_time()
                for _ in range(calls):
                    run(body)
                thread1 = time.thread_time()
                assert data_collector.flush(120), "the writer did not catch up"
                total[name].append((time.process_time() - cpu0) / calls * 1e6)
                request[name].append((thread1 - thread0) / calls * 1e6)
    finally:
        data_collector.shutdown()
        dropped = data_collector.dropped_count()
        shutil.rmtree(data_dir, ignore_errors=True)
    # the least disturbed round of each: other tenants only ever add time
    on, off = min(total["on"]), min(total["off"])
    on_request, off_request = min(request["on"]), min(request["off"])
    print(f"micro_cpu_us_per_run_collect_on_vs_off: ours={on:.2f} baseline={off:.2f} ratio={on / off:.2f}")
    request_cost = on_request - off_request
    writer_cost = (on - on_request) - (off - off_request)
    print(f"micro_collect_cost_us_per_run: total={on - off:.2f} request_thread={request_cost:.2f} "
          f"writer_thread={writer_cost:.2f} (dropped={dropped})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per server")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; figures are medians")
    parser.add_argument("--micro", type=int, default=0, metavar="N",
                        help="in-process: CPU per run() over N calls, off vs on (no server, no wrk)")
    args = parser.parse_args(argv)
    if args.micro:
        return micro(args.micro, args.rounds)
    c = args.connections
    pin = (os.cpu_count() or 1) >= 2
    wrk_cpu = WRK_CPU if pin else None
    ensure_wrk()
    data_dir = tempfile.mkdtemp(prefix="modelhost-bench-data-")
    off, on = _server("collect_off"), _server("collect_on")
    cpu: dict[str, list[float]] = {off.name: [], on.name: []}
    threads: dict[str, list[list[float]]] = {off.name: [], on.name: []}
    try:
        _start(off, pin, None)
        _start(on, pin, data_dir)
        for round_no in range(args.rounds):
            for server in (off, on):
                url = f"http://127.0.0.1:{server.port}/score"
                run_wrk(url, c, args.warmup, wrk_cpu)
                assert server.proc is not None
                before = _cpu_s(server.proc.pid)
                threads_before = _thread_cpu_s(server.proc.pid)
                result = run_wrk(url, c, args.duration, wrk_cpu)
                # CPU per request: robust to other tenants of a shared machine, unlike req/s
                cpu_us = (_cpu_s(server.proc.pid) - before) / (result.requests_per_s * args.duration) * 1e6
                cpu[server.name].append(cpu_us)
                # per thread, in creation order: the event loop, the run() slot, then (on) the data writer
                requests = result.requests_per_s * args.duration
                per_thread = [(t - threads_before.get(tid, 0.0)) / requests * 1e6
                              for tid, t in sorted(_thread_cpu_s(server.proc.pid).items())]
                threads[server.name].append([x for x in per_thread if x >= 2.0])  # not idle helpers
                split = "/".join(f"{x:.0f}" for x in threads[server.name][-1])
                server.results.setdefault(c, []).append(result)
                print(f"# round {round_no} {server.name}: {result.requests_per_s:.0f} req/s "
                      f"p50={result.p50_ms:.3f}ms p99={result.p99_ms:.3f}ms errors={result.errors} "
                      f"cpu={cpu_us:.0f}us/req threads={split}", file=sys.stderr)
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
    for server in (on, off):
        rounds = [r for r in threads[server.name] if r]
        width = min(map(len, rounds), default=0)
        medians = [statistics.median(r[i] for r in rounds) for i in range(width)]
        print(f"threads_cpu_us_per_req_c{c}_{server.name}: {' / '.join(f'{m:.1f}' for m in medians)} "
              "(event loop / run() slot / data writer)")
    print(f"rows_collected: written={written} dropped={dropped}")
    r = paired_ratio(on, off, c, "requests_per_s")
    median_on = statistics.median(x.requests_per_s for x in on.results.get(c, [])) if on.results else 0
    verdict = "UNKNOWN" if r is None else ("PASS" if r >= TARGET else "FAIL")
    print(f"verdict collection on >= {TARGET:.0%} of off req/s at c={c}: {verdict} "
          f"(ratio={r if r is None else round(r, 2)}, on={median_on:.0f} req/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
