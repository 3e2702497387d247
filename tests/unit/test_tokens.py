"""Service tokens: minting (control plane), signing keys on disk, offline verification (router).

Real keys, real PyJWT, real files under tmp_path; every time is an explicit ``now``.
"""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from modelhost.control.routing import RouteSource, build_table
from modelhost.control.signing_keys import SigningKeys, public_text
from modelhost.control.tokens import ADMIN_SUBJECT, TokenPolicy, claims_for, mint
from modelhost.errors import ValidationError
from modelhost.router.table import ServiceRoute, table_from_json, table_to_json
from modelhost.router.tokens import TokenVerdict, TokenVerifier, public_key_from_text
from modelhost.spec.deployment import AksDeploymentConfig
from modelhost.store.records import ServiceKeys

NOW = 1_800_000_000.0
POLICY = TokenPolicy()  # 12 h, refresh after 1 h


@pytest.fixture
def keys(tmp_path: Path) -> SigningKeys:
    return SigningKeys.open(tmp_path / "home", ttl_s=POLICY.ttl_s, now=NOW)


def verifier_for(keys: SigningKeys, now: float = NOW) -> TokenVerifier:
    return TokenVerifier(keys.issuer, keys.public_keys(now))


def bearer(token: str) -> bytes:
    return f"Bearer {token}".encode()


# -- minting -------------------------------------------------------------------------------------


def test_claims_are_v1_shaped_with_documented_defaults() -> None:
    claims = claims_for("modelhost:ws-1", "iris", ADMIN_SUBJECT, NOW + 0.7, POLICY, "j1")
    assert claims == {"iss": "modelhost:ws-1", "aud": "modelhost-service:iris", "sub": "modelhost-admin",
                      "iat": int(NOW), "nbf": int(NOW), "exp": int(NOW) + 12 * 3600,
                      "refresh_after": int(NOW) + 3600, "jti": "j1"}


def test_minted_token_is_eddsa_with_kid_and_answer_is_v1_json(keys: SigningKeys) -> None:
    minted = mint(keys, "iris", NOW, POLICY)
    header = jwt.get_unverified_header(minted.access_token)
    assert header["alg"] == "EdDSA" and header["kid"] == keys.list()[0].kid
    assert minted.to_dict() == {"accessToken": minted.access_token, "tokenType": "Bearer",
                                "refreshAfter": int(NOW) + 3600, "expiryOn": int(NOW) + 12 * 3600}
    assert minted.access_token not in repr(minted)
    assert mint(keys, "iris", NOW, POLICY).access_token != minted.access_token  # jti: unique


@pytest.mark.parametrize(
    ("env", "ttl", "refresh"),
    [
        pytest.param({}, 43200.0, 3600.0, id="defaults"),
        pytest.param({"MODELHOST_TOKEN_TTL_S": "4"}, 4.0, 2.0, id="short-ttl-refreshes-at-half"),
        pytest.param({"MODELHOST_TOKEN_TTL_S": "7200", "MODELHOST_TOKEN_REFRESH_S": "60"}, 7200.0, 60.0,
                     id="both"),
    ],
)
def test_policy_from_env(env: dict[str, str], ttl: float, refresh: float) -> None:
    assert TokenPolicy.from_env(env) == TokenPolicy(ttl_s=ttl, refresh_s=refresh)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        pytest.param({"MODELHOST_TOKEN_TTL_S": "soon"}, "MODELHOST_TOKEN_TTL_S='soon' is not a number",
                     id="not-a-number"),
        pytest.param({"MODELHOST_TOKEN_TTL_S": "0"}, "in 1..2592000", id="zero"),
        pytest.param({"MODELHOST_TOKEN_TTL_S": "10", "MODELHOST_TOKEN_REFRESH_S": "20"},
                     "REFRESH_S=20 is longer than MODELHOST_TOKEN_TTL_S=10", id="refresh-after-expiry"),
    ],
)
def test_policy_refuses_bad_values(env: dict[str, str], match: str) -> None:
    with pytest.raises(ValidationError, match=match) as info:
        TokenPolicy.from_env(env)
    assert info.value.hint


# -- signing keys on disk ------------------------------------------------------------------------


def test_keys_are_private_files_and_survive_a_restart(tmp_path: Path, keys: SigningKeys) -> None:
    folder = tmp_path / "home" / "secrets" / "signing"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    files = sorted(p.name for p in folder.iterdir())
    (info,) = keys.list()
    assert files == sorted([f"{info.kid}.pem", "keys.json"])
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    again = SigningKeys.open(tmp_path / "home", ttl_s=POLICY.ttl_s, now=NOW + 5)
    assert (again.issuer, [k.kid for k in again.list()]) == (keys.issuer, [info.kid])
    assert keys.issuer.startswith("modelhost:ws-")


def test_listing_never_shows_a_private_key(keys: SigningKeys) -> None:
    keys.rotate(NOW + 1, POLICY.ttl_s)
    shown = json.dumps([k.to_dict() for k in keys.list()])
    for pem in (keys.folder).glob("*.pem"):
        body = "".join(pem.read_text().splitlines()[1:-1])
        assert body not in shown
    assert "PRIVATE" not in shown


def test_rotation_keeps_the_old_key_until_its_last_token_expired(keys: SigningKeys) -> None:
    old = keys.list()[0].kid
    new = keys.rotate(NOW + 100, POLICY.ttl_s)
    assert new.active and new.kid != old
    assert sorted(keys.public_keys(NOW + 100)) == sorted([old, new.kid])
    before = NOW + 100 + POLICY.ttl_s - 1
    assert sorted(keys.public_keys(before)) == sorted([old, new.kid])
    assert list(keys.public_keys(NOW + 100 + POLICY.ttl_s)) == [new.kid]
    assert not (keys.folder / f"{old}.pem").exists()


def test_a_longer_ttl_keeps_a_retired_key_longer(keys: SigningKeys) -> None:
    old = keys.list()[0].kid
    keys.active(ttl_s=2 * POLICY.ttl_s)  # a control plane with a longer TTL signed with it
    keys.rotate(NOW, POLICY.ttl_s)
    assert old in keys.public_keys(NOW + POLICY.ttl_s + 1)
    assert old not in keys.public_keys(NOW + 2 * POLICY.ttl_s)


# -- verification --------------------------------------------------------------------------------


def test_valid_token_is_accepted_for_its_service_only(keys: SigningKeys) -> None:
    token = mint(keys, "iris", NOW, POLICY).access_token
    v = verifier_for(keys)
    assert v.check(bearer(token), "iris", NOW + 1) is TokenVerdict.ALLOWED
    assert v.check(bearer(token), "iris", NOW + 1) is TokenVerdict.ALLOWED  # cached
    assert v.check(bearer(token), "other", NOW + 1) is TokenVerdict.WRONG_SERVICE


def test_expiry_is_enforced_also_for_a_cached_token(keys: SigningKeys) -> None:
    minted = mint(keys, "iris", NOW, POLICY)
    v = verifier_for(keys)
    assert v.check(bearer(minted.access_token), "iris", minted.expiry_on - 1).allowed
    assert v.check(bearer(minted.access_token), "iris", minted.expiry_on) is TokenVerdict.EXPIRED
    assert verifier_for(keys).check(bearer(minted.access_token), "iris", minted.expiry_on + 1) \
        is TokenVerdict.EXPIRED


def test_removed_key_stops_its_tokens_at_once(keys: SigningKeys) -> None:
    token = bearer(mint(keys, "iris", NOW, POLICY).access_token)
    v = verifier_for(keys)
    assert v.check(token, "iris", NOW).allowed
    fresh = SigningKeys.open(keys.folder.parent.parent / "other-home", ttl_s=POLICY.ttl_s, now=NOW)
    swapped = v.adopt(keys.issuer, fresh.public_keys(NOW))  # same issuer, the old key gone
    assert swapped is not v
    assert swapped.check(token, "iris", NOW) is TokenVerdict.UNKNOWN_KEY
    assert v.adopt(keys.issuer, keys.public_keys(NOW)) is v  # unchanged keys keep the cache


def _tamper_payload(token: str) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["aud"] = "modelhost-service:other"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{head}.{forged}.{sig}"


def _flip_signature(token: str) -> str:
    head, payload, sig = token.split(".")
    return f"{head}.{payload}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"


def _foreign(keys: SigningKeys, *, kid: str | None = None, issuer: str | None = None) -> str:
    key = Ed25519PrivateKey.generate()
    claims = claims_for(issuer or keys.issuer, "iris", ADMIN_SUBJECT, NOW, POLICY, "x")
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid or "nope"})


def _none_alg(keys: SigningKeys) -> str:
    claims = claims_for(keys.issuer, "iris", ADMIN_SUBJECT, NOW, POLICY, "x")
    return jwt.encode(claims, None, algorithm="none", headers={"kid": keys.list()[0].kid})


def _hs256_with_public_key(keys: SigningKeys) -> str:
    # algorithm confusion: an HMAC "signed" with the public key must not pass
    claims = claims_for(keys.issuer, "iris", ADMIN_SUBJECT, NOW, POLICY, "x")
    secret = keys.public_keys(NOW)[keys.list()[0].kid].encode()
    return jwt.api_jws.PyJWS().encode(json.dumps(claims).encode(), secret.ljust(32, b"="), algorithm="HS256",
                                      headers={"kid": keys.list()[0].kid})


def _wrong_issuer(keys: SigningKeys) -> str:
    _, private = keys.active(POLICY.ttl_s)
    claims = claims_for("modelhost:ws-elsewhere", "iris", ADMIN_SUBJECT, NOW, POLICY, "x")
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": keys.list()[0].kid})


def _future(keys: SigningKeys) -> str:
    return mint(keys, "iris", NOW + 3600, POLICY).access_token


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda k: _tamper_payload(mint(k, "iris", NOW, POLICY).access_token),
                     TokenVerdict.BAD_SIGNATURE, id="tampered-claims"),
        pytest.param(lambda k: _flip_signature(mint(k, "iris", NOW, POLICY).access_token),
                     TokenVerdict.BAD_SIGNATURE, id="tampered-signature"),
        pytest.param(lambda k: _foreign(k), TokenVerdict.UNKNOWN_KEY, id="unknown-kid"),
        pytest.param(lambda k: _foreign(k, kid=k.list()[0].kid), TokenVerdict.BAD_SIGNATURE,
                     id="known-kid-foreign-key"),
        pytest.param(_wrong_issuer, TokenVerdict.WRONG_ISSUER, id="other-workspace"),
        pytest.param(_none_alg, TokenVerdict.MALFORMED, id="alg-none"),
        pytest.param(_hs256_with_public_key, TokenVerdict.MALFORMED, id="alg-hs256-confusion"),
        pytest.param(_future, TokenVerdict.NOT_YET_VALID, id="nbf-in-the-future"),
        pytest.param(lambda k: "not-a-jwt", TokenVerdict.MALFORMED, id="garbage"),
        pytest.param(lambda k: "a.b.c", TokenVerdict.MALFORMED, id="three-garbage-parts"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(keys: SigningKeys, make: Callable[[SigningKeys], str],
                                              expected: TokenVerdict) -> None:
    token = make(keys)
    verdict = verifier_for(keys).check(bearer(token), "iris", NOW + 1)
    assert verdict is expected
    assert token not in verdict.message and "get_token()" in verdict.message  # the fix, never the token


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, TokenVerdict.MISSING, id="missing"),
        pytest.param(b"Basic abc", TokenVerdict.MALFORMED, id="other-scheme"),
        pytest.param(b"Bearer", TokenVerdict.MALFORMED, id="no-token"),
        pytest.param(b"Bearer some-service-key", TokenVerdict.MALFORMED, id="a-key-is-not-a-token"),
    ],
)
def test_header_problems(keys: SigningKeys, header: bytes | None, expected: TokenVerdict) -> None:
    assert verifier_for(keys).check(header, "iris", NOW) is expected


def test_no_keys_in_the_table_is_its_own_verdict(keys: SigningKeys) -> None:
    token = bearer(mint(keys, "iris", NOW, POLICY).access_token)
    assert TokenVerifier(keys.issuer, {}).check(token, "iris", NOW) is TokenVerdict.NO_KEYS


def test_cache_is_bounded_and_only_holds_successes(keys: SigningKeys) -> None:
    v = TokenVerifier(keys.issuer, keys.public_keys(NOW), cache_size=3)
    tokens = [bearer(mint(keys, "iris", NOW, POLICY).access_token) for _ in range(5)]
    for token in tokens:
        assert v.check(token, "iris", NOW).allowed
    v.check(b"Bearer a.b.c", "iris", NOW)
    assert len(v._cache) == 3 and set(v._cache) == set(tokens[2:])


def test_public_key_forms() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    for text in (public_text(key), base64.b64encode(raw).decode(), pem):
        assert public_key_from_text(text).public_bytes(Encoding.Raw, PublicFormat.Raw) == raw
    with pytest.raises(ValueError, match="16 bytes, an Ed25519 key has 32"):
        public_key_from_text(base64.b64encode(b"x" * 16).decode())


# -- routing table ---------------------------------------------------------------------------------


def test_table_auth_mode_defaults_from_auth_enabled_for_old_tables() -> None:
    services = {"a": {"auth_enabled": False}, "b": {}, "c": {"auth_mode": "token"}}
    table = table_from_json({"services": services})
    modes = {n: (r.auth_mode, r.auth_enabled) for n, r in table.services.items()}
    assert modes == {"a": ("none", False), "b": ("key", True), "c": ("token", True)}
    assert ServiceRoute("x", (), auth_enabled=False).auth_mode == "none"


def test_table_round_trips_token_keys(keys: SigningKeys) -> None:
    raw = {"services": {"c": {"auth_mode": "token"}}, "token_issuer": keys.issuer,
           "token_keys": keys.public_keys(NOW)}
    table = table_from_json(raw)
    assert table_from_json(json.loads(json.dumps(table_to_json(table)))) == table
    assert "PRIVATE" not in json.dumps(table_to_json(table))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        pytest.param({"services": {"c": {"auth_mode": "jwt"}}}, "services.c.auth_mode='jwt' is not one of",
                     id="bad-mode"),
        pytest.param({"token_keys": {"k1": "AAAA"}}, "token_keys.k1 is not an Ed25519 public key",
                     id="short-key"),
        pytest.param({"token_keys": ["k1"]}, "token_keys is list, expected an object", id="not-an-object"),
    ],
)
def test_table_refuses_bad_token_fields(raw: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        table_from_json(raw)


def test_build_table_routes_token_services_without_their_keys(keys: SigningKeys) -> None:
    token_cfg = AksDeploymentConfig(num_replicas=1, autoscale_enabled=False, token_auth_enabled=True)
    key_cfg = AksDeploymentConfig(num_replicas=1, autoscale_enabled=False)
    sources = [RouteSource("t", token_cfg.resolved().runtime_settings(), ServiceKeys("p", "s"), None),
               RouteSource("k", key_cfg.resolved().runtime_settings(), ServiceKeys("p", "s"), None)]
    table = build_table(sources, 3, token_issuer=keys.issuer, token_keys=keys.public_keys(NOW))
    assert (table.services["t"].auth_mode, table.services["t"].keys) == ("token", ())
    assert (table.services["k"].auth_mode, table.services["k"].keys) == ("key", ("p", "s"))
    assert table.token_issuer == keys.issuer and table.token_keys == keys.public_keys(NOW)
