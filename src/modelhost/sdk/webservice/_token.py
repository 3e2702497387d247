"""v1's ``AksServiceAccessToken``: a service token and its times, as ``get_access_token()`` returns it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelhost.errors import ModelhostError

__all__ = ["AksServiceAccessToken"]


@dataclass(frozen=True)
class AksServiceAccessToken:
    """``access_token`` (a JWT), ``token_type`` ("Bearer"), ``refresh_after`` and ``expiry_on``.

    The times are naive local datetimes (v1 builds them with ``datetime.fromtimestamp``);
    ``refresh_after_s``/``expiry_on_s`` keep the epoch seconds. The repr never shows the token.
    """

    access_token: str = field(repr=False)
    token_type: str
    refresh_after: datetime
    expiry_on: datetime
    refresh_after_s: float = field(repr=False)
    expiry_on_s: float = field(repr=False)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AksServiceAccessToken:
        """From the control plane's ``{accessToken, tokenType, refreshAfter, expiryOn}``."""
        try:
            refresh, expiry = float(payload["refreshAfter"]), float(payload["expiryOn"])
            return cls(access_token=str(payload["accessToken"]),
                       token_type=str(payload.get("tokenType", "Bearer")),
                       refresh_after=datetime.fromtimestamp(refresh),
                       expiry_on=datetime.fromtimestamp(expiry),
                       refresh_after_s=refresh, expiry_on_s=expiry)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelhostError(
                f"The control plane's token answer lacks or mangles {exc}",
                hint="Upgrade the control plane to the SDK's version.",
            ) from exc
