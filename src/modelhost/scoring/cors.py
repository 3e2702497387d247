"""CORS for the v1 routes, as flask-cors configured by azureml-inference-server-http 1.5.1 behaves.

v1 enables ``flask_cors.CORS(blueprint, methods=["GET", "POST"], origins=AML_CORS_ORIGINS.split(","))``:
an allowed ``Origin`` gets ``Access-Control-Allow-Origin: <origin>`` (never ``*``); a preflight
(``OPTIONS`` with ``Access-Control-Request-Method`` GET or POST) also gets the sorted requested headers
and ``Access-Control-Allow-Methods: GET, POST``; ``Vary: Origin`` is added when more than one origin
(or a pattern) is configured. Other origins get no CORS headers; a request without ``Origin``
gets the alphabetically first configured origin (flask-cors' ``always_send``), or ``*`` when ``*``
is configured. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["CorsPolicy"]

_REGEX_HINT = frozenset("*\\]?$^[]()")
_METHODS = ("GET", "POST")


class CorsPolicy:
    """Decides the CORS headers of one response from the request's Origin and preflight headers."""

    def __init__(self, origins: Sequence[str]) -> None:
        self._literal = {o.lower() for o in origins if _REGEX_HINT.isdisjoint(o)}
        self._patterns = [
            re.compile(".*" if o == "*" else o, re.IGNORECASE)
            for o in origins
            if not _REGEX_HINT.isdisjoint(o)
        ]
        self._vary = len(origins) > 1 or bool(self._patterns)
        self._wildcard = "*" in origins
        # flask-cors' always_send: a request without Origin gets the alphabetically first literal origin.
        self._sorted_literals = sorted(o for o in origins if _REGEX_HINT.isdisjoint(o))

    def headers(
        self, origin: str | None, method: str, request_method: str | None, request_headers: str | None
    ) -> list[tuple[bytes, bytes]]:
        """The CORS response headers, in flask-cors's order; empty when the origin is not allowed."""
        chosen: str
        if origin:
            if not self._allowed(origin):
                return []
            chosen = origin
        elif self._wildcard:
            chosen = "*"
        elif self._sorted_literals:
            chosen = self._sorted_literals[0]
        else:
            return []
        out = [(b"access-control-allow-origin", chosen.encode("latin-1"))]
        if method == "OPTIONS" and request_method and request_method.upper() in _METHODS:
            if request_headers:
                names = sorted(h.strip() for h in request_headers.split(","))
                out.append((b"access-control-allow-headers", ", ".join(names).encode("latin-1")))
            out.append((b"access-control-allow-methods", b"GET, POST"))
        if chosen != "*" and (self._vary or (not origin and len(self._sorted_literals) > 1)):
            out.append((b"vary", b"Origin"))
        return out

    def _allowed(self, origin: str) -> bool:
        return origin.lower() in self._literal or any(p.match(origin) for p in self._patterns)
