"""Token (JWT) authentication for scoring requests: offline verification with public keys only.

The control plane signs tokens with Ed25519 (JWS ``alg`` ``EdDSA``, header ``kid``); the router
holds only the public keys (``RoutingTable.token_keys``) and the expected issuer. A token is
accepted for service ``S`` when its signature verifies under the key its ``kid`` names, ``iss`` is
the table's issuer, ``aud`` is ``modelhost-service:S``, and ``nbf <= now < exp``.

Verifying a signature costs a few hundred microseconds, so a verified token's claims are cached by
the exact ``Authorization`` header value: a repeated token costs one dict lookup plus the
``aud``/``exp`` comparison. The cache belongs to one key set; :meth:`TokenVerifier.adopt` returns a
new, empty verifier when the keys or the issuer change, so a removed key stops its tokens at once.
Only successes are cached (a flood of bad tokens cannot evict good ones).

Pure: no clock, no I/O; the caller passes ``now`` (epoch seconds).
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Mapping

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

__all__ = [
    "AUDIENCE_PREFIX",
    "TokenVerdict",
    "TokenVerifier",
    "audience",
    "public_key_from_text",
]

AUDIENCE_PREFIX = "modelhost-service:"
CACHE_SIZE = 4096
# A token minted by a control plane whose clock runs slightly ahead is usable at once.
NBF_LEEWAY_S = 30.0


def audience(service: str) -> str:
    """The ``aud`` claim of a token for ``service``."""
    return AUDIENCE_PREFIX + service


class TokenVerdict(enum.Enum):
    """The outcome of a token check; ``message`` says what went wrong and how to fix it."""

    ALLOWED = "token accepted"
    MISSING = ("Authorization header is missing; this service uses token auth: send "
               "'Authorization: Bearer <token>' with a token from get_token()")
    MALFORMED = ("Authorization header is not of the form 'Bearer <token>' with a signed JWT; "
                 "get one with get_token()")
    BAD_SIGNATURE = ("The token's signature is not valid (altered, or not from this workspace); "
                     "call get_token() again")
    UNKNOWN_KEY = ("The token was signed with a key the router does not know (removed or from another "
                   "workspace); call get_token() again")
    WRONG_ISSUER = "The token was issued by another workspace; call get_token() on this workspace"
    WRONG_SERVICE = ("The token is for another service; call get_token() on this service's Webservice "
                     "object")
    EXPIRED = "The token expired; call get_token() again"
    NOT_YET_VALID = ("The token is not valid yet (nbf in the future); check the clocks, then call "
                     "get_token() again")
    NO_KEYS = ("Token auth is enabled but the router has no signing keys; publish the routing table from "
               "the control plane (restart it if needed)")

    @property
    def allowed(self) -> bool:
        return self is TokenVerdict.ALLOWED

    @property
    def message(self) -> str:
        return str(self.value)


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM block or the base64 (url-safe or standard) of its 32 raw
    bytes; ValueError naming the problem otherwise (never echoing the text)."""
    if text.lstrip().startswith("-----BEGIN"):
        key = load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"the PEM public key is {type(key).__name__}, not Ed25519")
        return key
    try:
        raw = base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the public key is neither PEM nor base64") from exc
    if len(raw) != 32:
        raise ValueError(f"the public key is {len(raw)} bytes, an Ed25519 key has 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def _claim_time(claims: Mapping[str, object], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class TokenVerifier:
    """Verifies tokens against one key set and issuer; caches what verified (see the module docstring)."""

    __slots__ = ("_cache", "_cache_size", "issuer", "key_texts", "keys")

    def __init__(self, issuer: str | None = None, key_texts: Mapping[str, str] | None = None,
                 *, cache_size: int = CACHE_SIZE) -> None:
        """``key_texts``: kid -> public key (see :func:`public_key_from_text`); ValueError if one is bad."""
        self.issuer = issuer
        self.key_texts = dict(key_texts or {})
        self.keys = {kid: public_key_from_text(text) for kid, text in self.key_texts.items()}
        self._cache_size = cache_size
        # exact Authorization header -> (aud, nbf, exp) of a token whose signature and issuer verified
        self._cache: dict[bytes, tuple[str, float, float]] = {}

    def adopt(self, issuer: str | None, key_texts: Mapping[str, str]) -> TokenVerifier:
        """This verifier (cache kept) when issuer and keys are unchanged, else a fresh one."""
        if issuer == self.issuer and key_texts == self.key_texts:
            return self
        return TokenVerifier(issuer, key_texts, cache_size=self._cache_size)

    def check(self, authorization: bytes | None, service: str, now: float) -> TokenVerdict:
        """Judge an ``Authorization`` header value for ``service`` at ``now`` (epoch seconds)."""
        if authorization is None:
            return TokenVerdict.MISSING
        hit = self._cache.get(authorization)
        if hit is None:
            verified = self._verify(authorization)
            if isinstance(verified, TokenVerdict):
                return verified
            hit = verified
            if len(self._cache) >= self._cache_size:
                # oldest first out: tokens are renewed hourly, so insertion order follows use
                del self._cache[next(iter(self._cache))]
            self._cache[authorization] = hit
        aud, nbf, exp = hit
        if now >= exp:
            self._cache.pop(authorization, None)
            return TokenVerdict.EXPIRED
        if now + NBF_LEEWAY_S < nbf:
            return TokenVerdict.NOT_YET_VALID
        if aud != AUDIENCE_PREFIX + service:
            return TokenVerdict.WRONG_SERVICE
        return TokenVerdict.ALLOWED

    def _verify(self, authorization: bytes) -> tuple[str, float, float] | TokenVerdict:
        scheme, _, rest = authorization.strip().partition(b" ")
        token = rest.strip()
        if scheme.lower() != b"bearer" or token.count(b".") != 2:
            return TokenVerdict.MALFORMED
        if not self.keys:
            return TokenVerdict.NO_KEYS
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return TokenVerdict.MALFORMED
        key = self.keys.get(str(header.get("kid")))
        if key is None:
            return TokenVerdict.UNKNOWN_KEY
        try:
            # signature only: the claims are checked below, against the caller's clock
            claims = jwt.decode(token, key, algorithms=["EdDSA"],
                                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                         "verify_aud": False, "verify_iss": False})
        except jwt.InvalidSignatureError:
            return TokenVerdict.BAD_SIGNATURE
        except jwt.InvalidTokenError:
            return TokenVerdict.MALFORMED
        return self._claims(claims)

    def _claims(self, claims: Mapping[str, object]) -> tuple[str, float, float] | TokenVerdict:
        aud, exp, nbf = claims.get("aud"), _claim_time(claims, "exp"), _claim_time(claims, "nbf")
        if not isinstance(aud, str) or exp is None:
            return TokenVerdict.MALFORMED
        if claims.get("iss") != self.issuer:
            return TokenVerdict.WRONG_ISSUER
        return aud, 0.0 if nbf is None else nbf, exp

