"""One run of one container as a local process group: bind mounts in a private mount namespace
(``unshare --mount --propagation private`` then ``mount --bind``), the working directory, the
environment, output to a log file; and the probes a kubelet runs against it."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.k8s.volumes import Mount

__all__ = ["NETSHIM_DIR", "ProcessRun", "run_probe"]

NETSHIM_DIR = Path(__file__).parent / "netshim"


def _script(mounts: Sequence[Mount], working_dir: str | None) -> str:
    lines = ["set -e"]
    for m in mounts:
        src, dst = shlex.quote(str(m.source)), shlex.quote(m.target)
        if m.source.is_dir():
            lines.append(f"mkdir -p {dst}")
        else:  # a file (subPath into a secret): bind it onto a file
            lines.append(f"mkdir -p $(dirname {dst}); [ -e {dst} ] || : > {dst}")
        lines.append(f"mount --bind {src} {dst}")
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {dst}")
    if working_dir:
        lines.append(f"mkdir -p {shlex.quote(working_dir)}; cd {shlex.quote(working_dir)}")
    lines.append('exec "$@"')
    return "\n".join(lines)


class ProcessRun:
    """A started container process (its own session and process group)."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        mounts: Sequence[Mount],
        working_dir: str | None,
        log_path: Path,
    ) -> None:
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        wrapper = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            _script(mounts, working_dir),
            "sh",
            *argv,
        ]
        with log_path.open("ab") as out:
            self.popen = subprocess.Popen(
                wrapper,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group and reap the leader."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def exec_in(self, argv: Sequence[str], env: Mapping[str, str], timeout_s: float) -> int:
        """Run ``argv`` in this process's mount namespace (exec probes, preStop hooks); its exit status."""
        cmd = ["nsenter", "-t", str(self.popen.pid), "-m", "--", *argv]
        try:
            done = subprocess.run(
                cmd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout_s,
                check=False,
            )
        except (subprocess.TimeoutExpired, OSError):
            return -1
        return done.returncode


def _port(value: Any, ports: Mapping[str, int]) -> int:
    if isinstance(value, str) and not value.isdigit():
        return ports[value]
    return int(value)


def run_probe(
    probe: Mapping[str, Any], pod_ip: str, ports: Mapping[str, int], run: ProcessRun, env: Mapping[str, str]
) -> bool:
    """One probe attempt (``httpGet``, ``tcpSocket`` or ``exec``); ``True`` when it succeeded."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "httpGet" in probe:
            return _http_probe(probe["httpGet"], pod_ip, ports, timeout)
        if "tcpSocket" in probe:
            tcp = probe["tcpSocket"]
            with socket.create_connection((tcp.get("host") or pod_ip, _port(tcp["port"], ports)), timeout):
                return True
        if "exec" in probe:
            return run.exec_in(probe["exec"]["command"], env, timeout) == 0
    except (OSError, KeyError, ValueError):
        return False
    return False


def _http_probe(get: Mapping[str, Any], pod_ip: str, ports: Mapping[str, int], timeout: float) -> bool:
    scheme = str(get.get("scheme") or "HTTP").lower()
    host = get.get("host") or pod_ip
    path = str(get.get("path") or "/")
    url = f"{scheme}://{host}:{_port(get['port'], ports)}{path if path.startswith('/') else '/' + path}"
    headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
    headers.setdefault("User-Agent", "kube-probe/1.20")
    req = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(  # no proxy from the environment; kubelets skip verification
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl._create_unverified_context())
    )
    try:
        with opener.open(req, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 400
    except urllib.error.HTTPError as exc:
        return 200 <= exc.code < 400
