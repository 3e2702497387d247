"""``modelhost``: the command line over the SDK (Typer + Rich).

Every command talks to the workspace's control plane (started in the background when none runs,
except by ``up``, ``down`` and ``status``). Errors print one line -- the message and the hint -- on
stderr and exit with status 1; a ``ModelhostError`` never shows a traceback.

Start-up stays fast: only Typer is imported here; Rich, httpx and the SDK are imported inside the
commands that use them (``modelhost --help`` loads neither).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from modelhost import __version__
from modelhost.cli_compute import compute_app
from modelhost.cli_data import data_app
from modelhost.cli_keys import keys_app
from modelhost.cli_tls import router_app
from modelhost.errors import ModelhostError, ValidationError

if TYPE_CHECKING:
    from rich.console import Console

    from modelhost.sdk import Model, Workspace
    from modelhost.sdk.environment import EnvironmentBuild
    from modelhost.sdk.webservice import Webservice
    from modelhost.settings import Settings
    from modelhost.spec.deployment import DeploymentConfig

__all__ = ["app", "main"]

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def _consoles() -> tuple[Console, Console]:
    from rich.console import Console

    # soft_wrap: log lines and the one-line error stay one line each, whatever the terminal width
    return Console(highlight=False, soft_wrap=True), Console(stderr=True, highlight=False, soft_wrap=True)


def out(text: str) -> None:
    """One line (or block) of plain text on stdout. Plain ``print``: Rich costs 0.1-0.2 s of imports,
    and a log line or the one-line error must stay one line, whatever the terminal width."""
    print(text, flush=True)


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def show(renderable: Any) -> None:
    """A Rich renderable (a table) on stdout."""
    _consoles()[0].print(renderable)


# Plain help (no rich_markup_mode): Typer's Rich help costs 0.3-0.4 s of imports on every call.
_PLAIN: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": None}
app = typer.Typer(
    name="modelhost",
    help="Self-hosted serving for Azure ML v1 models and entry scripts.",
    add_completion=False,
    pretty_exceptions_enable=False,
    **_PLAIN,
)
model_app = typer.Typer(help="Register, list, download and delete models.", **_PLAIN)
env_app = typer.Typer(help="Build, list and prune environments.", **_PLAIN)
service_app = typer.Typer(help="Deploy, inspect, call, update and delete web services.", **_PLAIN)
app.add_typer(model_app, name="model")
app.add_typer(env_app, name="env")
app.add_typer(service_app, name="service")
app.add_typer(keys_app, name="keys")
app.add_typer(router_app, name="router")
app.add_typer(compute_app, name="compute")
app.add_typer(data_app, name="data")


def handles_errors(fn: F) -> F:
    """Print a ``ModelhostError`` as one line on stderr and exit 1 (Ctrl-C exits 130)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ModelhostError as exc:
            err(f"error: {_one_line(exc)}")
            raise typer.Exit(1) from None
        except NotImplementedError as exc:  # v1's answer for keys of a LocalWebservice
            err(f"error: {exc}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _one_line(exc: ModelhostError) -> str:
    """The error on one line: a multi-line message (every violation, v1 texts) joined with '; '."""
    message = "; ".join(line.strip() for line in exc.message.splitlines() if line.strip())
    return f"{message} ({exc.hint})" if exc.hint else message


def _settings(port: int | None = None) -> Settings:
    from modelhost.settings import Settings

    settings = Settings.from_env()
    return settings if port is None else settings.with_(control_port=port)


def _workspace() -> Workspace:
    """The local workspace, or with ``MODELHOST_URL`` a remote control plane (e.g. one installed in a
    cluster, docs/kubernetes.md) with its admin token read from ``MODELHOST_TOKEN_FILE``: a file, not a
    variable, so the token stays out of ``ps`` and shell history."""
    from modelhost.sdk import Workspace

    url = os.environ.get("MODELHOST_URL")
    if not url:
        return Workspace()
    token_file = os.environ.get("MODELHOST_TOKEN_FILE")
    if not token_file:
        raise ValidationError(
            f"MODELHOST_URL is {url} but MODELHOST_TOKEN_FILE is not set",
            hint="Set MODELHOST_TOKEN_FILE to the file holding that control plane's admin token "
            "('modelhost compute install' names it), or unset MODELHOST_URL for the local workspace.",
        )
    try:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValidationError(
            f"MODELHOST_TOKEN_FILE {token_file} cannot be read: {exc.strerror}",
            hint="Point MODELHOST_TOKEN_FILE at the admin token file of the control plane at MODELHOST_URL.",
        ) from exc
    if not token:
        raise ValidationError(f"MODELHOST_TOKEN_FILE {token_file} is empty",
                              hint="Write the control plane's admin token into it.")
    return Workspace(url=url, token=token)


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


def _table(title: str | None = None, columns: tuple[str, ...] = (), **kwargs: Any) -> Any:
    from rich.table import Table

    table = Table(title=title, **kwargs)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _pairs_table(rows: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> Any:
    table = _table(show_header=False, box=None)
    for key, value in rows:
        table.add_row(key, value)
    return table


@contextmanager
def _byte_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar with bytes; yields the ``(done, total)`` callback the SDK reports to.

    The bar appears with the first report (after the input was checked) and vanishes on an error,
    so a failed command prints only its one error line.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=_consoles()[1])
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


def _router(ws: Workspace) -> dict[str, Any] | None:
    """The router as the control plane reports it; None when it reports none."""
    from modelhost.errors import NotFoundError

    try:
        return dict(ws._client.get("/api/v1/router"))
    except NotFoundError:
        return None


def _router_line(router: dict[str, Any] | None) -> str:
    if router is None:
        return "router: not reported by the control plane"
    health = "healthy" if router.get("healthy") else "NOT healthy"
    return f"router at {router.get('url')} (pid {router.get('pid')}, {health})"


@app.command()
@handles_errors
def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Start in the background and return.")
    ] = False,
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (MODELHOST_CONTROL_PORT).")] = None,
    tls_cert: Annotated[Path | None, typer.Option(
        help="Serve the control plane's API over HTTPS with this PEM chain "
             "(MODELHOST_CONTROL_TLS_CERT).")] = None,
    tls_key: Annotated[Path | None, typer.Option(
        help="The private key of --tls-cert (MODELHOST_CONTROL_TLS_KEY).")] = None,
) -> None:
    """Start the workspace's control plane and its router (in the foreground unless --detach)."""
    from modelhost.sdk import Workspace, local

    # The server reads its TLS files from the environment (docs/tls.md); a started one inherits it.
    for var, value in (("MODELHOST_CONTROL_TLS_CERT", tls_cert), ("MODELHOST_CONTROL_TLS_KEY", tls_key)):
        if value is not None:
            os.environ[var] = str(value.expanduser().absolute())
    settings = _settings(port)
    if detach:
        running = local.find_running(settings)
        info = running or local.ensure_running(settings)
        state = "already running" if running else "started"
        out(
            f"control plane {state} at {info.url} (pid {info.pid}, workspace {settings.home}); "
            "stop it with 'modelhost down'"
        )
        with Workspace(home=settings.home, autostart=False) as ws:
            out(_router_line(_router(ws)))
        return
    from modelhost.control import server

    server.configure_logging()
    out(
        f"control plane for workspace {settings.home} on {settings.host}:{settings.control_port}, "
        f"router on {settings.host}:{settings.router_port} (Ctrl-C stops it)"
    )
    server.serve(settings)


@app.command()
@handles_errors
def down() -> None:
    """Stop the workspace's control plane, its replicas and its router."""
    from modelhost.control import server

    settings = _settings()
    report = server.stop_all(settings)
    control = report.control_plane
    if control is None:
        out(f"no control plane runs for workspace {settings.home}")
    else:
        out(f"stopped the control plane at {control.url} (pid {control.pid})")
    if report.replicas:
        out(f"stopped {report.replicas} replica process(es)")
    if report.router_pid is not None:
        out(f"stopped the router (pid {report.router_pid})")


@app.command()
@handles_errors
def status() -> None:
    """Show the control plane, the router and every service (exit 1 when the control plane is down)."""
    from modelhost.sdk import Webservice, Workspace, local

    settings = _settings()
    info = local.find_running(settings)
    if info is None:
        err(f"control plane: not running (workspace {settings.home}); start it with 'modelhost up'")
        raise typer.Exit(1)
    with Workspace(home=settings.home, autostart=False) as ws:
        details = ws.get_details()
        router = _router(ws)
        services = Webservice.list(ws)
    rows = [
        ("control plane", "running"),
        ("url", info.url),
        ("pid", str(info.pid)),
        ("version", info.version),
        ("workspace", str(details["home"])),
        ("database", str(details["database"])),
        ("router", _router_line(router).removeprefix("router ")),
    ]
    show(_pairs_table(rows))
    show(_services_table(services))


@app.command()
@handles_errors
def version() -> None:
    """Print modelhost's version."""
    out(__version__)


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

    out(str(replicas_for(rps, request_seconds, target_utilization, max_concurrent)))
    out(replicas_formula(rps, request_seconds, target_utilization, max_concurrent))


# -- models ------------------------------------------------------------------------------------


def _model(ws: Workspace, model_id: str) -> Model:
    from modelhost.sdk import Model
    from modelhost.spec.names import parse_model_id

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
    from modelhost.sdk import Model

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
    out(
        f"Registered model {model.id} ({kind} {model.basename}, {len(model.files)} file(s), "
        f"{_size(model.size)})"
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
    from modelhost.sdk import Model

    models = Model.list(
        _workspace(),
        name=name,
        tags=tag or None,
        properties=prop or None,
        latest=latest,
        model_framework=framework,
    )
    columns = ("Name", "Version", "Kind", "Size", "Framework", "Tags", "Created")
    table = _table(f"{len(models)} model version(s)", columns)
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
    show(table)


@model_app.command("show")
@handles_errors
def model_show(model_id: Annotated[str, typer.Argument(metavar="NAME[:VERSION]")]) -> None:
    """Show a model version (the latest without :VERSION) and its files."""
    m = _model(_workspace(), model_id)
    table = _table(show_header=False, box=None)
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
    show(table)
    files = _table("files", ("Path", "Size", "sha256"))
    for f in m.files:
        files.add_row(f["path"], _size(int(f["size"])), f["sha256"][:16])
    show(files)


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
    out(f"Downloaded {m.id} to {path}")


@model_app.command("delete")
@handles_errors
def model_delete(model_id: Annotated[str, typer.Argument(metavar="NAME:VERSION")]) -> None:
    """Delete one model version (refused while a service uses it)."""
    from modelhost.sdk import Model
    from modelhost.spec.names import parse_model_id

    name, version = parse_model_id(model_id)
    if version is None:
        raise ValidationError(
            f"Give the version to delete: '{name}:<version>'",
            hint=f"List the versions with 'modelhost model list --name {name}'.",
        )
    m = Model(_workspace(), name=name, version=version)
    m.delete()
    out(f"Deleted model {m.id}")


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
        out(line)
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
    from modelhost.sdk import Environment

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
    from modelhost.sdk import Environment

    records = [env.record for env in Environment.list_versions(_workspace())]
    columns = ("Name", "Version", "Status", "Python", "Requirements", "Updated")
    table = _table(f"{len(records)} environment version(s)", columns)
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
    show(table)


@env_app.command("show")
@handles_errors
def env_show(
    env_id: Annotated[str, typer.Argument(metavar="NAME[:VERSION]")],
    log: Annotated[bool, typer.Option(help="Print the last build log.")] = True,
) -> None:
    """Show an environment version (the latest without :VERSION) with its last build log."""
    from modelhost.sdk import Environment

    name, version = _env_id(env_id)
    env = Environment.get(_workspace(), name, version)
    record = env.record
    spec = record.get("spec") or {}
    table = _table(show_header=False, box=None)
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
    show(table)
    if log and record.get("log"):
        out("build log:")
        out(record["log"])


@env_app.command("prune")
@handles_errors
def env_prune() -> None:
    """Remove built environments that no ready environment of this workspace needs."""
    from modelhost.sdk import Environment

    removed = Environment.prune(_workspace())
    for path in removed:
        out(f"removed {path}")
    out(f"{len(removed)} environment(s) removed")


# -- services ----------------------------------------------------------------------------------

COMPUTE_TYPES = {"aks": "AKS", "aci": "ACI", "local": "Local"}
ModelOpt = Annotated[
    list[str] | None, typer.Option("--model", "-m", help="NAME[:VERSION] (latest without), repeatable.")
]
EntryOpt = Annotated[str | None, typer.Option(help="Entry script, relative to --source-dir (v1).")]
SourceOpt = Annotated[Path | None, typer.Option(help="Folder snapshotted with the entry script.")]
CondaOpt = Annotated[Path | None, typer.Option(help="v1 conda file: the environment NAME-env.")]
PipOpt = Annotated[Path | None, typer.Option(help="pip requirements file: the environment NAME-env.")]
EnvOpt = Annotated[str | None, typer.Option("--environment", help="A registered environment NAME[:VERSION].")]


def _compute_type(value: str) -> str:
    try:
        return COMPUTE_TYPES[value.lower()]
    except KeyError:
        raise ValidationError(f"Invalid compute type {value!r}", hint="Use AKS, ACI or Local.") from None


def deploy_config_from(
    payload: dict[str, Any] | None,
    compute_type: str | None = None,
    *,
    num_replicas: int | None = None,
    no_auth: bool = False,
    port: int | None = None,
) -> DeploymentConfig:
    """The deployment configuration of ``modelhost service deploy``: v1's ``deploymentconfig.json``
    keys (``payload``, ``computeType`` in any case) with the flags on top; validated, one error
    listing every violation. Without a type anywhere: AKS (this machine's router, key auth)."""
    from dataclasses import replace

    from modelhost.spec.deployment import AksDeploymentConfig, config_from_payload

    body = dict(payload or {})
    body["computeType"] = _compute_type(compute_type or str(body.get("computeType") or "AKS"))
    keys = body.get("keys")
    if isinstance(keys, dict):  # v1's sample files carry "" for "generate one"
        body["keys"] = {k: (v or None) for k, v in keys.items()}
    config = config_from_payload(body)
    changes: dict[str, Any] = {}
    if num_replicas is not None:
        changes["num_replicas"] = num_replicas
        if isinstance(config, AksDeploymentConfig) and config.autoscale_enabled is None:
            changes["autoscale_enabled"] = False
    if no_auth:
        changes["auth_enabled"] = False
    if port is not None:
        changes["port"] = port
    unknown = sorted(set(changes) - {f for f in type(config).__dataclass_fields__})
    if unknown:
        raise ValidationError(
            f"--{unknown[0].replace('_', '-')} does not apply to a {config.compute_type} service",
            hint="Leave it out, or choose another --compute-type.",
        )
    config = replace(config, **changes)
    problems = config.validate()
    if problems:
        raise ValidationError("\n".join(problems), details=problems)
    return config


def _read_config_file(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(f"Cannot read deployment config {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ValidationError(f"Deployment config {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"Deployment config {path} must hold a JSON object (v1 deploymentconfig.json)")
    return data


def _model_ids(ws: Workspace, models: list[str] | None) -> list[str]:
    return [_model(ws, model_id).id for model_id in models or []]


def _inference_config(
    name: str,
    entry_script: str | None,
    source_dir: Path | None,
    conda_file: Path | None,
    pip_file: Path | None,
    environment: str | None,
) -> Any:
    """The SDK ``InferenceConfig`` the code/environment flags describe (None when none is given)."""
    from modelhost.sdk import Environment, InferenceConfig

    if len([x for x in (conda_file, pip_file, environment) if x is not None]) > 1:
        raise ValidationError("Give at most one of --conda-file, --pip-file, --environment")
    if entry_script is None:
        if source_dir or conda_file or pip_file or environment:
            raise ValidationError(
                "--source-dir and the environment options need --entry-script",
                hint="e.g. --entry-script score.py --source-dir ./src",
            )
        return None
    env: Any = environment
    if pip_file is not None:
        env = Environment.from_pip_requirements(f"{name}-env", pip_file)
    return InferenceConfig(
        entry_script=entry_script,
        source_directory=source_dir,
        conda_file=None if conda_file is None else str(conda_file.resolve()),
        environment=env,
    )


def _follow(service: Webservice) -> None:
    """Print the operation's log live, then one line with the outcome."""
    try:
        service.wait_for_deployment(on_line=out)
    except ModelhostError as exc:  # the log is on screen already: one line, not v1's JSON dump
        error = service.error if isinstance(service.error, dict) else {}
        reason = str(error.get("message") or exc.message).splitlines()[0]
        raise ModelhostError(f"service {service.name} is {service.state}: {reason}", hint=exc.hint) from None
    uri = f" at {service.scoring_uri}" if service.scoring_uri else ""
    out(f"service {service.name}: {service.state}{uri}")


def _services_table(services: list[Webservice]) -> Any:
    columns = ("Name", "Type", "State", "Replicas", "Models", "Auth", "Scoring URI", "Updated")
    table = _table(f"{len(services)} service(s)", columns)
    for svc in services:
        ready = getattr(svc, "ready_replicas", None)
        desired = getattr(svc, "desired_replicas", None)
        updated = svc.__dict__.get("updated_time") or svc.__dict__.get("created_time")
        table.add_row(
            svc.name,
            str(svc.compute_type),
            str(svc.state),
            f"{'-' if ready is None else ready}/{'-' if desired is None else desired}",
            ", ".join(svc.model_ids),
            "token" if svc.token_auth_enabled else "key" if svc.auth_enabled else "none",
            svc.scoring_uri or "",
            updated.strftime("%Y-%m-%d %H:%M:%S") if updated else "",
        )
    return table


@service_app.command("deploy")
@handles_errors
def service_deploy(
    name: Annotated[str, typer.Argument(help="Service name (v1 rules: 3-32 chars, a-z 0-9 -).")],
    model: ModelOpt = None,
    entry_script: EntryOpt = None,
    source_dir: SourceOpt = None,
    conda_file: CondaOpt = None,
    pip_file: PipOpt = None,
    environment: EnvOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="v1 deploymentconfig.json.")] = None,
    compute_type: Annotated[str | None, typer.Option(help="AKS (default), ACI or Local.")] = None,
    num_replicas: Annotated[int | None, typer.Option(help="Fixed replica count (AKS).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Turn key auth off.")] = False,
    port: Annotated[int | None, typer.Option(help="Port of a Local service.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a service of the same name.")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the deployment until it ends.")] = True,
) -> None:
    """Deploy models with an entry script as a web service, printing the deployment log live."""
    from modelhost.sdk import Model

    payload = None if config is None else _read_config_file(config)
    deploy_config = deploy_config_from(
        payload, compute_type, num_replicas=num_replicas, no_auth=no_auth, port=port
    )
    if entry_script is None:
        raise ValidationError(
            "--entry-script is required: modelhost does not offer no-code deployment",
            hint="e.g. --entry-script score.py --source-dir ./src",
        )
    inference = _inference_config(name, entry_script, source_dir, conda_file, pip_file, environment)
    ws = _workspace()
    service = Model.deploy(ws, name, _model_ids(ws, model), inference, deploy_config, overwrite=overwrite)
    out(f"deploying service {name} ({deploy_config.compute_type}), operation {service.operation_id}")
    if wait:
        _follow(service)


@service_app.command("list")
@handles_errors
def service_list(
    compute_type: Annotated[str | None, typer.Option(help="Only AKS, ACI or Local services.")] = None,
    model: Annotated[str | None, typer.Option(help="Only services of model NAME[:VERSION].")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY or KEY=VALUE, repeatable.")] = None,
    prop: Annotated[list[str] | None, typer.Option("--property", help="KEY or KEY=VALUE.")] = None,
) -> None:
    """List the workspace's services."""
    from modelhost.sdk import Webservice

    kind = None if compute_type is None else _compute_type(compute_type)
    name, _, version = (model or "").partition(":")
    services = Webservice.list(
        _workspace(),
        compute_type=kind,
        model_name=name or None,
        model_id=model if version else None,
        tags=tag or None,
        properties=prop or None,
    )
    show(_services_table(services))


def _service(name: str) -> Webservice:
    from modelhost.sdk import Webservice

    return Webservice(_workspace(), name)


@service_app.command("show")
@handles_errors
def service_show(name: Annotated[str, typer.Argument()]) -> None:
    """Show a service: state, replicas (desired/ready), scoring URI, configuration and error."""
    import json

    svc = _service(name)
    scaler = getattr(svc, "autoscaler", None)
    autoscale = (
        f"{scaler.min_replicas}..{scaler.max_replicas} replicas at {scaler.target_utilization}%"
        if scaler is not None and scaler.autoscale_enabled
        else "off"
    )
    rows = [
        ("name", svc.name),
        ("type", str(svc.compute_type)),
        ("state", str(svc.state)),
        (
            "replicas",
            f"{svc.__dict__.get('ready_replicas')} ready / {svc.__dict__.get('desired_replicas')} desired",
        ),
        ("autoscale", autoscale),
        ("scoring uri", svc.scoring_uri or ""),
        ("swagger uri", svc.swagger_uri or ""),
        ("auth", "token" if svc.token_auth_enabled else "key" if svc.auth_enabled else "none"),
        ("models", ", ".join(svc.model_ids)),
        ("entry script", str(getattr(svc, "entry_script", "") or "")),
        ("environment", _env_label(getattr(svc, "environment_ref", None))),
        ("tags", _kv(svc.tags)),
        ("description", svc.description or ""),
        ("operation", str(svc.operation_id or "")),
    ]
    if svc.error:
        rows.append(("error", json.dumps(svc.error)))
    show(_pairs_table(rows))
    if svc.replicas:
        table = _table("replicas", ("Id", "State", "Port", "Pid", "Restarts"))
        for r in svc.replicas:
            table.add_row(*(str(r.get(k, "")) for k in ("id", "state", "port", "pid", "restarts")))
        show(table)


def _env_label(ref: dict[str, Any] | None) -> str:
    if not ref:
        return "(inherits the control plane's interpreter)"
    return f"{ref.get('name')}:{ref.get('version')}"


@service_app.command("logs")
@handles_errors
def service_logs(
    name: Annotated[str, typer.Argument()],
    tail: Annotated[int | None, typer.Option(help="Last N (default 5000; 100 with --requests).")] = None,
    init: Annotated[bool, typer.Option(help="The start-up part (init()) instead.")] = False,
    requests: Annotated[bool, typer.Option(
        "--requests", help="The request records instead (telemetry on; --tail defaults to 100).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --requests: one JSON object a line.")] = False,
) -> None:
    """Print the replicas' logs, or with --requests the service's request records."""
    if requests:
        _request_records(name, 100 if tail is None else tail, as_json)
        return
    out(_service(name).get_logs(num_lines=5000 if tail is None else tail, init=init))


def _request_records(name: str, tail: int, as_json: bool) -> None:
    """Time, request id, status, duration and error of each request, newest last (docs/telemetry.md)."""
    import json

    svc = _service(name)
    found = svc.workspace._client.get(f"/api/v1/services/{name}/requests", params={"tail": tail})
    records = found.get("requests") or []
    if as_json:
        for r in records:
            out(json.dumps(r))
        return
    if not records:
        err(f"no request records for {name} in {found.get('file')} (telemetry off, no requests yet, "
            "or exported over OTLP)")
        return
    for r in records:
        duration = r.get("duration_ms")
        line = (f"{r.get('time')} {r.get('request_id') or '-'} {r.get('method') or '-'} {r.get('status')} "
                f"{duration if duration is not None else '-'}ms")
        out(line + (f" error: {r['error']}" if r.get("error") else ""))


@service_app.command("keys")
@handles_errors
def service_keys(name: Annotated[str, typer.Argument()]) -> None:
    """Print the primary and secondary key."""
    primary, secondary = _service(name).get_keys()
    out(f"primary: {primary}")
    out(f"secondary: {secondary}")


@service_app.command("token")
@handles_errors
def service_token(name: Annotated[str, typer.Argument()]) -> None:
    """Print a new token for a token-auth service and when to fetch the next one."""
    token = _service(name).get_access_token()
    out(f"token: {token.access_token}")
    out(f"refresh_by: {token.refresh_after.isoformat(timespec='seconds')}")
    out(f"expires: {token.expiry_on.isoformat(timespec='seconds')}")


@service_app.command("regen-key")
@handles_errors
def service_regen_key(
    name: Annotated[str, typer.Argument()],
    key: Annotated[str, typer.Option(help="primary or secondary.")],
    value: Annotated[str | None, typer.Option(help="Set this value instead of a random one.")] = None,
) -> None:
    """Regenerate (or set) one key and wait until the router uses it."""
    _service(name).regen_key(key, set_key=value)
    out(f"{key.lower()} key of {name} regenerated")


@service_app.command("update")
@handles_errors
def service_update(
    name: Annotated[str, typer.Argument()],
    num_replicas: Annotated[int | None, typer.Option(help="Fixed replica count.")] = None,
    autoscale: Annotated[bool | None, typer.Option("--autoscale/--no-autoscale", help="Autoscaling.")] = None,
    autoscale_min: Annotated[int | None, typer.Option(help="Autoscale minimum replicas.")] = None,
    autoscale_max: Annotated[int | None, typer.Option(help="Autoscale maximum replicas.")] = None,
    autoscale_target: Annotated[int | None, typer.Option(help="Target utilization, percent.")] = None,
    auth: Annotated[bool | None, typer.Option("--auth/--no-auth", help="Key auth.")] = None,
    token_auth: Annotated[
        bool | None, typer.Option("--token-auth/--no-token-auth", help="Token auth (with --no-auth).")
    ] = None,
    cpu_cores: Annotated[float | None, typer.Option(help="CPU cores per replica.")] = None,
    memory_gb: Annotated[float | None, typer.Option(help="Memory per replica (GB).")] = None,
    scoring_timeout_ms: Annotated[int | None, typer.Option(help="Scoring timeout.")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Concurrent requests per replica.")] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (replaces all tags).")] = None,
    model: ModelOpt = None,
    entry_script: EntryOpt = None,
    source_dir: SourceOpt = None,
    conda_file: CondaOpt = None,
    pip_file: PipOpt = None,
    environment: EnvOpt = None,
    wait: Annotated[bool, typer.Option(help="Follow the update until it ends.")] = True,
) -> None:
    """Change a service; new models or code roll out new replicas before the old ones stop."""
    svc = _service(name)
    changes: dict[str, Any] = {
        "num_replicas": num_replicas,
        "autoscale_enabled": autoscale,
        "autoscale_min_replicas": autoscale_min,
        "autoscale_max_replicas": autoscale_max,
        "autoscale_target_utilization": autoscale_target,
        "auth_enabled": auth,
        "token_auth_enabled": token_auth,
        "cpu_cores": cpu_cores,
        "memory_gb": memory_gb,
        "scoring_timeout_ms": scoring_timeout_ms,
        "replica_max_concurrent_requests": max_concurrent,
        "description": description,
        "tags": _pairs(tag, "tag") if tag else None,
    }
    given = {k: v for k, v in changes.items() if v is not None}
    inference = _inference_config(name, entry_script, source_dir, conda_file, pip_file, environment)
    models = _model_ids(svc.workspace, model) if model else None
    if inference is not None:
        given["inference_config"] = inference
    if models is not None:
        given["models"] = models
    try:
        svc.update(**given)
    except TypeError:
        options = ", ".join(sorted(k for k in given if k not in ("models", "inference_config")))
        raise ValidationError(
            f"{options} cannot be updated on a {svc.compute_type} service",
            hint="See 'modelhost service update --help' and docs/deployment-config.md.",
        ) from None
    out(f"updating service {name}, operation {svc.operation_id}")
    if wait:
        _follow(svc)


@service_app.command("delete")
@handles_errors
def service_delete(name: Annotated[str, typer.Argument()]) -> None:
    """Delete a service: stop its replicas and remove its route."""
    _service(name).delete()
    out(f"deleted service {name}")


@service_app.command("run")
@handles_errors
def service_run(
    name: Annotated[str, typer.Argument()],
    data: Annotated[str | None, typer.Option(help="The request body, e.g. '{\"data\": [[1, 2]]}'.")] = None,
    data_file: Annotated[Path | None, typer.Option(help="Read the request body from this file.")] = None,
) -> None:
    """Call the service's scoring URI once (with its key or a token when auth is on); print the answer."""
    import json

    if (data is None) == (data_file is None):
        raise ValidationError("Give exactly one of --data and --data-file")
    body: str | bytes = data if data is not None else _read_bytes(data_file)
    out(json.dumps(_service(name).run(body)))


def _read_bytes(path: Path | None) -> bytes:
    assert path is not None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"Cannot read {path}: {exc.strerror}") from exc


def main() -> None:
    """Console-script entry point ``modelhost``."""
    app(prog_name="modelhost")


if __name__ == "__main__":
    main()
