"""``modelhost``: the command line over the SDK (Typer + Rich).

Every command talks to the workspace's control plane (started in the background when none runs,
except by ``up``, ``down`` and ``status``). Errors print one line -- the message and the hint -- on
stderr and exit with status 1; a ``ModelhostError`` never shows a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from modelhost import __version__
from modelhost.control import server
from modelhost.errors import ModelhostError, ValidationError
from modelhost.sdk import Environment, Model, Workspace, local
from modelhost.sdk.environment import EnvironmentBuild
from modelhost.settings import Settings
from modelhost.spec.names import parse_model_id

__all__ = ["app", "main"]

F = TypeVar("F", bound=Callable[..., Any])

# soft_wrap: log lines and the one-line error stay one line each, whatever the terminal width
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="modelhost",
    help="Self-hosted serving for Azure ML v1 models and entry scripts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Register, list, download and delete models.", no_args_is_help=True)
env_app = typer.Typer(help="Build, list and prune environments.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(env_app, name="env")


def handles_errors(fn: F) -> F:
    """Print a ``ModelhostError`` as one line on stderr and exit 1 (Ctrl-C exits 130)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ModelhostError as exc:
            err_console.print(f"error: {exc.one_line()}", markup=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", markup=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _settings(port: int | None = None) -> Settings:
    settings = Settings.from_env()
    return settings if port is None else settings.with_(control_port=port)


def _workspace() -> Workspace:
    return Workspace()


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise ValidationError(
                f"Invalid {what} {item!r}: expected KEY=VALUE", hint=f"e.g. --{what} stage=dev"
            )
        out[key] = value
    return out


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _kv(value: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in value.items())


@contextmanager
def _byte_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar with bytes; yields the ``(done, total)`` callback the SDK reports to.

    The bar appears with the first report (after the input was checked) and vanishes on an error,
    so a failed command prints only its one error line.
    """
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=err_console)
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if not task:
            progress.start()
            task.append(progress.add_task(description, total=total))
        progress.update(task[0], completed=done, total=total)

    try:
        yield update
    except BaseException:
        for t in task:
            progress.remove_task(t)
        raise
    finally:
        progress.stop()


# -- control plane -----------------------------------------------------------------------------


@app.command()
@handles_errors
def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Start in the background and return.")
    ] = False,
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (MODELHOST_CONTROL_PORT).")] = None,
) -> None:
    """Start the workspace's control plane (in the foreground unless --detach)."""
    settings = _settings(port)
    if detach:
        running = local.find_running(settings)
        info = running or local.ensure_running(settings)
        state = "already running" if running else "started"
        console.print(
            f"control plane {state} at {info.url} (pid {info.pid}, workspace {settings.home}); "
            "stop it with 'modelhost down'",
            markup=False,
        )
        return
    server.configure_logging()
    console.print(
        f"control plane for workspace {settings.home} on {settings.host}:{settings.control_port} "
        "(Ctrl-C stops it)",
        markup=False,
    )
    server.serve(settings)


@app.command()
@handles_errors
def down() -> None:
    """Stop the workspace's control plane."""
    settings = _settings()
    info = local.stop(settings)
    if info is None:
        console.print(f"no control plane runs for workspace {settings.home}", markup=False)
    else:
        console.print(f"stopped the control plane at {info.url} (pid {info.pid})", markup=False)


@app.command()
@handles_errors
def status() -> None:
    """Show whether the control plane runs, where, and for which workspace (exit 1 when it does not)."""
    settings = _settings()
    info = local.find_running(settings)
    if info is None:
        err_console.print(
            f"control plane: not running (workspace {settings.home}); start it with 'modelhost up'",
            markup=False,
        )
        raise typer.Exit(1)
    details = Workspace(home=settings.home, autostart=False).get_details()
    table = Table(show_header=False, box=None)
    for key, value in (
        ("control plane", "running"),
        ("url", info.url),
        ("pid", str(info.pid)),
        ("version", info.version),
        ("workspace", details["home"]),
        ("database", details["database"]),
    ):
        table.add_row(key, value)
    console.print(table)


@app.command()
@handles_errors
def version() -> None:
    """Print modelhost's version."""
    console.print(__version__, markup=False)


@app.command()
@handles_errors
def replicas(
    rps: Annotated[float, typer.Option(help="Requests per second to serve.")],
    request_seconds: Annotated[float, typer.Option(help="Seconds one request takes.")],
    target_utilization: Annotated[float, typer.Option(help="Target busy fraction, e.g. 0.7.")] = 0.7,
    max_concurrent: Annotated[int, typer.Option(help="Concurrent requests per replica.")] = 1,
) -> None:
    """How many replicas serve RPS at the target utilization (v1's capacity formula)."""
    from modelhost.autoscale import replicas_for, replicas_formula

    console.print(str(replicas_for(rps, request_seconds, target_utilization, max_concurrent)), markup=False)
    console.print(replicas_formula(rps, request_seconds, target_utilization, max_concurrent), markup=False)


# -- models ------------------------------------------------------------------------------------


def _model(ws: Workspace, model_id: str) -> Model:
    name, version = parse_model_id(model_id)
    return Model(ws, name=name, version=version)


@model_app.command("register")
@handles_errors
def model_register(
    path: Annotated[Path, typer.Argument(help="Model file or folder.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name.")],
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    prop: Annotated[list[str] | None, typer.Option("--property", help="KEY=VALUE, repeatable.")] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    framework: Annotated[str | None, typer.Option(help="e.g. ScikitLearn, Onnx, PyTorch.")] = None,
    framework_version: Annotated[str | None, typer.Option(help="Needs --framework.")] = None,
) -> None:
    """Register a file or folder as a new version of a model (uploads only what the workspace lacks)."""
    tags, properties = _pairs(tag, "tag"), _pairs(prop, "property")
    ws = _workspace()
    with _byte_progress(f"uploading {path.name}") as progress:
        model = Model.register(
            ws,
            path,
            name,
            tags=tags,
            properties=properties,
            description=description,
            model_framework=framework,
            model_framework_version=framework_version,
            progress=progress,
            show_output=False,
        )
    kind = "folder" if model.is_dir else "file"
    console.print(
        f"Registered model {model.id} ({kind} {model.basename}, {len(model.files)} file(s), "
        f"{_size(model.size)})",
        markup=False,
    )


@model_app.command("list")
@handles_errors
def model_list(
    name: Annotated[str | None, typer.Option(help="Only this model name.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY or KEY=VALUE, repeatable.")] = None,
    prop: Annotated[list[str] | None, typer.Option("--property", help="KEY or KEY=VALUE.")] = None,
    latest: Annotated[bool, typer.Option(help="Only the newest version of each name.")] = False,
    framework: Annotated[str | None, typer.Option(help="Only this framework.")] = None,
) -> None:
    """List registered model versions, newest first."""
    models = Model.list(
        _workspace(),
        name=name,
        tags=tag or None,
        properties=prop or None,
        latest=latest,
        model_framework=framework,
    )
    table = Table(title=f"{len(models)} model version(s)")
    for column in ("Name", "Version", "Kind", "Size", "Framework", "Tags", "Created"):
        table.add_column(column, overflow="fold")
    for m in models:
        created = m.created_time.strftime("%Y-%m-%d %H:%M:%S") if m.created_time else ""
        table.add_row(
            m.name,
            str(m.version),
            "folder" if m.is_dir else "file",
            _size(m.size),
            m.model_framework or "",
            _kv(m.tags),
            created,
        )
    console.print(table)


@model_app.command("show")
@handles_errors
def model_show(model_id: Annotated[str, typer.Argument(metavar="NAME[:VERSION]")]) -> None:
    """Show a model version (the latest without :VERSION) and its files."""
    m = _model(_workspace(), model_id)
    table = Table(show_header=False, box=None)
    rows = (
        ("id", m.id),
        ("name", m.name),
        ("version", str(m.version)),
        ("basename", m.basename),
        ("kind", "folder" if m.is_dir else "file"),
        ("size", _size(m.size)),
        ("tags", _kv(m.tags)),
        ("properties", _kv(m.properties)),
        ("description", m.description or ""),
        ("framework", " ".join(x for x in (m.model_framework, m.model_framework_version) if x)),
        ("created", m.created_time.isoformat() if m.created_time else ""),
        ("url", m.url),
    )
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    files = Table(title="files")
    for column in ("Path", "Size", "sha256"):
        files.add_column(column, overflow="fold")
    for f in m.files:
        files.add_row(f["path"], _size(int(f["size"])), f["sha256"][:16])
    console.print(files)


@model_app.command("download")
@handles_errors
def model_download(
    model_id: Annotated[str, typer.Argument(metavar="NAME[:VERSION]")],
    target_dir: Annotated[Path, typer.Option(help="Folder to download into.")] = Path("."),
    exist_ok: Annotated[bool, typer.Option(help="Replace what is already there.")] = False,
) -> None:
    """Download a model's file or folder (as registered) into TARGET_DIR."""
    m = _model(_workspace(), model_id)
    with _byte_progress(f"downloading {m.id}") as progress:
        path = m.download(target_dir, exist_ok=exist_ok, progress=progress)
    console.print(f"Downloaded {m.id} to {path}", markup=False)


@model_app.command("delete")
@handles_errors
def model_delete(model_id: Annotated[str, typer.Argument(metavar="NAME:VERSION")]) -> None:
    """Delete one model version (refused while a service uses it)."""
    name, version = parse_model_id(model_id)
    if version is None:
        raise ValidationError(
            f"Give the version to delete: '{name}:<version>'",
            hint=f"List the versions with 'modelhost model list --name {name}'.",
        )
    m = Model(_workspace(), name=name, version=version)
    m.delete()
    console.print(f"Deleted model {m.id}", markup=False)


# -- environments ------------------------------------------------------------------------------


def _env_id(env_id: str) -> tuple[str, int | None]:
    name, sep, raw = env_id.partition(":")
    if not sep:
        return name, None
    if not raw.isdigit() or int(raw) < 1:
        raise ValidationError(f"Invalid environment id {env_id!r}: the version after ':' is an integer >= 1")
    return name, int(raw)


def _stream_build(build: EnvironmentBuild) -> dict[str, Any]:
    for line in build.stream():
        console.print(line, markup=False)
    error = build.error()
    if error is not None:
        raise error
    return build.result or {}


@env_app.command("build")
@handles_errors
def env_build(
    env_id: Annotated[str, typer.Argument(metavar="NAME[:VERSION]", help="Environment to build.")],
    conda_file: Annotated[Path | None, typer.Option(help="v1 conda specification (YAML).")] = None,
    pip_file: Annotated[Path | None, typer.Option(help="pip requirements file.")] = None,
    inherit: Annotated[bool, typer.Option(help="Use the control plane's own interpreter.")] = False,
) -> None:
    """Register (with a file or --inherit) and build an environment, streaming the build log."""
    name, version = _env_id(env_id)
    sources = [s for s in (conda_file, pip_file, inherit or None) if s]
    if len(sources) > 1:
        raise ValidationError("Give at most one of --conda-file, --pip-file, --inherit")
    if sources and version is not None:
        raise ValidationError(
            "A version cannot be given with a file: registering makes the version",
            hint=f"Use 'modelhost env build {name} --conda-file ...'.",
        )
    ws = _workspace()
    if conda_file is not None:
        env = Environment.from_conda_specification(name, conda_file)
    elif pip_file is not None:
        env = Environment.from_pip_requirements(name, pip_file)
    elif inherit:
        env = Environment.from_current(name)
    else:
        _stream_build(Environment.build_registered(ws, name, version))
        return
    _stream_build(env.build(ws))


@env_app.command("list")
@handles_errors
def env_list() -> None:
    """List environment versions."""
    records = [env.record for env in Environment.list_versions(_workspace())]
    table = Table(title=f"{len(records)} environment version(s)")
    for column in ("Name", "Version", "Status", "Python", "Requirements", "Updated"):
        table.add_column(column, overflow="fold")
    for r in records:
        spec = r.get("spec") or {}
        reqs = (
            "(inherits the control plane's interpreter)"
            if spec.get("inherit")
            else ", ".join(spec.get("requirements") or []) or "(none)"
        )
        python = r.get("python_version") or spec.get("python") or ""
        table.add_row(
            r["name"], str(r["version"]), r["status"], python, reqs, (r.get("updated_time") or "")[:19]
        )
    console.print(table)


@env_app.command("show")
@handles_errors
def env_show(
    env_id: Annotated[str, typer.Argument(metavar="NAME[:VERSION]")],
    log: Annotated[bool, typer.Option(help="Print the last build log.")] = True,
) -> None:
    """Show an environment version (the latest without :VERSION) with its last build log."""
    name, version = _env_id(env_id)
    env = Environment.get(_workspace(), name, version)
    record = env.record
    spec = record.get("spec") or {}
    table = Table(show_header=False, box=None)
    rows = (
        ("name", env.name),
        ("version", str(env.version)),
        ("status", str(record.get("status"))),
        ("python", str(record.get("python_version") or spec.get("python") or "")),
        ("requirements", ", ".join(spec.get("requirements") or []) or "(none)"),
        ("inherit", str(bool(spec.get("inherit")))),
        ("notes", "; ".join(spec.get("notes") or [])),
        ("path", str(record.get("path") or "")),
        ("spec hash", str(record.get("spec_hash"))),
    )
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    if log and record.get("log"):
        console.print("build log:", markup=False)
        console.print(record["log"], markup=False)


@env_app.command("prune")
@handles_errors
def env_prune() -> None:
    """Remove built environments that no ready environment of this workspace needs."""
    removed = Environment.prune(_workspace())
    for path in removed:
        console.print(f"removed {path}", markup=False)
    console.print(f"{len(removed)} environment(s) removed", markup=False)


def main() -> None:
    """Console-script entry point ``modelhost``."""
    app(prog_name="modelhost")


if __name__ == "__main__":
    main()
