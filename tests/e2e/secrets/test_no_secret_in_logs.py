"""Secrets never appear in logs, operation logs, ``service show`` or error messages (issue 7 item 5).

A full run with key auth (deploy with keys of our own -> score -> a wrong key -> regenerate ->
update -> logs -> calls that fail -> delete) and with token auth (deploy -> token -> score -> a
forged token -> rotate the signing key), then every file under the workspace's logs folder (the
control plane's, the router's, its access log, every replica's), every operation's log as the API
returns it, ``modelhost service show`` and the failing calls' answers are searched for every secret
(and for any private-key PEM, and the lines of the signing keys' PEM bodies).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.deploy.conftest import Plane, aks, echo_script


def _score(p: Plane, name: str, key: str) -> httpx.Response:
    return httpx.post(
        p.score_url(name), json={"x": 1}, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _text(r: httpx.Response) -> str:
    return f"{r.status_code} {dict(r.headers)} {r.text}"


def _operation_logs(p: Plane) -> list[str]:
    ops = p.client.get("/api/v1/operations")
    assert ops.status_code == 200, ops.text
    texts = [ops.text]
    for op in ops.json()["value"]:
        full = p.client.get(f"/api/v1/operations/{op['id']}", params={"offset": 0})
        assert full.status_code == 200, full.text
        texts.append(full.text)
    return texts


def _files(folder: Path) -> dict[str, str]:
    out = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            out[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    return out


def _token_flow(p: Plane, shown: list[str]) -> list[str]:
    """Deploy with token auth, score with a token, be refused a forged one, rotate the signing key;
    the tokens minted."""
    config = aks(auth_enabled=False, token_auth_enabled=True)
    assert p.deploy("flow-token", config=config)["state"] == "Succeeded"
    minted = []
    for _ in range(2):
        r = p.client.post("/api/v1/services/flow-token/token")
        assert r.status_code == 200, r.text
        minted.append(r.json()["accessToken"])
        assert _score(p, "flow-token", minted[-1]).status_code == 200
        rotated = p.client.post("/api/v1/signing-keys/rotate")
        assert rotated.status_code in (200, 202), rotated.text
        shown.append(rotated.text + p.client.get("/api/v1/signing-keys").text)
    header, payload, signature = minted[0].split(".")
    forged = _score(p, "flow-token", f"{header}.{payload}.{signature[::-1]}")
    assert forged.status_code == 401
    shown.append(_text(forged))
    r = p.client.delete("/api/v1/services/flow-token")
    assert r.status_code == 202 and p.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    return minted


def _pem_lines(folder: Path) -> dict[str, str]:
    """The base64 lines of every private-key PEM under ``folder`` (read here, as the control plane's
    user), so a key logged without its armour is still found."""
    lines = {}
    for pem in folder.rglob("*.pem"):
        for i, line in enumerate(pem.read_text().splitlines()):
            if line and not line.startswith("-----"):
                lines[f"{pem.name} line {i}"] = line
    assert lines, f"no signing key under {folder}"
    return lines


def test_full_run_leaks_no_secret(shared: Plane) -> None:
    p = shared
    own_primary, own_secondary = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    model = p.register_model("flow-model", b"weights " * 100)
    config = aks(primary_key=own_primary, secondary_key=own_secondary)
    assert p.deploy("flow", models=[model], config=config)["state"] == "Succeeded"
    assert p.keys("flow") == (own_primary, own_secondary)
    shown: list[str] = []
    assert _score(p, "flow", own_primary).status_code == 200

    wrong = _score(p, "flow", own_primary[:-4] + "XXXX")
    assert wrong.status_code == 401
    shown.append(_text(wrong))

    r = p.client.post("/api/v1/services/flow/regenerateKeys", json={"keyType": "Primary", "keyValue": None})
    assert r.status_code == 202 and p.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    new_primary, _ = p.keys("flow")
    stale = _score(p, "flow", own_primary)
    assert stale.status_code == 401
    shown.append(_text(stale))
    bad_kind = p.client.post(
        "/api/v1/services/flow/regenerateKeys", json={"keyType": "Tertiary", "keyValue": own_secondary}
    )
    assert bad_kind.status_code == 400
    shown.append(_text(bad_kind))

    r = p.client.patch("/api/v1/services/flow", json={"snapshot": p.snapshot(echo_script("v2")),
                                                       "entry_script": "score.py"})  # fmt: skip
    assert r.status_code == 202 and p.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    assert _score(p, "flow", new_primary).json()["version"] == "v2"

    logs = p.client.get("/api/v1/services/flow/logs")
    assert logs.status_code == 200 and "==>" in logs.text
    shown.append(logs.text)
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "modelhost"), "service", "show", "flow"],
        env=p.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0 and "flow" in cli.stdout, cli.stderr
    shown.append(cli.stdout + cli.stderr)
    wrong_admin = httpx.get(f"{p.url}/api/v1/services/flow", headers={"Authorization": "Bearer nope"})
    assert wrong_admin.status_code == 401
    shown.append(_text(wrong_admin))
    bad_deploy = p.client.post(
        "/api/v1/services",
        json=p.deploy_body("flow-bad", config={**aks(primary_key=own_secondary), "numReplicas": "many"}),
    )
    assert bad_deploy.status_code == 400
    shown.append(_text(bad_deploy))
    shown.append(p.client.get("/api/v1/services/flow").text)

    tokens = _token_flow(p, shown)
    r = p.client.delete("/api/v1/services/flow")
    assert r.status_code == 202 and p.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    shown += _operation_logs(p)

    home = p.settings.home
    router_token = json.loads((home / "router" / "router.json").read_text())["token"]
    values = {
        "admin token": p.token,
        "router admin token": router_token,
        "own primary key": own_primary,
        "own secondary key": own_secondary,
        "regenerated primary key": new_primary,
        **{f"access token {i}": t for i, t in enumerate(tokens)},
        **_pem_lines(home / "secrets"),
    }
    texts = {**_files(p.settings.logs_dir), **{f"answer {i}": t for i, t in enumerate(shown)}}
    assert any(path.endswith("router-access.log") for path in texts), sorted(texts)
    assert any("/replicas/flow/" in path for path in texts), sorted(texts)
    leaks = [(what, where) for where, text in texts.items() for what, v in values.items() if v in text]
    assert leaks == []
    assert not [where for where, text in texts.items() if "PRIVATE KEY" in text]


def test_root_replica_gets_a_private_copy_of_its_model(shared: Plane) -> None:
    """A replica running as root ignores the blob's 0444 mode: it must not hold a link to it."""
    if os.geteuid() != 0:
        pytest.skip("only a root control plane gives replicas copies (otherwise hard links, 0444)")
    model = shared.register_model("copy-model", b"weights")
    assert shared.deploy("copy", models=[model])["state"] == "Succeeded"
    (replica,) = shared.service("copy")["modelhost"]["replicas"]
    folder = shared.settings.home / "replicas" / "copy" / replica["id"]
    placed = next((folder / "azureml-models").rglob("model.bin"))
    assert placed.stat().st_nlink == 1 and placed.read_bytes() == b"weights"
