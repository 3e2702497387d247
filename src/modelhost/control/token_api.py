"""REST endpoints for service tokens and signing keys (thin handlers over :class:`.tokens.TokenService`).

The answers never contain a private key; the token route returns the token the caller asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.errors import ModelhostError

if TYPE_CHECKING:
    from modelhost.control.tokens import TokenService

__all__ = ["routes"]


def _tokens(request: Request) -> TokenService:
    tokens: TokenService | None = request.app.state.ctx.tokens
    if tokens is None:
        raise ModelhostError("Token auth is not set up in this control plane",
                             hint="Start the control plane with open_context() (modelhost up).")
    return tokens


async def service_token(request: Request) -> Response:
    """
    summary: A token for a token-auth service (v1 get_access_token)
    responses:
      200: {description: "{accessToken, tokenType: Bearer, refreshAfter, expiryOn} (epoch seconds)"}
      400: {description: the service uses key auth or no auth}
      404: {description: no such service}
    """
    minted = await run_in_threadpool(_tokens(request).token_for, request.path_params["name"])
    return JSONResponse(minted.to_dict(), headers={"Cache-Control": "no-store"})


async def list_signing_keys(request: Request) -> Response:
    """
    summary: The token signing keys kept (public halves only)
    responses:
      200: {description: "{issuer, value: [{kid, created, active, retired, prunedAfter, publicKey}]}"}
    """
    tokens = _tokens(request)
    infos = await run_in_threadpool(tokens.list_keys)
    return JSONResponse({"issuer": tokens.keys.issuer, "value": [k.to_dict() for k in infos]})


async def rotate_signing_keys(request: Request) -> Response:
    """
    summary: Make a new active signing key; tokens of the old one stay valid until they expire
    responses:
      200: {description: "the new key {kid, created, active, ...}; the router has it when this returns"}
    """
    info = await run_in_threadpool(_tokens(request).rotate)
    return JSONResponse(info.to_dict())


def routes() -> list[Route]:
    return [
        Route("/api/v1/services/{name}/token", service_token, methods=["POST"]),
        Route("/api/v1/signing-keys", list_signing_keys, methods=["GET"]),
        Route("/api/v1/signing-keys/rotate", rotate_signing_keys, methods=["POST"]),
    ]
