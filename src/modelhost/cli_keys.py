"""``modelhost keys``: the workspace's token signing keys (list, rotate). Never prints a private key.

Registered in :mod:`modelhost.cli`, whose output and error helpers the commands import when they
run (importing them here would be circular).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import typer

__all__ = ["keys_app"]

F = TypeVar("F", bound=Callable[..., Any])
keys_app = typer.Typer(help="List and rotate the signing keys of service tokens.", no_args_is_help=True,
                       rich_markup_mode=None)


def handles_errors(fn: F) -> F:
    """The CLI's error handling (one line on stderr, exit 1), looked up when the command runs."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from modelhost.cli import handles_errors as handle

        return handle(fn)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _when(epoch: Any) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(float(epoch)).isoformat(timespec="seconds")


@keys_app.command("list")
@handles_errors
def keys_list() -> None:
    """Every signing key kept: kid, created, active; retired keys until their last token expired."""
    from modelhost.cli import _table, _workspace, out, show

    answer = _workspace()._client.get("/api/v1/signing-keys")
    table = _table(columns=("kid", "created", "active", "retired", "pruned after"))
    for key in answer["value"]:
        table.add_row(str(key["kid"]), _when(key["created"]), "yes" if key["active"] else "no",
                      _when(key.get("retired")), _when(key.get("prunedAfter")))
    out(f"issuer: {answer['issuer']}")
    show(table)


@keys_app.command("rotate")
@handles_errors
def keys_rotate() -> None:
    """Make a new active signing key; tokens signed by the old one stay valid until they expire."""
    from modelhost.cli import _workspace, out

    key = _workspace()._client.post("/api/v1/signing-keys/rotate")
    out(f"new active signing key {key['kid']} (the router verifies with it now; old tokens keep working "
        "until they expire)")
