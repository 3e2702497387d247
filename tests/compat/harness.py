"""Black-box harness for the v1 compatibility suite: server processes, a raw HTTP client, expectations.

Both servers (the v1 reference ``azmlinfsrv`` and ``modelhost-score``) are started the same way on the
same entry script; every test sends the same requests to each and checks the same expectation, so a
disagreement shows up as one server's parametrization failing.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.net import free_port

SCRIPTS = Path(__file__).parent / "scripts"
REPO = Path(__file__).resolve().parents[2]
KINDS = ("azmlinfsrv", "modelhost")

# Headers whose presence and value the v1 contract defines. A reply must carry exactly the ones an
# expectation lists (each once, unless listed as a tuple of values): an extra one is a failure too.
CONTRACT_HEADERS = (
    "content-type",
    "x-ms-run-function-failed",
    "x-ms-run-fn-exec-ms",
    "x-request-id",
    "x-ms-request-id",
    "x-ms-client-request-id",
    "x-ms-server-version",
    "traceid",
    "access-control-allow-origin",
)

# Variables either server reads; scrubbed from the inherited environment so a developer's shell
# cannot change what the suite sees.
_SCRUBBED_PREFIXES = ("AML_", "AZUREML_", "SCORING_", "SERVICE_", "WORKER_", "HTTP_X_MS", "SERVER_")


@dataclass(frozen=True)
class ServerSpec:
    """What to run: an entry script folder under ``scripts/`` and extra environment variables."""

    script: str
    env: tuple[tuple[str, str], ...] = ()

    @property
    def folder(self) -> Path:
        return SCRIPTS / self.script


def azmlinfsrv_bin() -> Path | None:
    """The v1 server's console script from ``MODELHOST_TEST_AZMLINFSRV`` (a venv path), if set."""
    venv = os.environ.get("MODELHOST_TEST_AZMLINFSRV")
    return Path(venv) / "bin" / "azmlinfsrv" if venv else None


def modelhost_bin() -> Path:
    return REPO / ".venv" / "bin" / "modelhost-score"


class ServerProcess:
    """One scoring server on 127.0.0.1, started in its own session so teardown reaches its workers."""

    def __init__(self, kind: str, spec: ServerSpec, executable: Path, log_path: Path) -> None:
        self.kind = kind
        self.spec = spec
        self.port = free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update({"AML_APP_ROOT": str(spec.folder), "PYTHONUNBUFFERED": "1"})
        env.update(dict(spec.env))
        argv = [str(executable), "--entry_script", str(spec.folder / "score.py"), "--port", str(self.port)]
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(argv, cwd=spec.folder, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, deadline_s: float) -> None:
        """Poll ``GET /`` until it answers 200; fail early (with the log) if the process exits."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode} before it was ready:\n"
                                   f"{self.log_tail()}")
            try:
                if request(self.port, "GET", "/", timeout_s=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.kind} not ready on port {self.port} within {deadline_s} s:\n"
                           f"{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            # The server is the session leader: signal its group (gunicorn master and workers).
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self._log.close()


# ---------------------------------------------------------------------------------------------------
# HTTP client: http.client keeps header order, repeats and exact bytes (higher-level clients fold them).


@dataclass
class Reply:
    """One HTTP response as received: status, headers in order (names as sent), raw body."""

    kind: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        """The single value of ``name``; a repeated header is an error here (use :meth:`all`)."""
        values = self.all(name)
        assert len(values) <= 1, f"{name} repeated: {values}"
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def __repr__(self) -> str:
        return f"Reply({self.kind} {self.status} headers={self.headers} body={self.body[:400]!r})"


def request(port: int, method: str, path: str, body: bytes | str | None = None,
            headers: Mapping[str, str] | None = None, timeout_s: float = 30) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        data = body.encode("utf-8") if isinstance(body, str) else body
        conn.request(method, path, body=data, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Reply("", resp.status, list(resp.getheaders()), resp.read())
    finally:
        conn.close()


def raw_request(port: int, method: str, path: str, header_pairs: list[tuple[str, str]],
                chunks: list[bytes] | None = None, timeout_s: float = 30) -> Reply:
    """A request with repeated header names and, if ``chunks`` is given, a chunked body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.putrequest(method, path)
        for name, value in header_pairs:
            conn.putheader(name, value)
        if chunks is not None:
            conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for chunk in chunks or []:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if chunks is not None:
            conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        return Reply("", resp.status, list(resp.getheaders()), resp.read())
    finally:
        conn.close()


@dataclass
class Server:
    """What a test talks to: one running server of one kind."""

    kind: str
    port: int
    process: ServerProcess = field(repr=False)

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: Mapping[str, str] | None = None, timeout_s: float = 30) -> Reply:
        reply = request(self.port, method, path, body, headers, timeout_s)
        reply.kind = self.kind
        return reply

    def raw(self, method: str, path: str, header_pairs: list[tuple[str, str]],
            chunks: list[bytes] | None = None) -> Reply:
        reply = raw_request(self.port, method, path, header_pairs, chunks)
        reply.kind = self.kind
        return reply

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, body: bytes | str | None = None,
             content_type: str | None = "application/json", headers: Mapping[str, str] | None = None,
             timeout_s: float = 30) -> Reply:
        all_headers = {"Content-Type": content_type} if content_type else {}
        all_headers.update(headers or {})
        return self.request("POST", path, body, all_headers, timeout_s)

    def post_json(self, path: str, obj: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return self.post(path, json.dumps(obj), headers=headers)


# ---------------------------------------------------------------------------------------------------
# Expectations: values are literal strings or matchers that may depend on the server kind.


class Matcher:
    def matches(self, value: str, reply: Reply) -> bool:
        raise NotImplementedError


class Regex(Matcher):
    def __init__(self, pattern: str, label: str) -> None:
        self.pattern = re.compile(pattern)
        self.label = label

    def matches(self, value: str, reply: Reply) -> bool:
        return self.pattern.fullmatch(value) is not None

    def __repr__(self) -> str:
        return self.label


class SameAs(Matcher):
    """Equal to the reply's value of another header (e.g. x-ms-request-id mirrors x-request-id)."""

    def __init__(self, other: str) -> None:
        self.other = other

    def matches(self, value: str, reply: Reply) -> bool:
        return value == reply.header(self.other)

    def __repr__(self) -> str:
        return f"<same as {self.other}>"


class PerServer(Matcher):
    """A deliberate difference (listed in docs/compatibility.md): one expectation per server kind."""

    def __init__(self, **per_kind: str | Matcher) -> None:
        self.per_kind = per_kind

    def matches(self, value: str, reply: Reply) -> bool:
        want = self.per_kind[reply.kind]
        return want.matches(value, reply) if isinstance(want, Matcher) else value == want

    def __repr__(self) -> str:
        return f"<per server {self.per_kind}>"


UUID4 = Regex(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", "<uuid4>")
EXEC_MS = Regex(r"\d+\.\d{3}", "<ms with 3 decimals>")
# modelhost-score reports the v1 server version it emulates, exactly as azmlinfsrv does (clients and
# log pipelines that key on it keep working). Should modelhost ever report its own, make this a
# PerServer expectation and list the difference in docs/compatibility.md.
SERVER_VERSION = "azmlinfsrv/1.5.1"

JSON = "application/json"
HTML = "text/html; charset=utf-8"

HeaderWant = str | Matcher | tuple[str, ...]


def blueprint_headers(*, content_type: str | None = JSON, failed: str | None = "False", exec_ms: bool = False,
                      request_id: HeaderWant = UUID4, ms_request_id: HeaderWant | None = None,
                      client_request_id: HeaderWant | None = None,
                      **extra: HeaderWant | None) -> dict[str, HeaderWant | None]:
    """The contract headers of a response from the server's own routes (/, /score, /swagger.json).

    ``ms_request_id`` defaults to mirroring x-request-id, as v1 does when the client sent no id;
    ``extra`` names further contract headers with underscores for dashes.
    """
    headers: dict[str, HeaderWant | None] = {
        "content-type": content_type,
        "x-ms-run-function-failed": failed,
        "x-ms-run-fn-exec-ms": EXEC_MS if exec_ms else None,
        "x-request-id": request_id,
        "x-ms-request-id": ms_request_id if ms_request_id is not None else SameAs("x-request-id"),
        "x-ms-client-request-id": client_request_id,
        "x-ms-server-version": SERVER_VERSION,
    }
    headers.update({k.lower().replace("_", "-"): v for k, v in extra.items()})
    return headers


def score_ok(**overrides: Any) -> dict[str, HeaderWant | None]:
    """Headers of a /score response built from run()'s return value (200 by default)."""
    return blueprint_headers(**{"exec_ms": True, **overrides})


def run_failed(**overrides: Any) -> dict[str, HeaderWant | None]:
    """Headers of a /score 500 that blames run() (exception or timeout)."""
    return blueprint_headers(**{"failed": "True", **overrides})


def app_level_headers() -> dict[str, HeaderWant | None]:
    """Headers of 404/405 answered outside the blueprint: JSON, no request ids, no server version."""
    return {"content-type": JSON, "x-ms-run-function-failed": "False"}


def expect(reply: Reply, *, status: int, headers: Mapping[str, HeaderWant | None],
           body: bytes | str | None = None, json_body: Any = None, check_body: bool = True) -> None:
    """Assert status, body and the contract headers (exactly those in ``headers`` whose value is not None).

    ``body`` compares bytes exactly; ``json_body`` compares the parsed JSON; with ``check_body=False``
    the caller checks the body itself.
    """
    assert reply.status == status, f"status {reply.status} != {status}: {reply!r}"
    if check_body:
        if json_body is not None:
            assert reply.json() == json_body, f"JSON body differs: {reply!r}"
        else:
            want = body.encode("utf-8") if isinstance(body, str) else (body or b"")
            assert reply.body == want, f"body {reply.body!r} != {want!r}"
    wanted = {k.lower(): v for k, v in headers.items() if v is not None}
    for name in CONTRACT_HEADERS:
        values = reply.all(name)
        if name not in wanted:
            assert not values, f"unexpected header {name}: {values}; {reply!r}"
    for name, want in wanted.items():
        values = reply.all(name)
        if isinstance(want, tuple):
            assert tuple(values) == want, f"{name}: {values} != {want}; {reply!r}"
            continue
        assert len(values) == 1, f"{name}: expected one value matching {want!r}, got {values}; {reply!r}"
        ok = want.matches(values[0], reply) if isinstance(want, Matcher) else values[0] == want
        assert ok, f"{name}: {values[0]!r} does not match {want!r}; {reply!r}"


def message(text: str) -> str:
    """The body v1 sends for its own errors: ``json.dumps({"message": text})``."""
    return json.dumps({"message": text})
