"""Minting service tokens (v1 ``get_token()``): Ed25519-signed JWTs the router verifies offline.

Claims (docs/auth.md)::

    iss  modelhost:ws-<workspace id>       the workspace (SigningKeys.issuer)
    aud  modelhost-service:<service>       one service only
    sub  the calling identity              ADMIN_SUBJECT for now: the control plane has one admin token
    iat, nbf  now;  exp  now + ttl_s;  refresh_after  now + refresh_s;  jti  random (unique tokens)

Defaults: refresh after 1 h, expire after 12 h. v1's client refreshes lazily (at its next request
after ``refresh_after``, or on a 401), and tokens stay valid well past the refresh time, so a
client that was idle for a few hours still gets through once. ``MODELHOST_TOKEN_TTL_S`` and
``MODELHOST_TOKEN_REFRESH_S`` change both (tests use a few seconds).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from modelhost.control.signing_keys import KeyInfo, SigningKeys
from modelhost.errors import ValidationError

__all__ = ["ADMIN_SUBJECT", "MintedToken", "TokenPolicy", "TokenService", "claims_for", "mint"]

ADMIN_SUBJECT = "modelhost-admin"
DEFAULT_TTL_S = 12 * 3600.0
DEFAULT_REFRESH_S = 3600.0
AUDIENCE_PREFIX = "modelhost-service:"  # the router's modelhost.router.tokens.AUDIENCE_PREFIX


@dataclass(frozen=True)
class TokenPolicy:
    """How long tokens live (``ttl_s``) and when clients should fetch a new one (``refresh_s``)."""

    ttl_s: float = DEFAULT_TTL_S
    refresh_s: float = DEFAULT_REFRESH_S

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TokenPolicy:
        """``MODELHOST_TOKEN_TTL_S`` / ``MODELHOST_TOKEN_REFRESH_S``; refresh defaults to
        min(1 h, ttl / 2) so a short test TTL still refreshes before expiry."""
        ttl = _seconds(env, "MODELHOST_TOKEN_TTL_S", DEFAULT_TTL_S)
        refresh = _seconds(env, "MODELHOST_TOKEN_REFRESH_S", min(DEFAULT_REFRESH_S, ttl / 2))
        if refresh > ttl:
            raise ValidationError(
                f"MODELHOST_TOKEN_REFRESH_S={refresh:g} is longer than MODELHOST_TOKEN_TTL_S={ttl:g}",
                hint="Tokens must be refreshed before they expire: set a refresh time <= the TTL.",
            )
        return cls(ttl_s=ttl, refresh_s=refresh)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 30 * 86400:
        raise ValidationError(f"{name}={raw!r} is not a number of seconds in 1..2592000",
                              hint=f"Set {name} to the token lifetime in seconds, or unset it.")
    return value


@dataclass(frozen=True)
class MintedToken:
    """A token and its times (epoch seconds); ``to_dict`` is v1's REST answer."""

    access_token: str
    refresh_after: int
    expiry_on: int

    def __repr__(self) -> str:  # the token is a secret
        return f"MintedToken(refresh_after={self.refresh_after}, expiry_on={self.expiry_on})"

    def to_dict(self) -> dict[str, Any]:
        return {"accessToken": self.access_token, "tokenType": "Bearer",
                "refreshAfter": self.refresh_after, "expiryOn": self.expiry_on}


def claims_for(issuer: str, service: str, subject: str, now: float, policy: TokenPolicy,
               jti: str) -> dict[str, Any]:
    """The claims of a token for ``service`` minted at ``now`` (pure)."""
    iat = int(now)
    return {"iss": issuer, "aud": AUDIENCE_PREFIX + service, "sub": subject, "iat": iat, "nbf": iat,
            "exp": iat + int(policy.ttl_s), "refresh_after": iat + int(policy.refresh_s), "jti": jti}


def mint(keys: SigningKeys, service: str, now: float, policy: TokenPolicy,
         subject: str = ADMIN_SUBJECT) -> MintedToken:
    """A token for ``service`` signed with the active key (header ``kid``, ``alg`` EdDSA)."""
    kid, private = keys.active(policy.ttl_s)
    claims = claims_for(keys.issuer, service, subject, now, policy, secrets.token_urlsafe(12))
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid})
    return MintedToken(token, claims["refresh_after"], claims["exp"])


class TokenService:
    """The control plane's token calls: mint for a token-auth service, list and rotate keys.

    ``auth_mode_of(name)`` gives a service's auth mode (NotFoundError for an unknown one);
    ``publish()`` pushes the routing table (with the new public keys) to the router and returns
    once it has it, so a token minted after :meth:`rotate` returns is accepted at once.
    """

    def __init__(self, keys: SigningKeys, policy: TokenPolicy, auth_mode_of: Callable[[str], str],
                 publish: Callable[[], object], clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.policy = policy
        self._auth_mode_of = auth_mode_of
        self._publish = publish
        self._clock = clock

    def token_for(self, service: str) -> MintedToken:
        mode = self._auth_mode_of(service)
        if mode != "token":
            what = "key auth" if mode == "key" else "no authentication"
            raise ValidationError(
                f"Service {service} uses {what}: tokens are only issued for services with token auth",
                hint=("Call the service with a key from get_keys()" if mode == "key"
                      else "Call the service without credentials")
                + ", or enable token auth: update(token_auth_enabled=True, auth_enabled=False).",
            )
        return mint(self.keys, service, self._clock(), self.policy)

    def table_keys(self) -> tuple[str, dict[str, str]]:
        """(issuer, kid -> public key) for the routing table; expired keys are pruned here."""
        return self.keys.issuer, self.keys.public_keys(self._clock())

    def list_keys(self) -> list[KeyInfo]:
        return self.keys.list()

    def rotate(self) -> KeyInfo:
        info = self.keys.rotate(self._clock(), self.policy.ttl_s)
        self._publish()
        return info
