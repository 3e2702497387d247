"""Token auth end to end: the real control plane mints, the real router verifies, a real replica answers.

Nothing is faked: tokens come from ``POST /api/v1/services/<name>/token``; the expired-token case
runs its own control plane started with ``MODELHOST_TOKEN_TTL_S=2``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from modelhost.sdk import Webservice, Workspace
from tests.e2e.deploy.conftest import Plane, aks, make_plane
from tests.support.net import wait_until

CLI = str(Path(sys.executable).parent / "modelhost")
TOKEN_AUTH = {"token_auth_enabled": True, "auth_enabled": False}


def _deployed(plane: Plane, name: str, **config: object) -> None:
    op = plane.deploy(name, config=aks(**config))
    assert op["state"] == "Succeeded", op["lines"][-20:]


@pytest.fixture(scope="module")
def services(shared: Plane) -> Plane:
    """Two token-auth services and one key-auth service on one control plane."""
    _deployed(shared, "tok-a", **TOKEN_AUTH)
    _deployed(shared, "tok-b", **TOKEN_AUTH)
    _deployed(shared, "keyed")
    return shared


def token_for(plane: Plane, name: str) -> dict[str, object]:
    r = plane.client.post(f"/api/v1/services/{name}/token")
    assert r.status_code == 200, r.text
    return dict(r.json())


def score(plane: Plane, name: str, token: object | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.post(plane.score_url(name), content=b'{"x": 1}', headers=headers, timeout=30)


def refused(response: httpx.Response, needle: str, token: object | None = None) -> str:
    assert response.status_code == 401, response.text
    message = str(response.json()["message"])
    assert needle in message, message
    if token is not None:
        assert str(token) not in response.text
    return message


def test_token_answer_is_v1_shaped_and_scores(services: Plane) -> None:
    before = time.time()
    answer = token_for(services, "tok-a")
    assert set(answer) == {"accessToken", "tokenType", "refreshAfter", "expiryOn"}
    assert answer["tokenType"] == "Bearer"
    refresh, expiry = float(answer["refreshAfter"]), float(answer["expiryOn"])  # type: ignore[arg-type]
    assert before + 3600 - 2 <= refresh <= time.time() + 3600
    assert before + 12 * 3600 - 2 <= expiry <= time.time() + 12 * 3600
    claims = jwt.decode(str(answer["accessToken"]), options={"verify_signature": False})
    assert claims["aud"] == "modelhost-service:tok-a" and claims["sub"] == "modelhost-admin"
    assert str(claims["iss"]).startswith("modelhost:ws-")
    r = score(services, "tok-a", answer["accessToken"])
    assert r.status_code == 200, r.text
    assert r.json()["echo"] == {"x": 1}


def test_router_refuses_bad_tokens_with_the_fix(services: Plane) -> None:
    token_a = token_for(services, "tok-a")["accessToken"]
    token_b = token_for(services, "tok-b")["accessToken"]
    refused(score(services, "tok-a", None), "send 'Authorization: Bearer <token>'")
    refused(score(services, "tok-a", token_b), "token is for another service", token_b)
    head, payload, sig = str(token_a).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 10**6
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    refused(score(services, "tok-a", f"{head}.{forged}.{sig}"), "signature is not valid", forged)
    primary, _ = services.keys("tok-a")
    refused(score(services, "tok-a", primary), "signed JWT", primary)
    # a key service still takes keys, not tokens
    refused(score(services, "keyed", token_a), "not valid for this service", token_a)
    assert score(services, "keyed", services.keys("keyed")[0]).status_code == 200


def test_token_route_errors(services: Plane) -> None:
    r = services.client.post("/api/v1/services/keyed/token")
    assert r.status_code == 400
    error = r.json()["error"]
    assert "Service keyed uses key auth" in error["message"] and "token_auth_enabled=True" in error["hint"]
    r = services.client.post("/api/v1/services/nowhere/token")
    assert r.status_code == 404 and "nowhere" in r.json()["error"]["message"]


def test_rotated_key_keeps_old_tokens_until_they_expire(services: Plane) -> None:
    old = token_for(services, "tok-a")["accessToken"]
    old_kid = jwt.get_unverified_header(str(old))["kid"]
    r = services.client.post("/api/v1/signing-keys/rotate")
    assert r.status_code == 200, r.text
    new_kid = r.json()["kid"]
    assert new_kid != old_kid and r.json()["active"] is True
    assert score(services, "tok-a", old).status_code == 200  # signed by the retired key: still valid
    new = token_for(services, "tok-a")["accessToken"]
    assert jwt.get_unverified_header(str(new))["kid"] == new_kid
    assert score(services, "tok-a", new).status_code == 200
    listed = services.client.get("/api/v1/signing-keys").json()
    by_kid = {k["kid"]: k for k in listed["value"]}
    assert by_kid[new_kid]["active"] and not by_kid[old_kid]["active"]
    assert by_kid[old_kid]["prunedAfter"] >= time.time() + 12 * 3600 - 60
    assert "PRIVATE" not in json.dumps(listed)
    table = json.loads((services.settings.home / "router" / "table.json").read_text())
    assert set(table["token_keys"]) >= {old_kid, new_kid}
    assert "PRIVATE" not in json.dumps(table)


def test_sdk_run_fetches_caches_and_refreshes_the_token(services: Plane) -> None:
    ws = Workspace(url=services.url, token=services.token)
    svc = Webservice(ws, "tok-a")
    assert svc.token_auth_enabled and not svc.auth_enabled
    token, refresh_by = svc.get_token()
    assert refresh_by.tzinfo is None and 3500 < refresh_by.timestamp() - time.time() <= 3600
    assert score(services, "tok-a", token).status_code == 200
    assert svc.run({"v": 1})["echo"] == {"v": 1}
    first = svc._token
    assert first is not None
    assert svc.run({"v": 2})["echo"] == {"v": 2}
    assert svc._token is first  # cached: no new token per call
    svc._token = dataclasses.replace(first, refresh_after_s=time.time() - 1)  # refresh_by passed
    assert svc.run({"v": 3})["echo"] == {"v": 3}
    assert svc._token is not None and svc._token.access_token != first.access_token
    wrong = Webservice(ws, "tok-b").get_access_token()  # a token the router refuses for tok-a
    svc._token = wrong
    assert svc.run({"v": 4})["echo"] == {"v": 4}  # one 401, a fresh token, retried
    assert svc._token.access_token != wrong.access_token
    assert wrong.access_token not in repr(wrong)


def test_update_switches_key_auth_to_token_auth(services: Plane) -> None:
    ws = Workspace(url=services.url, token=services.token)
    svc = Webservice(ws, "keyed")
    primary = svc.get_keys()[0]
    svc.update(auth_enabled=False, token_auth_enabled=True)
    svc.wait_for_deployment()
    assert svc.token_auth_enabled and not svc.auth_enabled
    assert svc.run({"k": 1})["echo"] == {"k": 1}  # a token, transparently
    refused(score(services, "keyed", primary), "signed JWT", primary)


def test_cli_prints_a_token_and_lists_and_rotates_keys(services: Plane) -> None:
    def cli(*args: str) -> str:
        proc = subprocess.run([CLI, *args], env=services.env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = cli("service", "token", "tok-b")
    token = out.splitlines()[0].removeprefix("token: ")
    assert "refresh_by: " in out and score(services, "tok-b", token).status_code == 200
    assert json.loads(cli("service", "run", "tok-b", "--data", '{"c": 1}'))["echo"] == {"c": 1}
    listed = cli("keys", "list")
    assert "issuer: modelhost:ws-" in listed and "yes" in listed and "PRIVATE" not in listed
    assert cli("keys", "rotate").startswith("new active signing key ")
    assert score(services, "tok-b", token).status_code == 200


@pytest.fixture
def short_lived(tmp_path: Path, machine_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plane]:
    """A control plane whose tokens live 2 s (the MODELHOST_TOKEN_TTL_S knob)."""
    p = make_plane(tmp_path, machine_cache)
    with monkeypatch.context() as m:
        m.setenv("MODELHOST_TOKEN_TTL_S", "2")
        m.setenv("MODELHOST_TOKEN_REFRESH_S", "1")
        p.start()
    try:
        yield p
    finally:
        p.stop_all()


def test_expired_token_is_refused_and_run_recovers(short_lived: Plane) -> None:
    _deployed(short_lived, "short", **TOKEN_AUTH)
    answer = token_for(short_lived, "short")
    assert int(answer["expiryOn"]) - int(answer["refreshAfter"]) == 1  # type: ignore[call-overload]
    ws = Workspace(url=short_lived.url, token=short_lived.token)
    svc = Webservice(ws, "short")
    assert svc.run({"a": 1})["echo"] == {"a": 1}
    token = answer["accessToken"]
    wait_until(lambda: score(short_lived, "short", token).status_code == 401, deadline_s=15,
               what="the token expired at the router")
    refused(score(short_lived, "short", token), "token expired; call get_token() again", token)
    assert svc.run({"a": 2})["echo"] == {"a": 2}  # refresh_by passed: run() fetched a new token
