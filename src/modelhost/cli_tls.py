"""``modelhost router tls``: HTTPS at the router (set, self-signed, show, off). Never prints a key.

Registered in :mod:`modelhost.cli` as ``modelhost router``; the output and error helpers are
imported from there when a command runs (importing them here would be circular).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

__all__ = ["router_app"]

F = TypeVar("F", bound=Callable[..., Any])
_PLAIN: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": None}
router_app = typer.Typer(help="The workspace's router (the front door of every service).", **_PLAIN)
tls_app = typer.Typer(help="HTTPS at the router: your certificate, a self-signed one, or off.", **_PLAIN)
router_app.add_typer(tls_app, name="tls")


def handles_errors(fn: F) -> F:
    """The CLI's error handling (one line on stderr, exit 1), looked up when the command runs."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from modelhost.cli import handles_errors as handle

        return handle(fn)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _print(view: dict[str, Any], ca_out: Path | None = None) -> None:
    from modelhost.cli import out

    if not view.get("enabled"):
        out("router TLS: off (plain HTTP)")
        return
    kind = "self-signed (workspace CA)" if view.get("self_signed") else "your certificate"
    names = ", ".join([*view.get("dns_names", []), *view.get("ip_addresses", [])])
    out(f"router TLS: on, {kind}")
    for label, value in (("cname", view.get("cname") or "-"), ("names", names or "-"),
                         ("valid from", view.get("not_before")), ("valid until", view.get("not_after")),
                         ("sha256", view.get("fingerprint_sha256"))):
        out(f"  {label:<12}{value}")
    if view.get("ca_pem"):
        if ca_out is not None:
            ca_out.write_text(view["ca_pem"], encoding="ascii")
            out(f"  CA written to {ca_out} (trust it, e.g. curl --cacert {ca_out})")
        else:
            out("  clients trust the workspace CA: 'modelhost router tls show --ca-out ca.pem'")


def _put(payload: dict[str, Any]) -> dict[str, Any]:
    from modelhost.cli import _workspace

    return dict(_workspace()._client.request("PUT", "/api/v1/router/tls", json=payload))


def _read(path: Path, what: str) -> str:
    from modelhost.errors import ValidationError

    try:
        return path.expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"Cannot read the {what} file {path}: {exc}",
                              hint=f"Pass a readable PEM {what} file.") from exc


@tls_app.command("set")
@handles_errors
def tls_set(
    cert: Annotated[Path, typer.Option(help="PEM certificate chain, leaf first.")],
    key: Annotated[Path, typer.Option(help="PEM private key, unencrypted (stored with mode 0600).")],
    cname: Annotated[str, typer.Option(help="The host name clients use; the certificate must name it.")],
) -> None:
    """Serve HTTPS with your certificate; new connections get it at once, no restart."""
    _print(_put({"cert_pem": _read(cert, "certificate"), "key_pem": _read(key, "key"), "cname": cname}))


@tls_app.command("self-signed")
@handles_errors
def tls_self_signed(
    cname: Annotated[str | None, typer.Option(help="An extra host name the certificate names.")] = None,
    ca_out: Annotated[Path | None, typer.Option(help="Write the workspace CA (public PEM) here.")] = None,
) -> None:
    """Serve HTTPS with a certificate from the workspace's own CA (localhost, 127.0.0.1, --cname)."""
    _print(_put({"self_signed": True, "cname": cname}), ca_out)


@tls_app.command("show")
@handles_errors
def tls_show(
    ca_out: Annotated[Path | None, typer.Option(help="Write the workspace CA (public PEM) here.")] = None,
) -> None:
    """The router's TLS configuration: names, validity, fingerprint (never the key)."""
    from modelhost.cli import _workspace

    _print(dict(_workspace()._client.get("/api/v1/router/tls")), ca_out)


@tls_app.command("off")
@handles_errors
def tls_off() -> None:
    """Back to plain HTTP (the workspace CA is kept for a later 'self-signed')."""
    from modelhost.cli import _workspace

    _print(dict(_workspace()._client.delete("/api/v1/router/tls")))
