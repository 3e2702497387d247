"""TLS for clients and v1's SSL configuration of a compute target's front door (the router).

v1 configures TLS per cluster: ``AksCompute.attach_configuration(...).enable_ssl(ssl_cname=...,
ssl_cert_pem_file=..., ssl_key_pem_file=...)`` at attach time, or
``AksCompute.update(AksUpdateConfiguration(ssl_configuration=SslConfiguration(status="Enabled",
cert=<PEM text>, key=<PEM text>, cname=...)))`` later. Here both end in :func:`apply_router_tls`,
which sends the configuration to the control plane (``PUT /api/v1/router/tls``); the router serves
the new certificate to new connections without a restart.

Beyond v1: ``SslConfiguration(status="SelfSigned", cname=None)`` makes a workspace CA and a leaf
for localhost/127.0.0.1/cname (for local use). Microsoft-issued certificates (``status="Auto"``,
``leaf_domain_label``) do not exist here: a clear error says so.

:func:`client_context` is how the SDK verifies an https endpoint: the system trust store, or a
given PEM (a workspace CA, or a server certificate trusted as it is).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhost.errors import ValidationError

if TYPE_CHECKING:
    from modelhost.sdk.workspace import Workspace

__all__ = ["SslConfiguration", "SslEnabling", "apply_router_tls", "client_context", "scoring_verify"]

_STATUSES = ("Enabled", "Disabled", "Auto", "SelfSigned")


def client_context(ca_pem: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the system's trust store, or only ``ca_pem`` when given (a CA, or
    the server's own certificate chain: partial chains are accepted so a pinned leaf verifies)."""
    if ca_pem is None:
        return ssl.create_default_context()
    ctx = ssl.create_default_context(cadata=ca_pem)
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


def _not_supported_auto() -> ValidationError:
    return ValidationError(
        "Microsoft-issued certificates (leaf_domain_label, status 'Auto') are not supported by modelhost",
        hint="Use your own certificate (ssl_cert_pem_file, ssl_key_pem_file, ssl_cname) or a self-signed "
        "one: SslConfiguration(status='SelfSigned') / 'modelhost router tls self-signed'.",
    )


class SslConfiguration:
    """v1's ``azureml.core.compute.aks.SslConfiguration``: ``cert`` and ``key`` hold PEM *text*."""

    def __init__(self, status: str | None = None, cert: str | None = None, key: str | None = None,
                 cname: str | None = None, leaf_domain_label: str | None = None,
                 overwrite_existing_domain: bool = False, renew: bool = False) -> None:
        self.status = status
        self.cert = cert
        self.key = key
        self.cname = cname
        self.leaf_domain_label = leaf_domain_label
        self.overwrite_existing_domain = overwrite_existing_domain
        self.renew = renew

    def __repr__(self) -> str:
        key = "<hidden>" if self.key else None
        cert = f"<{len(self.cert)} chars>" if self.cert else None
        return (f"SslConfiguration(status={self.status!r}, cert={cert}, key={key}, cname={self.cname!r}, "
                f"leaf_domain_label={self.leaf_domain_label!r})")

    def validate_configuration(self) -> None:
        """v1's rules: cert, key and cname all or none; not with leaf_domain_label."""
        if self.status is not None and self.status not in _STATUSES:
            raise ValidationError(f"SslConfiguration status {self.status!r} is not one of "
                                  f"{', '.join(_STATUSES)}",
                                  hint="Use 'Enabled' with cert, key and cname, 'SelfSigned' or 'Disabled'.")
        if self.leaf_domain_label or self.overwrite_existing_domain or self.status == "Auto" or self.renew:
            raise _not_supported_auto()
        given = [n for n in ("cert", "key", "cname") if getattr(self, n)]
        if self.status in (None, "Enabled") and len(given) != 3:
            missing = sorted({"cert", "key", "cname"} - set(given))
            raise ValidationError(f"Error, SSL cert, key and cname must be provided together; missing: "
                                  f"{', '.join(missing)}",
                                  hint="Give all three (PEM text for cert and key), or status='SelfSigned'.")
        if self.status == "SelfSigned" and (self.cert or self.key):
            raise ValidationError("A self-signed configuration takes no cert or key",
                                  hint="Drop cert/key, or use status='Enabled' with your own.")

    def to_payload(self) -> dict[str, Any] | None:
        """The body of ``PUT /api/v1/router/tls``; None means turn TLS off."""
        self.validate_configuration()
        if self.status == "Disabled":
            return None
        if self.status == "SelfSigned":
            return {"self_signed": True, "cname": self.cname}
        return {"cert_pem": self.cert, "key_pem": self.key, "cname": self.cname}


def apply_router_tls(workspace: Workspace, ssl_configuration: SslConfiguration) -> dict[str, Any]:
    """Configure the workspace's router (its front door) with ``ssl_configuration``; returns what the
    control plane now serves (``enabled``, ``cname``, ``fingerprint_sha256``, ``not_after``, ...)."""
    payload = ssl_configuration.to_payload()
    client = workspace._client
    if payload is None:
        return dict(client.delete("/api/v1/router/tls"))
    return dict(client.request("PUT", "/api/v1/router/tls", json=payload))


def _read_pem(path: str | Path, what: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"Cannot read the SSL {what} file {path}: {exc}",
                              hint=f"Pass the path of a readable PEM {what} file.") from exc


class SslEnabling:
    """Mixin for provisioning/attach configurations: v1's ``enable_ssl`` sets ``ssl_configuration``."""

    ssl_configuration: SslConfiguration | None = None

    def enable_ssl(self, ssl_cname: str | None = None, ssl_cert_pem_file: str | None = None,
                   ssl_key_pem_file: str | None = None, leaf_domain_label: str | None = None,
                   overwrite_existing_domain: bool = False) -> None:
        """Enable TLS at the front door with your certificate (PEM files; all three or none).
        ``leaf_domain_label`` (a Microsoft certificate) is not supported."""
        if leaf_domain_label or overwrite_existing_domain:
            raise _not_supported_auto()
        files = (ssl_cname, ssl_cert_pem_file, ssl_key_pem_file)
        if any(files) and not all(files):
            raise ValidationError("Error, SSL cname, cert pem file, and key pem file must be provided "
                                  "together",
                                  hint="Pass ssl_cname, ssl_cert_pem_file and ssl_key_pem_file, or none of "
                                  "them for a self-signed certificate.")
        if not any(files):
            config = SslConfiguration(status="SelfSigned")
        else:
            assert ssl_cert_pem_file and ssl_key_pem_file
            config = SslConfiguration(status="Enabled", cert=_read_pem(ssl_cert_pem_file, "certificate"),
                                      key=_read_pem(ssl_key_pem_file, "key"), cname=ssl_cname)
        config.validate_configuration()
        self.ssl_configuration = config


def scoring_verify(workspace: Workspace, scoring_uri: str) -> ssl.SSLContext | bool:
    """How ``Webservice.run()`` verifies ``scoring_uri``: nothing to verify for http; the workspace CA
    for a self-signed router; the system trust store for a user certificate."""
    if not scoring_uri.startswith("https:"):
        return True
    view = workspace._client.get("/api/v1/router/tls")
    ca_pem = view.get("ca_pem") if isinstance(view, dict) and view.get("self_signed") else None
    return client_context(ca_pem)
