"""Drive ``wrk`` (Debian package) against one URL and parse the summary line bench/post.lua prints."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).parent / "post.lua"
_SUMMARY = re.compile(r"WRK_SUMMARY requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) "
                      r"errors=(\d+) non2xx=(\d+)")


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def ensure_wrk() -> str:
    """Path of ``wrk``, installing the Debian package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, timeout=300)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not on PATH after apt-get install wrk")
    return found


def run_wrk(url: str, connections: int, duration_s: float, cpu: int | None) -> WrkResult:
    """One bounded wrk run (one thread) pinned to ``cpu`` when given; raises if wrk fails."""
    argv = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "5s",
            "-s", str(LUA), url]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    match = _SUMMARY.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    requests, duration_us, p50_us, p99_us, errors, _ = (int(g) for g in match.groups())
    return WrkResult(requests / (duration_us / 1e6), p50_us / 1000, p99_us / 1000, errors)
