"""TLS configured through the control plane (SDK, REST, CLI) and the control plane's own API over TLS.

Real control plane, router and replica processes; certificates from ``trustme`` (the oracle) or the
workspace's own CA. Services inherit the control plane's interpreter (no environment build).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme

from modelhost.errors import ValidationError
from modelhost.sdk import AksWebservice, InferenceConfig, Model, Webservice, Workspace, local
from modelhost.sdk.ssl import SslConfiguration, apply_router_tls, client_context
from modelhost.tls import generate_ca, issue_leaf
from tests.e2e.control import conftest as control
from tests.e2e.control.conftest import Home
from tests.e2e.sdk import conftest as sdk
from tests.e2e.tls.conftest import served_fingerprint

machine_cache = control.machine_cache
home = control.home
shared_home = control.shared_home
ws = control.ws
model_file = sdk.model_file
model = sdk.model
app_dir = sdk.app_dir
cleanup = sdk.cleanup

ROW = json.dumps({"data": [[1, 1, 1, 1]]})


@pytest.fixture
def tls_off(ws: Workspace) -> Iterator[None]:
    """The module shares one workspace: every test leaves its router on plain HTTP."""
    yield
    apply_router_tls(ws, SslConfiguration(status="Disabled"))


def _deploy(ws: Workspace, model: Model, app_dir: Path, name: str) -> Webservice:
    config = InferenceConfig(entry_script="score.py", source_directory=str(app_dir))
    service = Model.deploy(ws, name, [model], config,
                           AksWebservice.deploy_configuration(num_replicas=1, autoscale_enabled=False))
    service.wait_for_deployment()
    return service


def _router_port(home: Home) -> int:
    return home.settings.router_port


def test_self_signed_through_the_sdk_gives_https_scoring_that_verifies(
    ws: Workspace, shared_home: Home, model: Model, app_dir: Path, cleanup: list[str], tls_off: None
) -> None:
    cleanup.append("tls-self")
    plain = _deploy(ws, model, app_dir, "tls-self")
    assert plain.scoring_uri and plain.scoring_uri.startswith("http://")

    view = apply_router_tls(ws, SslConfiguration(status="SelfSigned", cname="ml.local"))
    assert view["enabled"] and view["self_signed"] and view["cname"] == "ml.local"
    assert "key_pem" not in view and "PRIVATE" not in json.dumps(view)
    assert {"localhost", "ml.local"} <= set(view["dns_names"]) and "127.0.0.1" in view["ip_addresses"]

    service = Webservice(ws, "tls-self")
    port = _router_port(shared_home)
    assert service.scoring_uri == f"https://ml.local:{port}/api/v1/service/tls-self/score"
    # ml.local does not resolve here: score through 127.0.0.1, which the leaf names as well
    ca_ctx = client_context(view["ca_pem"])
    r = httpx.post(f"https://127.0.0.1:{port}/api/v1/service/tls-self/score", content=ROW,
                   headers={"Authorization": f"Bearer {service.get_keys()[0]}",
                            "Content-Type": "application/json"}, verify=ca_ctx)
    assert r.status_code == 200 and r.json()["sums"] == [10]
    assert served_fingerprint(port, ca_ctx)[0] == view["fingerprint_sha256"]

    # without a cname the scoring URI names the bind address, and Webservice.run() trusts the CA
    view = apply_router_tls(ws, SslConfiguration(status="SelfSigned"))
    service = Webservice(ws, "tls-self")
    assert service.scoring_uri == f"https://127.0.0.1:{port}/api/v1/service/tls-self/score"
    assert service.run(ROW)["sums"] == [10]

    folder = shared_home.settings.home / "router" / "tls"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "key.pem").stat().st_mode) == 0o600
    shown = shared_home.cli("router", "tls", "show")
    assert shown.returncode == 0 and "on, self-signed" in shown.stdout and "PRIVATE" not in shown.stdout

    off = shared_home.cli("router", "tls", "off")
    assert off.returncode == 0 and "off" in off.stdout
    assert Webservice(ws, "tls-self").scoring_uri == f"http://127.0.0.1:{port}/api/v1/service/tls-self/score"
    assert Webservice(ws, "tls-self").run(ROW)["sums"] == [10]


def _bad_cases(tmp: trustme.CA) -> list[tuple[str, dict[str, str], str]]:
    now = datetime.now(UTC)
    good = tmp.issue_cert("localhost", "127.0.0.1")
    other = tmp.issue_cert("localhost")
    cert = good.cert_chain_pems[0].bytes().decode()
    key = good.private_key_pem.bytes().decode()
    ca = generate_ca(now - timedelta(days=30))
    expired = issue_leaf(ca, ["localhost"], now - timedelta(days=20), days=10)
    future = issue_leaf(generate_ca(now), ["localhost"], now + timedelta(days=2))
    return [
        ("bad-pem", {"cert_pem": "garbage", "key_pem": key, "cname": "localhost"}, "not valid PEM"),
        ("key-mismatch", {"cert_pem": cert, "key_pem": other.private_key_pem.bytes().decode(),
                          "cname": "localhost"}, "does not match"),
        ("expired", {"cert_pem": expired.cert_pem.decode(), "key_pem": expired.key_pem.decode(),
                     "cname": "localhost"}, "expired"),
        ("not-yet-valid", {"cert_pem": future.cert_pem.decode(), "key_pem": future.key_pem.decode(),
                           "cname": "localhost"}, "not valid yet"),
        ("cname-not-in-sans", {"cert_pem": cert, "key_pem": key, "cname": "ml.example.com"}, "does not name"),
        ("missing-cname", {"cert_pem": cert, "key_pem": key}, "missing: cname"),
    ]


def test_user_certificate_and_every_bad_one_refused_with_400_and_the_old_one_still_served(
    ws: Workspace, shared_home: Home, model: Model, app_dir: Path, cleanup: list[str], tls_off: None,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cleanup.append("tls-user")
    _deploy(ws, model, app_dir, "tls-user")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    set_ = shared_home.cli("router", "tls", "set", "--cert", str(cert_file), "--key", str(key_file),
                           "--cname", "localhost")
    assert set_.returncode == 0, set_.stderr
    view = ws._client.get("/api/v1/router/tls")
    assert view["enabled"] and not view["self_signed"] and view["ca_pem"] is None
    port = _router_port(shared_home)
    trust = tmp_path / "trust.pem"
    ca.cert_pem.write_to_path(str(trust))
    ctx = client_context(trust.read_text())
    before = served_fingerprint(port, ctx, host="localhost")[0]
    assert before == view["fingerprint_sha256"]

    # Webservice.run() uses the system trust store for a user certificate (OpenSSL reads SSL_CERT_FILE)
    monkeypatch.setenv("SSL_CERT_FILE", str(trust))
    service = Webservice(ws, "tls-user")
    assert service.scoring_uri == f"https://localhost:{port}/api/v1/service/tls-user/score"
    assert service.run(ROW)["sums"] == [10]

    admin = {"Authorization": f"Bearer {(shared_home.settings.home / 'admin.token').read_text().strip()}"}
    for case, body, message in _bad_cases(trustme.CA()):
        r = httpx.put(f"{ws.url}/api/v1/router/tls", json=body, headers=admin)
        assert r.status_code == 400, (case, r.text)
        error = r.json()["error"]
        assert message in error["message"] and error["hint"], case
        assert "PRIVATE KEY" not in r.text, case
        assert served_fingerprint(port, ctx, host="localhost")[0] == before, case
        assert ws._client.get("/api/v1/router/tls")["fingerprint_sha256"] == before, case

    with pytest.raises(ValidationError, match="not supported"):
        apply_router_tls(ws, SslConfiguration(status="Auto", leaf_domain_label="contoso"))


def test_the_control_plane_api_over_tls(home: Home, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "control-cert.pem", tmp_path / "control-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))

    monkeypatch.setenv("MODELHOST_CONTROL_TLS_CERT", str(cert_file))
    with pytest.raises(ValidationError, match="MODELHOST_CONTROL_TLS_KEY is not"):
        local.ensure_running(home.settings)

    monkeypatch.setenv("MODELHOST_CONTROL_TLS_KEY", str(key_file))
    info = local.ensure_running(home.settings)
    port = home.settings.control_port
    assert info.url == f"https://127.0.0.1:{port}" and info.ca_pem and "PRIVATE" not in info.ca_pem
    assert stat.S_IMODE(os.stat(home.settings.discovery_file).st_mode) == 0o600

    with Workspace() as workspace:  # finds control.json, verifies the certificate it names
        assert workspace.url.startswith("https://")
        assert workspace.get_details()["url"] == info.url
        assert workspace._client.get("/api/v1/router/tls")["enabled"] is False
    context = ca.cert_pem.bytes().decode()
    token = home.settings.home.joinpath("admin.token").read_text().strip()
    r = httpx.get(f"{info.url}/api/v1/workspace", headers={"Authorization": f"Bearer {token}"},
                  verify=client_context(context))
    assert r.status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{info.url}/healthz", verify=client_context(trustme.CA().cert_pem.bytes().decode()))
    with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    status = home.cli("status")
    assert status.returncode == 0, status.stderr


def test_modelhost_up_with_tls_flags_serves_https(home: Home, tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "up-cert.pem", tmp_path / "up-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))

    started = home.cli("up", "--detach", "--tls-cert", str(cert_file), "--tls-key", str(key_file))
    assert started.returncode == 0, started.stderr
    port = home.settings.control_port
    assert f"https://127.0.0.1:{port}" in started.stdout
    info = json.loads(home.settings.discovery_file.read_text())
    assert info["url"] == f"https://127.0.0.1:{port}"
    ca_ctx = client_context(ca.cert_pem.bytes().decode())
    assert httpx.get(f"{info['url']}/healthz", verify=ca_ctx).status_code == 200
    assert "PRIVATE" not in started.stdout + started.stderr


def test_v1_compute_update_replaces_the_front_doors_certificate(ws: Workspace, tls_off: None) -> None:
    from modelhost.sdk.compute import AksUpdateConfiguration, ComputeTarget

    target = ComputeTarget(ws, "local")
    target.update(AksUpdateConfiguration(ssl_configuration=SslConfiguration(status="SelfSigned")))
    first = ws._client.get("/api/v1/router/tls")
    assert first["enabled"] and first["self_signed"]
    renewed = SslConfiguration(status="SelfSigned", cname="b.local")
    target.update(AksUpdateConfiguration(ssl_configuration=renewed))
    second = ws._client.get("/api/v1/router/tls")
    assert second["fingerprint_sha256"] != first["fingerprint_sha256"] and second["cname"] == "b.local"
    with pytest.raises(ValidationError, match="load_balancer_type"):
        AksUpdateConfiguration(load_balancer_type="InternalLoadBalancer")
