"""The router's TLS configuration: files under ``<home>/router/tls/`` and ``/api/v1/router/tls``.

Layout (folder 0700; every file 0600 but the public certificates, written atomically)::

    cert.pem      the chain the router serves (leaf first)      watched by the router
    key.pem       its private key                                watched by the router
    meta.json     {"cname": ..., "self_signed": ...}
    ca.pem        the workspace's local CA (self-signed mode)    public: clients trust it
    ca-key.pem    its key; kept so a renewed leaf stays trusted

A new pair is checked (:func:`modelhost.tls.check_pair`) before anything is written, so a refused
one leaves the served configuration untouched. The router picks the files up by itself (polling)
and is also told at once (``POST /-/tls``); nothing restarts. The control plane's own calls to the
router stay plain HTTP on loopback (:mod:`modelhost.router.front_door`).

Routes: ``GET`` (never the key), ``PUT`` ``{cert_pem, key_pem, cname}`` or ``{self_signed: true,
cname?}``, ``DELETE`` (back to plain HTTP).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.control.discovery import write_private
from modelhost.control.router_process import read_router_info, router_dir
from modelhost.control.service_view import set_front_door
from modelhost.errors import ValidationError
from modelhost.settings import Settings
from modelhost.tls import (
    CertInfo,
    CertKeyPair,
    check_pair,
    generate_ca,
    inspect_chain,
    issue_leaf,
    load_chain,
)

__all__ = ["ControlTls", "RouterTls", "control_tls_from_env", "load_front_door", "routes", "tls_dir"]

_log = logging.getLogger("modelhost.control")
_CA_RENEW_S = 30 * 86400  # a CA closer than this to its end is replaced instead of reused


def tls_dir(settings: Settings) -> Path:
    return router_dir(settings) / "tls"


def _loopback_names(host: str) -> list[str]:
    names = ["localhost", "127.0.0.1"]
    with contextlib.suppress(ValueError):
        if not ipaddress.ip_address(host).is_unspecified:
            names.append(host)
    return names


@dataclass(frozen=True)
class TlsView:
    enabled: bool
    cname: str | None
    self_signed: bool
    info: CertInfo | None
    ca_pem: str | None

    def to_dict(self) -> dict[str, Any]:
        info = self.info
        return {
            "enabled": self.enabled,
            "cname": self.cname,
            "self_signed": self.self_signed,
            "not_before": info.not_before.isoformat() if info else None,
            "not_after": info.not_after.isoformat() if info else None,
            "fingerprint_sha256": info.fingerprint_sha256 if info else None,
            "dns_names": list(info.dns_names) if info else [],
            "ip_addresses": list(info.ip_addresses) if info else [],
            "ca_pem": self.ca_pem,
        }


class RouterTls:
    """Reads, checks and writes the router's TLS files for one workspace."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = tls_dir(settings)

    def _path(self, name: str) -> Path:
        return self.dir / name

    def _meta(self) -> dict[str, Any]:
        try:
            raw = json.loads(self._path("meta.json").read_text(encoding="utf-8"))
            return raw if isinstance(raw, dict) else {}
        except (OSError, ValueError):
            return {}

    def show(self) -> TlsView:
        try:
            info = inspect_chain(load_chain(self._path("cert.pem").read_bytes()))
        except (OSError, ValidationError):
            return TlsView(False, None, False, None, None)
        meta = self._meta()
        self_signed = bool(meta.get("self_signed"))
        ca_pem = None
        if self_signed:
            with contextlib.suppress(OSError):
                ca_pem = self._path("ca.pem").read_text(encoding="ascii")
        return TlsView(True, meta.get("cname"), self_signed, info, ca_pem)

    def set_pair(self, pair: CertKeyPair, cname: str, *, now: datetime) -> TlsView:
        """Serve ``pair`` for ``cname`` (``ValidationError`` and nothing written when it is unfit)."""
        check_pair(pair, cname=cname, now=now)
        self._write(pair, {"cname": cname, "self_signed": False})
        return self.show()

    def self_signed(self, cname: str | None, *, now: datetime) -> TlsView:
        """Issue a leaf for localhost, 127.0.0.1, the bind address and ``cname`` from the workspace's
        CA (made on first use; reused afterwards so clients that trust it keep working)."""
        ca = self._ca(now)
        names = [*_loopback_names(self.settings.host), *([cname] if cname else [])]
        leaf = issue_leaf(ca, names, now)
        check_pair(leaf, cname=cname, now=now)
        self._write(leaf, {"cname": cname, "self_signed": True})
        return self.show()

    def disable(self) -> TlsView:
        """Back to plain HTTP; the CA stays, so turning self-signed on again keeps clients' trust."""
        for name in ("cert.pem", "key.pem", "meta.json"):
            with contextlib.suppress(FileNotFoundError):
                self._path(name).unlink()
        self._apply()
        return self.show()

    def _ca(self, now: datetime) -> CertKeyPair:
        try:
            ca = CertKeyPair(self._path("ca.pem").read_bytes(), self._path("ca-key.pem").read_bytes())
            info = check_pair(ca, cname=None, now=now)
            if (info.not_after - now).total_seconds() > _CA_RENEW_S:
                return ca
        except (OSError, ValidationError):
            pass
        ca = generate_ca(now, common_name=f"modelhost local CA ({self.settings.home.name})")
        self._mkdir()
        write_private(self._path("ca-key.pem"), ca.key_pem.decode("ascii"))
        write_private(self._path("ca.pem"), ca.cert_pem.decode("ascii"))
        os.chmod(self._path("ca.pem"), 0o644)
        return ca

    def _mkdir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    def _write(self, pair: CertKeyPair, meta: dict[str, Any]) -> None:
        self._mkdir()
        # key first: until cert.pem changes too the router keeps serving the old pair (a pair that
        # does not match is never loaded)
        write_private(self._path("key.pem"), pair.key_pem.decode("ascii"))
        write_private(self._path("cert.pem"), pair.cert_pem.decode("ascii"))
        write_private(self._path("meta.json"), json.dumps(meta) + "\n")
        self._apply()

    def _apply(self) -> None:
        """Point scoring URIs at the new front door and tell the router to read the files now."""
        load_front_door(self.settings)
        info = read_router_info(self.settings)
        if info is None:
            return  # the router reads the folder when it starts
        try:
            response = httpx.post(f"{info.url}/-/tls", headers={"Authorization": f"Bearer {info.token}"},
                                  timeout=5.0)
            state = response.json()
            if state.get("error"):
                _log.error("the router did not load the new TLS files: %s", state["error"])
        except (httpx.HTTPError, ValueError) as exc:
            _log.warning("could not tell the router about the TLS change (it polls the files): %s", exc)


def load_front_door(settings: Settings) -> None:
    """Register how clients reach the router (scheme and host name) for scoring URIs."""
    view = RouterTls(settings).show()
    if view.enabled:
        set_front_door(settings.host, settings.router_port, "https", view.cname or _public_host(settings))
    else:
        set_front_door(settings.host, settings.router_port, "http", settings.host)


def _public_host(settings: Settings) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(settings.host).is_unspecified:
            return "localhost"
    return settings.host


# -- routes ------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(f"'{key}' must be a string, got {type(value).__name__}",
                              hint=f"Send {key} as a PEM/text string.")
    return value


def apply_body(tls: RouterTls, body: Any, now: datetime) -> TlsView:
    """``PUT`` semantics: a user pair (cert + key + cname, all or none) or ``self_signed``."""
    if not isinstance(body, dict):
        raise ValidationError("The TLS configuration must be a JSON object",
                              hint='Send {"cert_pem", "key_pem", "cname"} or {"self_signed": true}.')
    unknown = sorted(set(body) - {"cert_pem", "key_pem", "cname", "self_signed"})
    if unknown:
        raise ValidationError(f"Unknown TLS configuration key(s): {', '.join(unknown)}",
                              hint="Allowed: cert_pem, key_pem, cname, self_signed.")
    cert, key, cname = _text(body, "cert_pem"), _text(body, "key_pem"), _text(body, "cname")
    if body.get("self_signed"):
        if cert or key:
            raise ValidationError("self_signed cannot be combined with cert_pem/key_pem",
                                  hint="Send either your certificate and key, or self_signed: true.")
        return tls.self_signed(cname, now=now)
    missing = [name for name, value in (("cert_pem", cert), ("key_pem", key), ("cname", cname)) if not value]
    if missing:
        raise ValidationError(f"A certificate needs cert_pem, key_pem and cname together; missing: "
                              f"{', '.join(missing)}",
                              hint="Give all three, or use self_signed: true for local use.")
    assert cert and key and cname
    return tls.set_pair(CertKeyPair(cert.encode(), key.encode()), cname, now=now)


def _tls(request: Request) -> RouterTls:
    settings: Settings = request.app.state.ctx.settings
    return RouterTls(settings)


async def get_tls(request: Request) -> Response:
    """
    summary: The router's TLS configuration (never the private key)
    responses:
      200: {description: "{enabled, cname, self_signed, not_before, not_after, fingerprint_sha256, ca_pem}"}
    """
    view = await run_in_threadpool(_tls(request).show)
    return JSONResponse(view.to_dict())


async def put_tls(request: Request) -> Response:
    """
    summary: Serve HTTPS at the router with a certificate (or a self-signed one); no restart
    responses:
      200: {description: the new configuration; new connections get the certificate}
      400: {description: bad PEM, key not matching, expired or not yet valid, cname not named}
    """
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise ValidationError(f"The request body is not valid JSON: {exc}",
                              hint="Send a JSON object.") from exc
    view = await run_in_threadpool(apply_body, _tls(request), body, _now())
    return JSONResponse(view.to_dict())


async def delete_tls(request: Request) -> Response:
    """
    summary: Turn TLS off at the router (plain HTTP); the local CA is kept
    responses:
      200: {description: "{enabled: false, ...}"}
    """
    view = await run_in_threadpool(_tls(request).disable)
    return JSONResponse(view.to_dict())


def routes() -> list[Route]:
    return [
        Route("/api/v1/router/tls", get_tls, methods=["GET"]),
        Route("/api/v1/router/tls", put_tls, methods=["PUT"]),
        Route("/api/v1/router/tls", delete_tls, methods=["DELETE"]),
    ]


# -- the control plane's own API over TLS -------------------------------------------------------------

CONTROL_CERT_VAR = "MODELHOST_CONTROL_TLS_CERT"
CONTROL_KEY_VAR = "MODELHOST_CONTROL_TLS_KEY"


@dataclass(frozen=True)
class ControlTls:
    """The control plane's certificate: PEM file paths, and the chain clients are told to trust."""

    certfile: Path
    keyfile: Path
    chain_pem: str

    def url(self, settings: Settings) -> str:
        return f"https://{_public_host(settings)}:{settings.control_port}"

    def uvicorn_options(self) -> dict[str, Any]:
        return {"ssl_certfile": str(self.certfile), "ssl_keyfile": str(self.keyfile)}


def control_tls_from_env(environ: Mapping[str, str], settings: Settings, now: datetime) -> ControlTls | None:
    """``MODELHOST_CONTROL_TLS_CERT`` + ``..._KEY`` (both or neither), checked like a router
    certificate; the leaf must name the host clients connect to."""
    cert, key = environ.get(CONTROL_CERT_VAR) or None, environ.get(CONTROL_KEY_VAR) or None
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = (CONTROL_CERT_VAR, CONTROL_KEY_VAR) if cert else (CONTROL_KEY_VAR, CONTROL_CERT_VAR)
        raise ValidationError(f"{given} is set but {missing} is not",
                              hint="Set both (PEM certificate chain and its key), or neither for plain HTTP.")
    paths = Path(cert).expanduser(), Path(key).expanduser()
    try:
        pair = CertKeyPair(paths[0].read_bytes(), paths[1].read_bytes())
    except OSError as exc:
        raise ValidationError(f"Cannot read the control plane's TLS file {exc.filename}: {exc.strerror}",
                              hint=f"Check {CONTROL_CERT_VAR} and {CONTROL_KEY_VAR}.") from exc
    check_pair(pair, cname=_public_host(settings), now=now)
    return ControlTls(paths[0].absolute(), paths[1].absolute(), pair.cert_pem.decode("ascii"))
