"""The router end to end: a real router process in front of real replica processes on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import trustme

from tests.e2e.router.conftest import ADMIN, KEYS, RouterProc, Upstream, auth, service
from tests.support.net import free_port, wait_until


@pytest.fixture(scope="module")
def up1(start_upstream: Callable[[str], Upstream]) -> Upstream:
    return start_upstream("r1")


@pytest.fixture(scope="module")
def up2(start_upstream: Callable[[str], Upstream]) -> Upstream:
    return start_upstream("r2")


@pytest.fixture(scope="module")
def router(start_router: Callable[..., RouterProc], up1: Upstream) -> RouterProc:
    return start_router({"version": 1, "services": {"echo": service(up1.replica())}})


@pytest.fixture
def client(router: RouterProc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=router.url, timeout=30) as c:
        yield c


@pytest.fixture
def echo(router: RouterProc, up1: Upstream) -> RouterProc:
    """The default table: service 'echo' on replica r1, key auth, limit 1."""
    router.publish({"echo": service(up1.replica()), "open": service(up1.replica(), auth_enabled=False)})
    return router


def score(svc: str = "echo") -> str:
    return f"/api/v1/service/{svc}/score"


def raw_request(port: int, data: bytes, read_timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes or the timeout ends."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(read_timeout)
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response with a Content-Length body from a keep-alive socket: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


# -- forwarding and auth ---------------------------------------------------------------------------
def test_score_is_forwarded_with_query_and_rewritten_host(echo: RouterProc, client: httpx.Client,
                                                          up1: Upstream) -> None:
    r = client.post(score() + "?a=1&b=2", content=b'{"data": [1]}', headers=auth())
    assert r.status_code == 200
    body = r.json()
    assert (body["replica"], body["path"], body["query"], body["body"]) == ("r1", "/score", "a=1&b=2",
                                                                              '{"data": [1]}')
    assert body["headers"]["host"] == f"127.0.0.1:{up1.port}"
    assert "authorization" not in body["headers"]  # the service key stays at the front door


def test_both_keys_accepted(echo: RouterProc, client: httpx.Client) -> None:
    for key in KEYS:
        assert client.get(score(), headers=auth(key)).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEYS[0]}],
                         ids=["no-header", "wrong-key", "no-bearer"])
def test_refused_keys_get_401(echo: RouterProc, client: httpx.Client, headers: dict[str, str]) -> None:
    r = client.post(score(), content=b"{}", headers=headers)
    assert r.status_code == 401
    assert "message" in r.json()


def test_auth_disabled_service_is_open(echo: RouterProc, client: httpx.Client) -> None:
    r = client.get(score("open"), headers={"Authorization": "Bearer anything"})
    assert r.status_code == 200
    assert r.json()["headers"]["authorization"] == "Bearer anything"  # not ours: passed on


def test_swagger_and_v2_routes(echo: RouterProc, client: httpx.Client) -> None:
    r = client.get("/api/v1/service/echo/swagger.json?version=3", headers=auth())
    assert r.status_code == 200 and r.json() == {"swagger": "2.0", "replica": "r1", "query": "version=3"}
    r = client.post("/api/v1/service/echo/v2/models/m/infer", json={"inputs": []}, headers=auth())
    assert r.status_code == 200 and r.json()["path"] == "/v2/models/m/infer"
    assert client.get("/api/v1/service/echo/v2/models/m/infer").status_code == 401  # same auth


def test_unknown_service_path_and_method(echo: RouterProc, client: httpx.Client) -> None:
    r = client.get(score("nope"), headers=auth())
    assert r.status_code == 404 and "nope" in r.json()["message"]
    assert client.get("/api/v1/service/echo/other", headers=auth()).status_code == 404
    for method in ("PUT", "DELETE", "OPTIONS", "HEAD"):
        assert client.request(method, score(), headers=auth()).status_code == 405
    assert client.get("/nothing-here").status_code == 404


def test_request_ids_pass_through_both_ways(echo: RouterProc, client: httpx.Client) -> None:
    ids = {"x-request-id": "R1", "x-ms-client-request-id": "C1", "x-ms-request-id": "M1"}
    r = client.get(score(), headers={**auth(), **ids})
    seen = r.json()["headers"]
    assert {k: seen[k] for k in ids} == ids
    assert r.headers["x-request-id"] == "R1"  # the replica's answer, unchanged
    refused = client.get(score(), headers={"x-request-id": "R2", "x-ms-client-request-id": "C2"})
    assert refused.status_code == 401
    assert (refused.headers["x-request-id"], refused.headers["x-ms-request-id"],
            refused.headers["x-ms-client-request-id"]) == ("R2", "C2", "C2")


def test_chunked_both_ways(echo: RouterProc, client: httpx.Client) -> None:
    r = client.get(score() + "?chunks=4", headers=auth())
    assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
    assert r.text == "part0;part1;part2;part3;"
    parts = [b"x" * 70000, b"y" * 5, b"z" * 100000]
    r = client.post(score(), content=iter(parts), headers=auth())
    assert r.status_code == 200 and r.json()["body_len"] == sum(map(len, parts))
    assert r.json()["headers"]["transfer-encoding"] == "chunked"


def test_connection_close_is_honoured(echo: RouterProc) -> None:
    reply = raw_request(echo.port, f"GET {score()} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEYS[0]}\r\n"
                                   "Connection: close\r\n\r\n".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower()
    assert json.loads(body)["replica"] == "r1"  # and the server closed: raw_request returned


def test_keep_alive_reuses_connections(echo: RouterProc, client: httpx.Client) -> None:
    for _ in range(5):
        assert client.get(score(), headers=auth()).status_code == 200
    with socket.create_connection(("127.0.0.1", echo.port)) as sock:
        req = f"GET {score()} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEYS[0]}\r\n\r\n".encode()
        for _ in range(3):
            sock.sendall(req)
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["replica"] == "r1"


# -- limits ----------------------------------------------------------------------------------------
def test_413_without_reading_the_body(echo: RouterProc, client: httpx.Client, up1: Upstream) -> None:
    before = up1.stats()["requests"]
    head = (f"POST {score()} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEYS[0]}\r\n"
            f"Content-Length: {101 * 1024 * 1024}\r\n\r\n").encode()
    reply = raw_request(echo.port, head + b"{" * 1000)
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"100 MB" in reply
    assert up1.stats()["requests"] == before
    assert client.get(score(), headers=auth()).status_code == 200


def test_chunked_body_over_the_limit_is_cut(start_router: Callable[..., RouterProc], up1: Upstream) -> None:
    small = start_router({"services": {"echo": service(up1.replica())}}, "--max-body-mb", "1")

    def body() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    with httpx.Client(base_url=small.url, timeout=30) as c:
        try:
            r = c.post(score(), content=body(), headers=auth())
        except httpx.TransportError:
            pytest.fail("the client should read the 413 before the connection closes")
        assert r.status_code == 413
        assert c.post(score(), content=b"x" * 1000, headers=auth()).status_code == 200


def test_queue_full_gives_503(echo: RouterProc, up1: Upstream) -> None:
    echo.publish({"echo": service(up1.replica(), max_queue_wait_ms=200)})
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(httpx.get, echo.url + score() + "?sleep=1.5", headers=auth(), timeout=30)
                   for _ in range(2)]
        responses = [f.result() for f in futures]
    results = sorted((r.status_code, r.json()["message"] if r.status_code != 200 else "") for r in responses)
    assert results == [(200, ""), (503, "Too many requests for service echo (overloaded)")]


def test_queued_request_gets_the_slot(echo: RouterProc, up1: Upstream) -> None:
    echo.publish({"echo": service(up1.replica(), max_queue_wait_ms=5000)})
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(httpx.get, echo.url + score() + "?sleep=0.3", headers=auth(), timeout=30)
                   for _ in range(3)]
        assert [f.result().status_code for f in futures] == [200, 200, 200]


def test_no_ready_replicas_gives_503(echo: RouterProc, client: httpx.Client, up1: Upstream) -> None:
    echo.publish({"echo": service(up1.replica(ready=False)), "empty": service()})
    for svc in ("echo", "empty"):
        r = client.get(score(svc), headers=auth())
        assert (r.status_code, r.json()["message"]) == (503, f"No ready replicas for service {svc}")


def test_scoring_timeout_gives_504(echo: RouterProc, client: httpx.Client, up1: Upstream) -> None:
    echo.publish({"echo": service(up1.replica(), scoring_timeout_ms=300)})
    r = client.get(score() + "?sleep=3", headers=auth())
    assert r.status_code == 504 and "timed out" in r.json()["message"]
    assert client.get(score(), headers=auth()).status_code == 200  # the slot was given back


def test_replica_500_becomes_502_with_its_body(echo: RouterProc, client: httpx.Client) -> None:
    r = client.get(score() + "?status=500", headers=auth())
    assert (r.status_code, r.json()) == (502, {"message": "run() failed"})
    assert client.get(score(), headers=auth()).status_code == 200


def test_replica_dying_mid_request_gives_502(echo: RouterProc, client: httpx.Client,
                                             start_upstream: Callable[[str], Upstream]) -> None:
    doomed = start_upstream("doomed")
    echo.publish({"doomed": service(doomed.replica())})
    r = client.post(score("doomed") + "?crash=1", content=b"{}", headers=auth())
    assert (r.status_code, r.json()) == (502, {"message": "Replica closed connection before replying"})
    r = client.get(score("doomed"), headers=auth())  # port now dead, no other replica
    assert r.status_code == 502


def test_dead_replica_is_retried_elsewhere(echo: RouterProc, up1: Upstream) -> None:
    dead = {"id": "dead", "host": "127.0.0.1", "port": free_port()}
    echo.publish({"echo": service(dead, up1.replica(), max_concurrent_per_replica=4)})
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: httpx.get(echo.url + score(), headers=auth()).status_code, range(40)))
    assert codes == [200] * 40


def test_least_loaded_spreads_over_two_replicas(echo: RouterProc, up1: Upstream, up2: Upstream) -> None:
    echo.publish({"echo": service(up1.replica(), up2.replica(), max_concurrent_per_replica=4)})
    with ThreadPoolExecutor(4) as pool:
        url = echo.url + score() + "?sleep=0.5"
        replicas = list(pool.map(lambda _: httpx.get(url, headers=auth(), timeout=30).json()["replica"],
                                 range(4)))
    assert Counter(replicas) == {"r1": 2, "r2": 2}


# -- table, drain, observability ------------------------------------------------------------------
def test_table_reload_from_file_and_kept_when_deleted(echo: RouterProc, client: httpx.Client,
                                                      up2: Upstream) -> None:
    before = echo.version()
    table = {"version": before + 1, "services": {"fresh": service(up2.replica())}}
    echo.table_path.write_text(json.dumps(table))
    wait_until(lambda: echo.version() == before + 1, 10, what="table re-read from the file")
    assert client.get(score("fresh"), headers=auth()).json()["replica"] == "r2"
    echo.table_path.unlink()
    time.sleep(1.2)  # two poll periods: the router must notice the file is gone and carry on
    assert echo.version() == before + 1
    assert client.get(score("fresh"), headers=auth()).status_code == 200


def test_removed_replica_finishes_its_request(echo: RouterProc, up1: Upstream, up2: Upstream) -> None:
    echo.publish({"echo": service(up1.replica())})
    result: dict[str, Any] = {}

    def slow() -> None:
        result["r"] = httpx.get(echo.url + score() + "?sleep=1", headers=auth(), timeout=30)

    thread = threading.Thread(target=slow)
    thread.start()
    wait_until(lambda: httpx.get(echo.url + "/-/load").json()["services"]["echo"]["in_flight"] == 1, 10,
               what="request in flight")
    echo.publish({"echo": service(up2.replica())})
    thread.join(30)
    assert result["r"].status_code == 200 and result["r"].json()["replica"] == "r1"
    assert httpx.get(echo.url + score(), headers=auth()).json()["replica"] == "r2"


def test_load_signal(echo: RouterProc, up1: Upstream) -> None:
    echo.publish({"echo": service(up1.replica(), max_queue_wait_ms=5000)})
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(httpx.get, echo.url + score() + "?sleep=0.8", headers=auth(), timeout=30)
                   for _ in range(3)]
        wait_until(lambda: httpx.get(echo.url + "/-/load").json()["services"]["echo"]["queued"] == 2, 10,
                   what="two requests queued")
        load = httpx.get(echo.url + "/-/load").json()["services"]["echo"]
        assert load == {"replicas": 1, "busy": 1.0, "queued": 2, "in_flight": 1}
        assert all(f.result().status_code == 200 for f in futures)


def test_metrics_and_access_log(echo: RouterProc, client: httpx.Client) -> None:
    client.get(score(), headers=auth())
    client.get(score())
    text = client.get("/metrics").text
    for needle in ('modelhost_router_requests_total{service="echo",status="200"}',
                   'modelhost_router_requests_total{service="echo",status="401"}',
                   'modelhost_router_request_duration_seconds_bucket{le="0.005",service="echo"}',
                   'modelhost_router_in_flight_requests{service="echo"}',
                   'modelhost_router_queue_depth{service="echo"}',
                   'modelhost_router_ready_replicas{service="echo"} 1.0'):
        assert needle in text, needle
    wait_until(lambda: " echo GET /api/v1/service/echo/score 401 " in echo.access_log.read_text(), 5,
               what="access log line")
    line = next(ln for ln in echo.access_log.read_text().splitlines() if " 200 " in ln and " echo " in ln)
    assert "replica=r1" in line and "ms " in line


def test_admin_endpoint_guards_and_validates(echo: RouterProc, client: httpx.Client) -> None:
    assert client.put("/-/table", json={"services": {}}).status_code == 401
    wrong = {"Authorization": "Bearer no"}
    assert client.put("/-/table", json={"services": {}}, headers=wrong).status_code == 401
    r = client.put("/-/table", json={"services": {"x": {"replicas": [{"id": "a", "port": 70000}]}}},
                   headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 400 and "services.x.replicas[0].port" in r.json()["error"]["message"]
    r = client.get("/-/table", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200 and "echo" in r.json()["services"]


def test_tls_front_door(start_router: Callable[..., RouterProc], up1: Upstream,
                        tmp_path_factory: pytest.TempPathFactory) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    pem = str(folder / "server.pem")
    tls = start_router({"services": {"echo": service(up1.replica())}}, "--certfile", pem, scheme="https")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    r = httpx.get(f"https://127.0.0.1:{tls.port}{score()}", headers=auth(), verify=context)
    assert r.status_code == 200 and r.json()["replica"] == "r1"
