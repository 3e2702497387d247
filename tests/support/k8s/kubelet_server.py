"""The kubelet's log endpoint, served over HTTPS by the node agent so that the real API server's
``pods/log`` (``CoreV1Api.read_namespaced_pod_log``) works:
``GET /containerLogs/{namespace}/{pod}/{container}?tailLines=N&previous=true&limitBytes=N&follow=true``.
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.k8s.container import Container

__all__ = ["KubeletServer", "tail_bytes"]

ContainerFinder = Callable[[str, str, str], Container | None]


def tail_bytes(data: bytes, lines: int | None, limit: int | None) -> bytes:
    """The last ``lines`` lines of ``data`` (a trailing partial line counts as one), then at most the
    first ``limit`` bytes of that, as the kubelet applies ``tailLines`` and ``limitBytes``."""
    if lines is not None:
        if lines <= 0:
            data = b""
        else:
            parts = data.splitlines(keepends=True)
            data = b"".join(parts[-lines:])
    if limit is not None:
        data = data[:limit]
    return data


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read their own logs
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if url.path == "/healthz":
            self._send(200, b"ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._send(404, b"404 page not found (test node agent serves containerLogs only)\n")
            return
        _, namespace, pod, name = parts
        query = dict(urllib.parse.parse_qsl(url.query))
        container = self.server.find(namespace, pod, name)
        if container is None:
            self._send(404, f'container "{name}" in pod "{pod}" is not known to this node\n'.encode())
            return
        previous = query.get("previous", "false") == "true"
        path = _log_file(container, previous)
        if path is None:
            if previous:
                message = f'previous terminated container "{name}" in pod "{pod}" not found'
            else:  # the kubelet's words for a container that never ran
                message = f'container "{name}" in pod "{pod}" is waiting to start: {container.waiting_reason}'
            self._send(400, f"{message}\n".encode())
            return
        tail = int(query["tailLines"]) if "tailLines" in query else None
        limit = int(query["limitBytes"]) if "limitBytes" in query else None
        data = tail_bytes(path.read_bytes() if path.exists() else b"", tail, limit)
        if query.get("follow") == "true" and not previous:
            self._follow(container, path, data)
        else:
            self._send(200, data)

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _follow(self, container: Container, path: Path, first: bytes) -> None:
        """Stream the log while this run of the container lasts (HTTP/1.0: the body ends at close)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        offset = path.stat().st_size if path.exists() else 0
        chunk, done = first, False
        try:
            while True:
                if chunk:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                if done:
                    break
                done = container.run is None or container.run.log_path != path  # one last read after exit
                if not done:
                    time.sleep(0.2)
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                offset += len(chunk)
        except OSError:
            pass  # the client went away
        self.close_connection = True


def _log_file(container: Container, previous: bool) -> Path | None:
    runs = container.runs
    if previous:
        return runs[-2] if len(runs) >= 2 else None
    return runs[-1] if runs else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    find: ContainerFinder


class KubeletServer:
    """HTTPS on 127.0.0.1:<port>; ``find`` maps (namespace, pod, container) to the agent's container."""

    def __init__(self, find: ContainerFinder, cert: Path, key: Path) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.find = find
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="kubelet-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
