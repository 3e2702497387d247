"""What the in-cluster router reads, as rendered (pure): the anchor's ``data.route``, the token keys
ConfigMap, and the discovery's table from them. Objects validate against the official schemas."""

from __future__ import annotations

import base64
import json

import kubernetes_validate
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from modelhost.control.cluster_routes import anchor_route
from modelhost.control.routing import RouteSource
from modelhost.control.signing_keys import public_text
from modelhost.errors import ValidationError
from modelhost.router.k8s_discovery import table_from_objects
from modelhost.runtime.k8s_render import (
    ANCHOR_ROUTE_KEYS,
    KUBERNETES_VERSIONS,
    TOKEN_KEYS_CONFIGMAP,
    K8sOptions,
    ServiceKeys,
    render_anchor,
    render_keys_secret,
    render_token_keys,
)
from modelhost.spec.deployment import AksDeploymentConfig, config_from_payload
from modelhost.store.records import ServiceKeys as StoredKeys

OPTIONS = K8sOptions(namespace="ml", registry="registry.example.com/ml", artifact_url="http://cp:8080")
ROUTE = {"auth_enabled": True, "auth_mode": "key", "max_concurrent_per_replica": 4, "max_queue_wait_ms": 250,
         "scoring_timeout_ms": 9000, "scale_to_zero": False, "cold_start_wait_ms": 30000}


def _public() -> str:
    return public_text(Ed25519PrivateKey.generate())


@pytest.mark.parametrize("version", [KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]])
def test_anchor_with_route_and_token_keys_validate(version: str) -> None:
    anchor = render_anchor("iris", OPTIONS, ROUTE)
    assert json.loads(anchor["data"]["route"]) == ROUTE and anchor["data"]["service"] == "iris"
    kubernetes_validate.validate(anchor, version, strict=True)
    tokens = render_token_keys("modelhost:ws-1", {"kid1": _public()}, OPTIONS)
    assert tokens["metadata"]["name"] == TOKEN_KEYS_CONFIGMAP
    assert tokens["metadata"]["labels"]["app.kubernetes.io/component"] == "token-keys"
    kubernetes_validate.validate(tokens, version, strict=True)


def test_anchor_without_route_has_none() -> None:
    assert render_anchor("iris", OPTIONS)["data"] == {"service": "iris"}


@pytest.mark.parametrize(
    ("route", "named"),
    [({"replicas": []}, "unknown keys ['replicas']"), ({"keys": ["k"]}, "unknown keys ['keys']"),
     ({"max_concurrent_per_replica": 0}, "max_concurrent_per_replica=0"),
     ({"auth_mode": "open"}, "auth_mode")],
)
def test_bad_route_is_refused_naming_the_key(route: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        render_anchor("iris", OPTIONS, route)
    assert named in caught.value.message and caught.value.hint


def test_token_keys_refuse_a_private_key_and_never_echo_it() -> None:
    private = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with pytest.raises(ValidationError) as caught:
        render_token_keys("iss", {"kid": private.decode()}, OPTIONS)
    assert "not an Ed25519 public key" in caught.value.message
    assert "PRIVATE" not in caught.value.message and private.decode()[40:80] not in caught.value.message
    with pytest.raises(ValidationError):
        render_token_keys("", {"kid": _public()}, OPTIONS)


def test_anchor_route_from_a_service_configuration() -> None:
    config = AksDeploymentConfig.checked(replica_max_concurrent_requests=3, max_request_wait_time=700,
                                         token_auth_enabled=True, auth_enabled=False).to_payload()
    settings = config_from_payload(config).runtime_settings()
    source = RouteSource("tok", settings, StoredKeys("a", "b"), None)
    route = anchor_route(source)
    assert route is not None and set(route) == set(ANCHOR_ROUTE_KEYS)
    assert route["auth_mode"] == "token" and route["max_concurrent_per_replica"] == 3
    assert route["max_queue_wait_ms"] == 700
    assert anchor_route(None) is None


def _slice(service: str) -> dict[str, object]:
    labels = {"kubernetes.io/service-name": f"modelhost-{service}"}
    return {"metadata": {"name": f"{service}-x", "labels": labels},
            "ports": [{"name": "http", "port": 5001}],
            "endpoints": [{"addresses": ["127.1.0.9"], "conditions": {"ready": True},
                           "targetRef": {"name": f"{service}-pod"}}]}


def test_discovery_reads_routes_keys_and_token_keys() -> None:
    key_route = {**ROUTE, "max_concurrent_per_replica": 2}
    token_route = {**ROUTE, "auth_mode": "token"}
    anchors = [render_anchor("keyed", OPTIONS, key_route), render_anchor("tok", OPTIONS, token_route)]
    secrets = [render_keys_secret(s, ServiceKeys("p-" + s, "s-" + s), OPTIONS) for s in ("keyed", "tok")]
    public = _public()
    tokens = [render_token_keys("modelhost:ws-1", {"kid1": public}, OPTIONS)]
    table = table_from_objects(anchors, secrets, [_slice("keyed"), _slice("tok")], 7, tokens)
    keyed, tok = table.services["keyed"], table.services["tok"]
    assert keyed.max_concurrent_per_replica == 2 and keyed.keys == ("p-keyed", "s-keyed")
    assert tok.auth_mode == "token" and tok.keys == ()  # a token service's keys stay out (D12)
    assert table.token_issuer == "modelhost:ws-1" and dict(table.token_keys) == {"kid1": public}


def test_discovery_ignores_invalid_token_keys_but_keeps_routes() -> None:
    broken = {"metadata": {"name": TOKEN_KEYS_CONFIGMAP},
              "data": {"issuer": "iss", "keys": json.dumps({"k": base64.b64encode(b"short").decode()})}}
    table = table_from_objects([render_anchor("keyed", OPTIONS, ROUTE)], [], [_slice("keyed")], 1, [broken])
    assert "keyed" in table.services and dict(table.token_keys) == {} and table.token_issuer is None
