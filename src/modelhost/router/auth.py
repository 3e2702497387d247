"""Key authentication for scoring requests: a pure verdict from the header and the service's keys.

v1 semantics: key auth is on by default; the client sends ``Authorization: Bearer <key>`` with
either the primary or the secondary key. Every key is compared in constant time
(``hmac.compare_digest``), and all keys are always compared, so timing tells nothing about which
key nearly matched.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Sequence

__all__ = ["Verdict", "bearer_forms", "check_admin_token", "check_key"]


class Verdict(enum.Enum):
    """The outcome of a key check: ``allowed`` says whether to serve, ``message`` what to tell if not."""

    OPEN = "auth disabled"
    ALLOWED = "key accepted"
    MISSING = "Authorization header is missing; send 'Authorization: Bearer <key>'"
    MALFORMED = "Authorization header is not of the form 'Bearer <key>'"
    WRONG_KEY = "The key in the Authorization header is not valid for this service"
    NO_KEYS = "Key authentication is enabled but the service has no keys"

    @property
    def allowed(self) -> bool:
        return self in (Verdict.OPEN, Verdict.ALLOWED)

    @property
    def message(self) -> str:
        return self.value


def _bearer(authorization: bytes | None) -> bytes | Verdict:
    if authorization is None:
        return Verdict.MISSING
    scheme, _, token = authorization.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return Verdict.MALFORMED
    return token


def bearer_forms(keys: Sequence[bytes]) -> tuple[bytes, ...]:
    """``Bearer <key>`` for each key: the header exactly as clients send it, for the fast path."""
    return tuple(b"Bearer " + key for key in keys)


def check_key(authorization: bytes | None, keys: Sequence[bytes], *, enabled: bool = True,
              bearers: Sequence[bytes] = ()) -> Verdict:
    """Judge an ``Authorization`` header value against a service's keys (primary, secondary).

    ``bearers`` (from :func:`bearer_forms`) lets the usual exact header match skip parsing; other
    spellings (scheme case, extra spaces) take the full path.
    """
    if not enabled:
        return Verdict.OPEN
    if bearers and authorization is not None:
        exact = False
        for form in bearers:
            exact |= hmac.compare_digest(authorization, form)
        if exact:
            return Verdict.ALLOWED
    token = _bearer(authorization)
    if isinstance(token, Verdict):
        return token
    if not keys:
        return Verdict.NO_KEYS
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    return Verdict.ALLOWED if matched else Verdict.WRONG_KEY


def check_admin_token(authorization: bytes | None, token: bytes) -> bool:
    """Whether the header carries the router's admin token (constant-time comparison)."""
    presented = _bearer(authorization)
    return not isinstance(presented, Verdict) and hmac.compare_digest(presented, token)
