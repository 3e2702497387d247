"""TLS at the router, end to end: a real router process (``--tls-dir``) in front of a real replica.

Clients verify the chain against a ``trustme`` CA; the files are written the way the control plane
writes them (key, then certificate, each replaced atomically) and the router is told with
``POST /-/tls``, or finds them by polling.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import trustme

from tests.e2e.router.conftest import ADMIN, RouterProc, Upstream, auth, service
from tests.e2e.tls.conftest import client_context, served_fingerprint, write_pair
from tests.support.net import wait_until

SCORE = "/api/v1/service/echo/score"


@pytest.fixture(scope="module")
def up1(start_upstream: Callable[[str], Upstream]) -> Upstream:
    return start_upstream("r1")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_router(start_router: Callable[..., RouterProc], up1: Upstream, folder: Path) -> RouterProc:
    return start_router({"services": {"echo": service(up1.replica(), max_concurrent_per_replica=32)}},
                        "--tls-dir", str(folder))


def _reload(router: RouterProc) -> dict[str, object]:
    """What the control plane does after writing the files (plain HTTP from this machine)."""
    r = httpx.post(f"{router.url}/-/tls", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_tls_dir_switches_https_on_and_off_without_a_restart(
    start_router: Callable[..., RouterProc], up1: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    folder = tmp_path / "tls"
    router = _tls_router(start_router, up1, folder)
    pid = router.proc.pid
    assert httpx.post(f"{router.url}{SCORE}", json={}, headers=auth()).status_code == 200  # plain at first

    expected = write_pair(folder, ca, "127.0.0.1", "localhost")
    state = _reload(router)
    assert state == {"enabled": True, "fingerprint_sha256": expected, "error": None}
    https = f"https://127.0.0.1:{router.port}"
    r = httpx.post(f"{https}{SCORE}", json={"x": 1}, headers=auth(), verify=client_context(ca))
    assert r.status_code == 200 and r.json()["replica"] == "r1"
    # an unknown CA is refused by the client: the chain really is verified
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.post(f"{https}{SCORE}", json={}, headers=auth(), verify=client_context(trustme.CA()))

    # plain HTTP on the TLS port: scoring refused (keys never travel in clear), admin endpoints local only
    r = httpx.post(f"{router.url}{SCORE}", json={}, headers=auth())
    assert r.status_code == 400 and "https" in r.json()["message"]
    assert httpx.get(f"{router.url}/-/health").json()["status"] == "ok"
    assert httpx.get(f"{router.url}/-/load").status_code == 200

    for name in ("cert.pem", "key.pem"):
        (folder / name).unlink()
    assert _reload(router)["enabled"] is False
    assert httpx.post(f"{router.url}{SCORE}", json={}, headers=auth()).status_code == 200
    assert router.proc.pid == pid and router.proc.poll() is None


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_handshake(start_router: Callable[..., RouterProc], up1: Upstream, ca: trustme.CA,
                                 tmp_path: Path, version: ssl.TLSVersion) -> None:
    folder = tmp_path / "tls"
    write_pair(folder, ca, "127.0.0.1")
    router = _tls_router(start_router, up1, folder)
    ctx = client_context(ca, minimum=version, maximum=version)
    _, negotiated = served_fingerprint(router.port, ctx)
    assert negotiated == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    r = httpx.post(f"https://127.0.0.1:{router.port}{SCORE}", json={}, headers=auth(), verify=ctx)
    assert r.status_code == 200


def test_tls_11_is_refused_by_the_server(start_router: Callable[..., RouterProc], up1: Upstream,
                                         ca: trustme.CA, tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    write_pair(folder, ca, "127.0.0.1")
    router = _tls_router(start_router, up1, folder)
    ctx = client_context(ca, minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all: the server must say no
    with pytest.raises(ssl.SSLError) as info:
        served_fingerprint(router.port, ctx)
    # the server ends the handshake (an alert or, on uvloop, a close): never a certificate problem
    assert "CERTIFICATE" not in str(info.value).upper()


def test_certificate_replaced_twice_under_load_fails_no_request(
    start_router: Callable[..., RouterProc], up1: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    folder = tmp_path / "tls"
    first = write_pair(folder, ca, "127.0.0.1")
    router = _tls_router(start_router, up1, folder)
    url = f"https://127.0.0.1:{router.port}{SCORE}"
    ctx = client_context(ca)
    stop = threading.Event()
    done: list[int] = []
    failures: list[str] = []

    def client(n: int) -> None:
        # even workers keep one connection alive (it outlives the swaps); odd ones reconnect every time
        keep = n % 2 == 0
        with httpx.Client(verify=ctx, timeout=30,
                          limits=httpx.Limits(max_keepalive_connections=1 if keep else 0)) as http:
            while not stop.is_set():
                try:
                    r = http.post(url, json={"n": n}, headers=auth())
                    if r.status_code == 200:
                        done.append(n)
                    else:
                        failures.append(f"{r.status_code} {r.text[:100]}")
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

    fingerprints = [first]
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, n) for n in range(8)]
        time.sleep(1.0)
        for _ in range(2):
            fingerprints.append(write_pair(folder, ca, "127.0.0.1"))
            assert _reload(router)["fingerprint_sha256"] == fingerprints[-1]
            assert served_fingerprint(router.port, ctx)[0] == fingerprints[-1]  # new connections: new cert
            time.sleep(1.0)
        stop.set()
        for f in futures:
            f.result()
    assert failures == []
    assert len(done) > 50
    assert len(set(fingerprints)) == 3


def test_the_router_finds_a_new_pair_by_itself_and_keeps_the_old_one_when_the_files_are_bad(
    start_router: Callable[..., RouterProc], up1: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    folder = tmp_path / "tls"
    first = write_pair(folder, ca, "127.0.0.1")
    router = _tls_router(start_router, up1, folder)
    ctx = client_context(ca)
    second = write_pair(folder, ca, "127.0.0.1")  # no POST: the router polls the files
    wait_until(lambda: served_fingerprint(router.port, ctx)[0] == second, 10, what="the polled certificate")
    assert first != second

    (folder / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    state = _reload(router)
    assert state["enabled"] is True and state["fingerprint_sha256"] == second
    assert "cannot load" in str(state["error"]) and "not a key" not in str(state["error"])
    assert served_fingerprint(router.port, ctx)[0] == second
    r = httpx.post(f"https://127.0.0.1:{router.port}{SCORE}", json={}, headers=auth(), verify=ctx)
    assert r.status_code == 200


def test_a_client_that_never_speaks_is_dropped_and_others_are_served(
    start_router: Callable[..., RouterProc], up1: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    folder = tmp_path / "tls"
    write_pair(folder, ca, "127.0.0.1")
    router = _tls_router(start_router, up1, folder)
    with socket.create_connection(("127.0.0.1", router.port)):  # silent: waits in the sniffer
        r = httpx.post(f"https://127.0.0.1:{router.port}{SCORE}", json={}, headers=auth(),
                       verify=client_context(ca))
        assert r.status_code == 200
