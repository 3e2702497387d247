"""Router overhead: wrk through the router, wrk straight to the replica, wrk through nginx.

Starts every side itself, pins them as GUIDE §6 measured (wrk on cpu 0; router or nginx and the
replica sharing cpu 1), runs the three targets alternately at each concurrency, and prints one
line per figure::

    name: ours=<router> baseline=<nginx or direct> ratio=<ours/baseline>

Targets: router req/s >= 75 % of nginx's, and at c=1 a p50 added over direct of <= 0.3 ms.
TLS: a second router serving HTTPS (``--certfile``, a P-256 certificate from modelhost.tls) against
nginx's ``listen ssl`` with the same certificate, both with keep-alive clients (wrk reuses its
connections); target: router TLS req/s >= 70 % of nginx TLS at c=16.
Token auth: the same router and replica under a second service with ``auth_mode: token`` (an
EdDSA JWT, verified once and then cached); target: req/s >= 90 % of key auth's at c=16.
Telemetry: the same router under a third service with ``telemetry: true`` (a span per request to a
JSON-lines file); the row compares it with the plain service (docs/telemetry.md).

The replica is modelhost's scoring server on a trivial entry script when ``modelhost-score`` is
installed and starts, else a bare uvicorn ASGI app; the output says which.

    .venv/bin/python bench/router.py --duration 5 --rounds 1
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
BODY = '{"data": [[5.1, 3.5, 1.4, 0.2]]}'

ENTRY_SCRIPT = '''\
def init():
    pass


def run(raw_data):
    return {"result": [1]}
'''

LUA = f"""\
wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {KEY}"
"""

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {tmp}/nginx-access.log combined buffer=64k flush=1s;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    client_max_body_size 100m;
    upstream replica {{ server 127.0.0.1:{replica_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location /api/v1/service/bench/ {{
            proxy_pass http://replica/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {tmp}/tls/cert.pem;
        ssl_certificate_key {tmp}/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location /api/v1/service/bench/ {{
            proxy_pass http://replica/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def write_tls(tmp: Path) -> None:
    """One certificate for both TLS front doors (tmp/tls/cert.pem + key.pem)."""
    from datetime import UTC, datetime

    from modelhost.tls import generate_ca, issue_leaf

    now = datetime.now(UTC)
    leaf = issue_leaf(generate_ca(now), ["127.0.0.1", "localhost"], now)
    (tmp / "tls").mkdir()
    (tmp / "tls" / "cert.pem").write_bytes(leaf.cert_pem)
    (tmp / "tls" / "key.pem").write_bytes(leaf.key_pem)


# -- the bare replica (python bench/router.py --serve-replica PORT) --------------------------------
async def bare_app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = json.dumps({"result": [1]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def serve_replica(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                http="httptools", loop="uvloop")


# -- token auth ------------------------------------------------------------------------------------
@functools.cache
def bench_token() -> tuple[dict[str, object], str]:
    """Table fields (issuer, public key) for a fresh Ed25519 key, and a 1 h token for bench-token."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from modelhost.control.signing_keys import kid_of, public_text
    from modelhost.control.tokens import TokenPolicy, claims_for

    key = Ed25519PrivateKey.generate()
    claims = claims_for("modelhost:bench", "bench-token", "bench", time.time(), TokenPolicy(3600, 1800), "b")
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid_of(key)})
    return {"token_issuer": "modelhost:bench", "token_keys": {kid_of(key): public_text(key)}}, token


# -- processes --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str, deadline_s: float = 30.0,
              proc: subprocess.Popen[bytes] | None = None) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def start(cmd: list[str], cpu: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(["taskset", "-c", cpu, *cmd], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def start_replica(tmp: Path, kind: str) -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    score = shutil.which("modelhost-score", path=str(ROOT / ".venv" / "bin"))
    if kind in ("auto", "modelhost") and score:
        (tmp / "score.py").write_text(ENTRY_SCRIPT)
        proc = start([score, "--entry_script", str(tmp / "score.py"), "--port", str(port)], "1",
                     tmp / "replica.log")
        if wait_http(port, "/", 60, proc):
            return proc, port, "modelhost scoring server (modelhost-score, trivial entry script)"
        stop(proc)
        if kind == "modelhost":
            sys.exit(f"modelhost-score did not start; see {tmp / 'replica.log'}")
    proc = start([sys.executable, __file__, "--serve-replica", str(port)], "1", tmp / "replica.log")
    if not wait_http(port, "/score", 30, proc):
        sys.exit(f"bare replica did not start; see {tmp / 'replica.log'}")
    return proc, port, "bare uvicorn ASGI app (modelhost-score unavailable)"


def start_router(tmp: Path, replica_port: int, tls: bool = False) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    tls_dir, name = tmp / "tls", "router-tls" if tls else "router"
    extra = ["--certfile", str(tls_dir / "cert.pem"), "--keyfile", str(tls_dir / "key.pem")] if tls else []
    table = {"version": 1, "services": {"bench": {
        "replicas": [{"id": "bench-0", "host": "127.0.0.1", "port": replica_port}],
        "keys": [KEY], "max_concurrent_per_replica": 1000}}}
    table["services"]["bench-token"] = {  # type: ignore[index]
        "replicas": [{"id": "bench-0", "host": "127.0.0.1", "port": replica_port}],
        "auth_mode": "token", "max_concurrent_per_replica": 1000}
    table["services"]["bench-tele"] = {  # type: ignore[index]  # request telemetry on (docs/telemetry.md)
        "replicas": [{"id": "bench-0", "host": "127.0.0.1", "port": replica_port}],
        "keys": [KEY], "max_concurrent_per_replica": 1000, "telemetry": True}
    table.update(bench_token()[0])
    (tmp / "table.json").write_text(json.dumps(table))
    proc = start([sys.executable, "-m", "modelhost.router", "--port", str(port),
                  "--table", str(tmp / "table.json"), "--access-log", str(tmp / f"{name}-access.log"),
                  "--log-level", "WARNING", "--telemetry-dir", str(tmp / f"{name}-telemetry"), *extra],
                 "1", tmp / f"{name}.log")
    if not wait_http(port, "/-/health", 30, proc):
        sys.exit(f"router did not start; see {tmp / (name + '.log')}")
    return proc, port


def start_nginx(tmp: Path, replica_port: int, tls_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, replica_port=replica_port, tls_port=tls_port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    user = "user root;" if os.geteuid() == 0 else ""  # workers stay root so they can write the logs
    proc = start([nginx, "-p", str(tmp), "-c", str(conf), "-g", user], "1", tmp / "nginx.log")
    if not wait_http(port, "/api/v1/service/bench/score", 30, proc):
        sys.exit(f"nginx did not start; see {tmp / 'nginx.log'} and {tmp / 'nginx-error.log'}")
    return proc, port


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every process in a process group (the proxy, nginx's workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# -- wrk ------------------------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot read latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, connections: int, duration: float, lua: Path) -> dict[str, float]:
    out = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
         "-s", str(lua), url],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
              "requests": float(re.search(r"(\d+) requests in", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "99"):
        result[f"p{pct}"] = _ms(re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        problems = " ".join(m.group(0) for m in (bad, errors) if m)
        print(f"  warning: {url} c={connections}: {problems}", file=sys.stderr)
    return result


def line(name: str, ours: float, baseline: float, unit: str = "") -> None:
    ratio = ours / baseline if baseline else float("nan")
    print(f"{name}: ours={ours:.3f}{unit} baseline={baseline:.3f}{unit} ratio={ratio:.3f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds; medians are reported")
    p.add_argument("--connections", default="1,16", help="wrk concurrencies (default 1,16)")
    p.add_argument("--replica", choices=["auto", "modelhost", "bare"], default="auto")
    p.add_argument("--serve-replica", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_replica:
        serve_replica(args.serve_replica)
        return
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install wrk util-linux)")
    conns = [int(c) for c in args.connections.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-router-") as tmp_s:
        tmp = Path(tmp_s)
        lua = tmp / "post.lua"
        lua.write_text(LUA)
        procs = []
        try:
            replica, replica_port, replica_desc = start_replica(tmp, args.replica)
            procs.append(replica)
            router, router_port = start_router(tmp, replica_port)
            procs.append(router)
            write_tls(tmp)
            router_tls, router_tls_port = start_router(tmp, replica_port, tls=True)
            procs.append(router_tls)
            nginx_tls_port = free_port()
            nginx, nginx_port = start_nginx(tmp, replica_port, nginx_tls_port)
            procs.append(nginx)
            print(f"# replica: {replica_desc}; nginx {_nginx_version()}; {os.cpu_count()} cpus; "
                  f"{args.duration:g} s per run, {args.rounds} round(s)", flush=True)
            pgids = {"direct": None, "router": router.pid, "nginx": nginx.pid, "token": router.pid,
                     "router_tls": router_tls.pid, "nginx_tls": nginx.pid, "telemetry": router.pid}
            urls = {
                "direct": f"http://127.0.0.1:{replica_port}/score",
                "router": f"http://127.0.0.1:{router_port}/api/v1/service/bench/score",
                "nginx": f"http://127.0.0.1:{nginx_port}/api/v1/service/bench/score",
                "token": f"http://127.0.0.1:{router_port}/api/v1/service/bench-token/score",
                "router_tls": f"https://127.0.0.1:{router_tls_port}/api/v1/service/bench/score",
                "nginx_tls": f"https://127.0.0.1:{nginx_tls_port}/api/v1/service/bench/score",
                "telemetry": f"http://127.0.0.1:{router_port}/api/v1/service/bench-tele/score",
            }
            luas = dict.fromkeys(urls, lua)
            luas["token"] = tmp / "post-token.lua"
            luas["token"].write_text(LUA.replace(f"Bearer {KEY}", f"Bearer {bench_token()[1]}"))
            for name, url in urls.items():  # warm up: imports, pools, caches
                wrk(url, 4, 1, luas[name])
            runs: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
            for _ in range(args.rounds):
                for c in conns:
                    for name, url in urls.items():
                        pgid = pgids[name]
                        cpu0 = cpu_seconds(pgid) if pgid else 0.0
                        r = wrk(url, c, args.duration, luas[name])
                        r["cpu_us"] = (cpu_seconds(pgid) - cpu0) / r["requests"] * 1e6 if pgid else 0.0
                        runs[(name, c)].append(r)
                        print(f"#   {name:10s} c={c:<3d} {r['rps']:9.0f} req/s  p50={r['p50']:.3f}ms "
                              f"p99={r['p99']:.3f}ms  proxy cpu/req={r['cpu_us']:.1f}us", flush=True)
            report(runs, conns)
        finally:
            for proc in reversed(procs):
                stop(proc)


def _nginx_version() -> str:
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return out.split("/")[-1] if "/" in out else out


def report(runs: dict[tuple[str, int], list[dict[str, float]]], conns: list[int]) -> None:
    def med(name: str, c: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[(name, c)])

    for c in conns:
        line(f"router_vs_nginx_rps_c{c}", med("router", c, "rps"), med("nginx", c, "rps"))
    for c in conns:
        line(f"router_tls_vs_nginx_tls_rps_c{c}", med("router_tls", c, "rps"), med("nginx_tls", c, "rps"))
    for c in conns:
        line(f"router_tls_vs_router_plain_rps_c{c}", med("router_tls", c, "rps"), med("router", c, "rps"))
    for c in conns:
        line(f"router_vs_direct_rps_c{c}", med("router", c, "rps"), med("direct", c, "rps"))
    for c in conns:
        line(f"token_auth_vs_key_auth_rps_c{c}", med("token", c, "rps"), med("router", c, "rps"))
    for c in conns:
        line(f"telemetry_on_vs_off_rps_c{c}", med("telemetry", c, "rps"), med("router", c, "rps"))
    for c in conns:
        direct = med("direct", c, "p50")
        line(f"added_p50_ms_c{c}_router_vs_nginx", med("router", c, "p50") - direct,
             med("nginx", c, "p50") - direct)
    for c in conns:
        line(f"p99_ms_c{c}_router_vs_nginx", med("router", c, "p99"), med("nginx", c, "p99"))
    for c in conns:
        line(f"proxy_cpu_us_per_req_c{c}_router_vs_nginx", med("router", c, "cpu_us"),
             med("nginx", c, "cpu_us"))
    for c in conns:
        line(f"p99_ms_c{c}_router_vs_direct", med("router", c, "p99"), med("direct", c, "p99"))


if __name__ == "__main__":
    main()
