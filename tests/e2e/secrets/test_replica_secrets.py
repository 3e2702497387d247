"""A replica running as ``nobody`` hunts for the workspace's secrets and finds none (issue 7 item 5).

The entry script (``hunt_score.py``) searches its environment, its working folder, the workspace,
every file the workspace holds (listed here, as root), and ``/proc/*/cmdline`` and ``/proc/*/environ``
of every process it can read. It gets the secrets only as sha256 digests and returns what matched.
A canary in its own snapshot proves the search finds what it can see.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelhost.runtime.replica_user import ReplicaUser
from tests.e2e.deploy.conftest import Plane

HUNT_SCRIPT = (Path(__file__).parent / "hunt_score.py").read_text()
# Variables a replica may see that carry modelhost's name: its own settings, none secret.
REPLICA_OWN = {"MODELHOST_REPLICA_ID", "MODELHOST_MAX_CONCURRENT_REQUESTS"}


def private_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def plant_keys(home: Path) -> None:
    """Private keys where the TLS and token features keep theirs, with modes as loose as a careless
    operator's: the workspace's own protection must keep them from the replica. (Stand-ins: the
    files are ours; ``key.pem``/``cert.pem`` are not used so the router stays on HTTP.)"""
    for folder, name in (
        (home / "router" / "tls", "stand-in-key.pem"),
        (home / "secrets", "signing-key.pem"),
    ):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        (folder / name).write_bytes(private_key_pem())
        (folder / name).chmod(0o644)


def targets(values: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"name": name, "sha256": hashlib.sha256(v.encode()).hexdigest(), "length": len(v)}
        for name, v in values.items()
    ]


def workspace_files(home: Path) -> list[str]:
    found = []
    for folder, _dirs, files in os.walk(home):
        found += [os.path.join(folder, f) for f in files]
    return found


def test_replica_running_as_nobody_finds_no_secret(nobody_plane: Plane, nobody: ReplicaUser) -> None:
    p = nobody_plane
    home = p.settings.home
    plant_keys(home)
    canary = secrets.token_urlsafe(32)
    model = p.register_model("hunt-model", b"weights " * 100)
    snapshot = p.snapshot(HUNT_SCRIPT, extra={"canary.txt": f"canary={canary}\n"})
    op = p.deploy("hunt", snapshot=snapshot, models=[model])
    assert op["state"] == "Succeeded", op
    primary, secondary = p.keys("hunt")
    router_token = json.loads((home / "router" / "router.json").read_text())["token"]
    values = {
        "control-plane-admin-token": p.token,
        "router-admin-token": router_token,
        "primary-key": primary,
        "secondary-key": secondary,
        "control-plane-env-token": p.env["CLOUD_API_TOKEN"],
        "control-plane-env-password": p.env["MODELHOST_DB_PASSWORD"],
        "canary": canary,
    }
    body = {"targets": targets(values), "paths": workspace_files(home), "home": str(home)}
    r = httpx.post(
        p.score_url("hunt"), json=body, headers={"Authorization": f"Bearer {primary}"}, timeout=120
    )
    assert r.status_code == 200, r.text
    result = r.json()

    assert result["uid"] == nobody.uid and result["groups"] in ([], [nobody.gid])
    canaries = [f for f in result["found"] if f["secret"] == "canary"]
    assert canaries and all("canary.txt" in f["where"] for f in canaries), result["found"]
    leaks = [f for f in result["found"] if f["secret"] != "canary"]
    assert leaks == [], leaks
    shared = (str(home / "replicas") + "/", str(home / "envs") + "/")
    assert [path for path in result["readable"] if not path.startswith(shared)] == []
    assert result["model_writable"] == []
    leaky = [n for n in result["env_names"] if n.startswith("MODELHOST_") and n not in REPLICA_OWN]
    assert leaky == [] and "CLOUD_API_TOKEN" not in result["env_names"]
    # the router's admin token is nowhere on its command line
    router_pid = json.loads((home / "router" / "router.json").read_text())["pid"]
    assert router_token not in Path(f"/proc/{router_pid}/cmdline").read_text()


def test_secret_files_are_private_and_replica_folders_belong_to_the_replica(
    nobody_plane: Plane, nobody: ReplicaUser
) -> None:
    p = nobody_plane
    home = p.settings.home
    model = p.register_model("owned-model", b"weights")
    assert p.deploy("owned", models=[model])["state"] == "Succeeded"
    for secret in ("control.json", "admin.token", "modelhost.db", "router/table.json", "router/router.json",
                   "router/admin.token"):  # fmt: skip
        assert (home / secret).stat().st_mode & 0o077 == 0, secret
    for private in ("router", "logs", "runtime", "blobs"):
        assert (home / private).stat().st_mode & 0o077 == 0, private
    (replica,) = p.service("owned")["modelhost"]["replicas"]
    folder = home / "replicas" / "owned" / replica["id"]
    assert folder.stat().st_uid == nobody.uid
    model_file = next((folder / "azureml-models").rglob("model.bin"))
    # a hard link into the store, still the control plane's and read-only: nobody cannot write it
    assert model_file.stat().st_nlink > 1 and model_file.stat().st_uid == os.geteuid()
    assert model_file.stat().st_mode & 0o222 == 0
