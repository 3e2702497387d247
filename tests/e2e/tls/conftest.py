"""Fixtures for TLS at the front door: the router's real processes (stand-in replicas, the router) and
certificates from ``trustme``, an independent CA implementation that serves as the test oracle."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from pathlib import Path

import trustme

from tests.e2e.router import conftest as router_fixtures

start_upstream = router_fixtures.start_upstream
start_router = router_fixtures.start_router

__all__ = ["client_context", "served_fingerprint", "write_pair"]


def write_pair(folder: Path, ca: trustme.CA, *names: str, **kwargs: object) -> str:
    """Issue a leaf for ``names`` and install it as the control plane does (key first, each file
    replaced atomically); returns its SHA-256 fingerprint as the router reports it."""
    leaf = ca.issue_cert(*names, **kwargs)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (("key.pem", leaf.private_key_pem.bytes()),
                       ("cert.pem", b"".join(p.bytes() for p in leaf.cert_chain_pems))):
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)
    return fingerprint(ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode()))


def fingerprint(der: bytes) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def client_context(ca: trustme.CA, *, minimum: ssl.TLSVersion | None = None,
                   maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def served_fingerprint(port: int, ctx: ssl.SSLContext, host: str = "127.0.0.1") -> tuple[str, str | None]:
    """A new connection's view: the leaf's fingerprint and the TLS version negotiated."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return fingerprint(der), tls.version()
