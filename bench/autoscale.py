"""Autoscaling under a load step: a fixed 1-replica service against the autoscaled one.

Starts everything itself in one process tree: the router (``python -m modelhost.router``), a
LocalRuntime with two services of the same entry script (``run()`` sleeps 50 ms; the router lets a
request wait 500 ms for a slot, then answers 503), a table publisher and the autoscaler loop (for
``auto`` only). Then it replays one schedule of closed-loop async clients against each service in
turn (``fixed`` first, the baseline)::

    1 client for 5 s  ->  10 clients for 15 s  ->  1 client for 10 s

and prints one line per figure, ``name: ours=<auto> baseline=<fixed> ratio=<ours/baseline>``:
latency p50/p99 of the answered requests, 503 count, answers, replica-seconds (replicas running,
starting ones included, integrated over the run), and for the step: the **decision latency** (step
start -> the loop's scale-up decision; baseline: the refresh period, the bound a decision waits at
most) and the **time until a new replica serves** (decision -> first answer from a replica started
for the step; baseline: the 2 s goal). A PNG of replicas and latency over time goes to
``bench/out/autoscale.png``.

    .venv/bin/python bench/autoscale.py [--step-clients 10] [--max-replicas 10] [--down-delay 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from modelhost.autoscale import AutoscaleConfig  # noqa: E402
from modelhost.control.autoscaler import AutoscalerLoop, RouterLoadSource, RuntimeTablePublisher  # noqa: E402
from modelhost.runtime.base import ProbeSettings, ServiceDeployment  # noqa: E402
from modelhost.runtime.local import LocalRuntime  # noqa: E402
from modelhost.types import ServiceName  # noqa: E402

ADMIN = "bench-admin"
GOAL_SERVE_S = 2.0
ENTRY_SCRIPT = """\
import os
import time


def init():
    pass


def run(raw_data):
    time.sleep(0.05)
    return {"replica": os.environ["MODELHOST_REPLICA_ID"]}
"""


@dataclass
class Answer:
    start: float  # time.monotonic()
    end: float
    status: int
    replica: str | None


@dataclass
class Run:
    service: str
    start: float
    step_start: float = 0.0
    step_end: float = 0.0
    end: float = 0.0
    answers: list[Answer] = field(default_factory=list)
    replicas_at_step: frozenset[str] = frozenset()


class DecisionLog(logging.Handler):
    """The loop's INFO lines with the monotonic time they were logged at."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[float, logging.LogRecord]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((time.monotonic(), record))


class ReplicaSampler:
    """Every 0.1 s: replicas of each service that are running (any state but stopping) and ready."""

    def __init__(self, runtime: LocalRuntime, services: list[str]) -> None:
        self.rows: list[tuple[float, str, int, int]] = []
        self._runtime, self._services = runtime, services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for name in self._services:
                st = self._runtime.status(ServiceName(name))
                running = sum(1 for r in st.replicas if r.state != "stopping")
                self.rows.append((time.monotonic(), name, running, len(st.ready)))

    def replica_seconds(self, service: str, start: float, end: float) -> float:
        rows = [(t, n) for t, name, n, _ in self.rows if name == service and start <= t <= end]
        return sum(n * (t2 - t1) for (t1, n), (t2, _) in itertools.pairwise(rows))


# -- load ------------------------------------------------------------------------------------------
# A raw asyncio HTTP/1.1 keep-alive client: httpx's per-request cost saturated a core at 20
# clients on the 2-core machine and became what the latency measured.
async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:  # chunked
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            parts.append((await reader.readexactly(size + 2))[:-2])
        await reader.readuntil(b"\r\n")
        body = b"".join(parts)
    return status, body, headers.get("connection", "").lower() == "close"


async def client(port: int, request: bytes, until: float, run: Run) -> None:
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.monotonic() < until:
        start = time.monotonic()
        try:
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = conn
            writer.write(request)
            status, body, close = await _read_response(reader)
            replica = json.loads(body).get("replica") if status == 200 else None
            run.answers.append(Answer(start, time.monotonic(), status, replica))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            run.answers.append(Answer(start, time.monotonic(), 0, None))
            close = True
        if close and conn is not None:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


async def replay(port: int, service: str, schedule: list[tuple[float, int]], run: Run,
                 runtime: LocalRuntime) -> None:
    body = b'{"data": [1]}'
    request = (f"POST /api/v1/service/{service}/score HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    for i, (seconds, clients) in enumerate(schedule):
        now = time.monotonic()
        if i == 1:
            run.step_start = now
            status = runtime.status(ServiceName(run.service))
            run.replicas_at_step = frozenset(r.id for r in status.replicas)
        if i == 2:
            run.step_end = now
        until = now + seconds
        await asyncio.gather(*(client(port, request, until, run) for _ in range(clients)))
    run.end = time.monotonic()


# -- figures ---------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def figures(run: Run, sampler: ReplicaSampler, log: DecisionLog | None) -> dict[str, float]:
    ok = [(a.end - a.start) * 1000 for a in run.answers if a.status == 200]
    out = {
        "p50_ms": percentile(ok, 50),
        "p99_ms": percentile(ok, 99),
        "errors_503": float(sum(a.status == 503 for a in run.answers)),
        "other_errors": float(sum(a.status not in (200, 503) for a in run.answers)),
        "answers_200": float(len(ok)),
        "replica_seconds": sampler.replica_seconds(run.service, run.start, run.end),
        "step_p99_ms": percentile([(a.end - a.start) * 1000 for a in run.answers
                                   if a.status == 200 and run.step_start <= a.start < run.step_end], 99),
    }
    if log is not None:
        ups = [t for t, r in log.records if getattr(r, "service", None) == run.service
               and getattr(r, "action", None) == "up" and t >= run.step_start]
        decided = ups[0] if ups else float("nan")
        served = [a.end for a in run.answers if a.status == 200 and a.replica not in run.replicas_at_step
                  and a.start >= run.step_start]
        out["decision_latency_s"] = decided - run.step_start
        out["new_replica_serves_s"] = (min(served) - decided) if served else float("nan")
        out["step_to_new_replica_serves_s"] = (min(served) - run.step_start) if served else float("nan")
    return out


def line(name: str, ours: float, baseline: float) -> str:
    ratio = ours / baseline if baseline else float("inf") if ours else 1.0
    return f"{name}: ours={ours:.3f} baseline={baseline:.3f} ratio={ratio:.3f}"


def plot(path: Path, runs: list[Run], sampler: ReplicaSampler, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for run, color in zip(runs, ("tab:gray", "tab:blue"), strict=True):
        rows = [(t - run.start, n) for t, name, n, _ in sampler.rows
                if name == run.service and run.start <= t <= run.end]
        top.step([t for t, _ in rows], [n for _, n in rows], where="post", color=color, label=run.service)
        ok = [(a.start - run.start, (a.end - a.start) * 1000) for a in run.answers if a.status == 200]
        bottom.scatter([t for t, _ in ok], [ms for _, ms in ok], s=3, color=color, label=f"{run.service} 200")
        errors = [a.start - run.start for a in run.answers if a.status == 503]
        bottom.scatter(errors, [600.0] * len(errors), s=12, marker="x", color=color,
                       label=f"{run.service} 503 ({len(errors)})")
    for run in runs[:1]:
        for at in (run.step_start, run.step_end):
            top.axvline(at - run.start, color="k", linestyle=":")
            bottom.axvline(at - run.start, color="k", linestyle=":")
    top.set_ylabel("replicas running")
    top.legend()
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the run started")
    bottom.legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# -- setup -----------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(predicate, deadline_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if predicate():
                return
        except (OSError, httpx.HTTPError, KeyError):
            pass
        time.sleep(0.05)
    raise SystemExit(f"bench: {what} not reached within {deadline_s} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-clients", type=int, default=2, help="clients before and after the step")
    p.add_argument("--step-clients", type=int, default=20)
    p.add_argument("--before", type=float, default=5.0, help="seconds at the base load before the step")
    p.add_argument("--step", type=float, default=15.0, help="seconds of the step")
    p.add_argument("--after", type=float, default=10.0, help="seconds at the base load after the step")
    p.add_argument("--max-replicas", type=int, default=10)
    p.add_argument("--target", type=int, default=70, help="autoscale_target_utilization")
    p.add_argument("--refresh", type=float, default=1.0, help="autoscale_refresh_seconds")
    p.add_argument("--down-delay", type=float, default=5.0, help="autoscale_scale_down_delay_seconds")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "autoscale.png")
    a = p.parse_args()
    schedule = [(a.before, a.base_clients), (a.step, a.step_clients), (a.after, a.base_clients)]

    work = Path(tempfile.mkdtemp(prefix="modelhost-bench-autoscale-"))
    (work / "score.py").write_text(ENTRY_SCRIPT)
    port = free_port()
    router_url = f"http://127.0.0.1:{port}"
    router = subprocess.Popen([sys.executable, "-m", "modelhost.router", "--port", str(port), "--table",
                               str(work / "table.json"), "--admin-token", ADMIN, "--access-log", "off",
                               "--log-level", "WARNING"], start_new_session=True)
    runtime = LocalRuntime(work / "home", gpus=lambda: (), stop_grace_s=5.0)
    services = ["fixed", "auto"]
    log = DecisionLog()
    logging.getLogger("modelhost.autoscaler").addHandler(log)
    logging.getLogger("modelhost.autoscaler").setLevel(logging.INFO)
    publisher = loop = load_source = sampler = None
    try:
        wait(lambda: httpx.get(f"{router_url}/-/health").status_code == 200, 30, "router up")
        for name in services:
            runtime.deploy(ServiceDeployment(
                service=ServiceName(name), generation=1, python=Path(sys.executable),
                entry_script=str(work / "score.py"), source_dir="src",
                probe=ProbeSettings(period_seconds=1, initial_delay_seconds=60)))
        route = {"auth_enabled": False, "max_queue_wait_ms": 500}
        routes = {ServiceName(n): route for n in services}
        publisher = RuntimeTablePublisher(runtime, router_url, ADMIN, routes)
        publisher.start()
        config = AutoscaleConfig.checked(min_replicas=1, max_replicas=a.max_replicas,
                                         target_utilization=a.target, refresh_seconds=a.refresh,
                                         scale_down_delay_s=a.down_delay)
        load_source = RouterLoadSource(router_url)
        loop = AutoscalerLoop(runtime, load_source, publisher, lambda: {ServiceName("auto"): config})
        load_url = f"{router_url}/-/load"
        for name in services:
            wait(lambda name=name: httpx.get(load_url).json()["services"][name]["replicas"] == 1,
                 60, f"{name} routed")
        loop.start()
        sampler = ReplicaSampler(runtime, services)
        sampler.start()
        runs = []
        for name in services:
            run = Run(name, time.monotonic())
            asyncio.run(replay(port, name, schedule, run, runtime))
            runs.append(run)
            print(f"# {name}: {len(run.answers)} answers in {run.end - run.start:.1f} s", file=sys.stderr)
        baseline, ours = figures(runs[0], sampler, None), figures(runs[1], sampler, log)
        for key in ("p50_ms", "p99_ms", "step_p99_ms", "errors_503", "other_errors", "answers_200",
                    "replica_seconds"):
            print(line(key, ours[key], baseline[key]))
        print(line("decision_latency_s_vs_refresh", ours["decision_latency_s"], a.refresh))
        for key, figure in (("new_replica_serves_s_after_decision_vs_goal", "new_replica_serves_s"),
                            ("new_replica_serves_s_after_step_vs_goal", "step_to_new_replica_serves_s")):
            print(line(key, ours[figure], GOAL_SERVE_S))
        peak = max((n for _, name, n, _ in sampler.rows if name == "auto"), default=0)
        print(f"# auto peak replicas: {peak}; decisions:", file=sys.stderr)
        for t, record in log.records:
            if getattr(record, "action", None):
                print(f"#   +{t - runs[1].start:6.2f}s {record.getMessage()}", file=sys.stderr)
        title = (f"{a.base_clients} clients -> {a.step_clients} -> {a.base_clients}: "
                 "fixed 1 replica vs autoscaled")
        plot(a.out, runs, sampler, title)
        print(f"# plot: {a.out}", file=sys.stderr)
    finally:
        if sampler is not None:
            sampler.stop()
        if loop is not None:
            loop.stop()
        if publisher is not None:
            publisher.stop()
        if load_source is not None:
            load_source.close()
        for st in runtime.services():
            runtime.delete(st.service)
        runtime.close()
        router.terminate()
        router.wait(15)


if __name__ == "__main__":
    main()
