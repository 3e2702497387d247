"""``modelhost data``: model data collected by services with ``collect_model_data=True`` (list, export).

Registered in :mod:`modelhost.cli`, whose output and error helpers the commands import when they
run (importing them here would be circular).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

__all__ = ["data_app"]

F = TypeVar("F", bound=Callable[..., Any])
data_app = typer.Typer(help="List and export the model data services collected (ModelDataCollector).",
                       no_args_is_help=True, rich_markup_mode=None)


def handles_errors(fn: F) -> F:
    """The CLI's error handling (one line on stderr, exit 1), looked up when the command runs."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from modelhost.cli import handles_errors as handle

        return handle(fn)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@data_app.command("list")
@handles_errors
def data_list(
    service: Annotated[str, typer.Argument(help="The service's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Partitions (model, version, designation, day) with files, rows and sizes; rows dropped."""
    import json

    from modelhost.cli import _table, _workspace, err, out, show

    answer = _workspace()._client.get(f"/api/v1/services/{service}/data")
    if as_json:
        out(json.dumps(answer, indent=2))
        return
    if answer.get("message"):
        err(f"note: {answer['message']}")
    partitions = answer["partitions"]
    if not partitions:
        out(f"No model data collected for {service} yet (under {answer['path']}).")
        return
    table = _table(columns=("model", "version", "designation", "date", "files", "rows", "size"))
    for p in partitions:
        table.add_row(p["model"], p["version"], p["designation"], p["date"], str(p["files"]),
                      str(p["rows"]), _size(int(p["bytes"])))
    show(table)
    totals = answer["totals"]
    out(f"{totals['rows']} row(s) in {totals['files']} file(s), {_size(int(totals['bytes']))}, "
        f"under {answer['path']}; {answer['dropped']} row(s) dropped (buffer full)")


@data_app.command("export")
@handles_errors
def data_export(
    service: Annotated[str, typer.Argument(help="The service's name.")],
    model: Annotated[str | None, typer.Option("--model", help="Only this model's rows.")] = None,
    designation: Annotated[
        str | None, typer.Option("--designation", help="inputs, predictions, labels, signals or general.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only days on or after YYYY-MM-DD.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, jsonl or parquet.")] = "csv",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here, not stdout.")] = None,
) -> None:
    """All collected rows merged into one table with one header ($model, $model_version, $designation
    first), streamed to stdout or a file."""
    from modelhost.cli import _workspace, err

    params = {k: v for k, v in (("model", model), ("designation", designation), ("since", since),
                                ("format", fmt)) if v}
    chunks = _workspace()._client.stream(f"/api/v1/services/{service}/data/export", params=params)
    if output is None:
        sink = sys.stdout.buffer
        for chunk in chunks:
            sink.write(chunk)
        sink.flush()
        return
    tmp = output.with_name(f".{output.name}.part")
    written = 0
    try:
        with tmp.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                written += len(chunk)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    err(f"wrote {output} ({_size(written)})")
