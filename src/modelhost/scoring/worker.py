"""One worker process: load the entry script, call init(), serve HTTP on the sockets the supervisor bound.

The worker starts answering at once: ``/`` and ``/v2/health/ready`` say 503 until init() has finished,
then 200. The script is imported and init() is called on the first slot thread, the same thread that
later runs run() when concurrency is 1 (as in v1, where one thread does both; libraries with
thread-local state, such as TensorFlow 1 graphs, rely on it).

Exit codes: 0 after a normal shutdown, :data:`BOOT_ERROR` (3, v1's) when the settings, the script's
import or init() fail, :data:`RECYCLE` when a stuck run() made the worker ask to be replaced.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import socket
import sys
import traceback
from typing import Any

from .app import ScoringApp, ServerState
from .config import ScoringSettings, SettingsError, load_settings
from .entry_script import EntryScript, load_entry_script
from .invoke import Invoker
from .logs import AccessLog, configure_logging, flush_streams, redirect_print
from .slots import RunSlots

__all__ = ["BOOT_ERROR", "INIT_DONE_MARKER", "RECYCLE", "run_worker"]

BOOT_ERROR = 3
RECYCLE = 86
# Logged (v1's line format, logger azmlinfsrv) once init() returned: get_logs(init=True) ends there.
INIT_DONE_MARKER = "modelhost: init() done, ready for requests"
_TREE_LIMIT = 200

logger = logging.getLogger("azmlinfsrv")


class _BootFailed(Exception):
    pass


def _walk(path: str, depth: int = 0) -> Any:
    path = os.path.normpath(path)
    name = os.path.basename(path.rstrip(os.sep))
    indent = " " * depth * 4
    if os.path.isdir(path):
        yield f"{indent}{name}{os.sep}"
        for child in sorted(os.listdir(path)):
            yield from _walk(os.path.join(path, child), depth + 1)
    else:
        yield f"{indent}{name}"


class Worker:
    """Owns one process's app, slots and uvicorn server."""

    def __init__(self, settings: ScoringSettings, sockets: list[socket.socket], parent_pid: int) -> None:
        self.settings = settings
        self.sockets = sockets
        self.parent_pid = parent_pid
        self.exit_code = 0
        self.state = ServerState()
        self.state.on_startup = self._on_startup
        self.state.on_shutdown = _stop_data_collection
        from .oip_v2_routes import build_v2_app

        self.app = ScoringApp(
            self.state,
            server_version=settings.server_version,
            cors_origins=settings.cors_origins,
            timeout_ms=settings.scoring_timeout_ms,
            v2_app=build_v2_app(self.state, settings),
            access_log=AccessLog(),
        )
        self.server: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._boot_task: asyncio.Task[None] | None = None

    # --- start-up ------------------------------------------------------------------------------
    def _on_startup(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        timeout = self.settings.scoring_timeout_ms / 1000.0 if self.settings.scoring_timeout_ms > 0 else None
        self.state.slots = RunSlots(
            loop, self.settings.max_concurrent_requests, timeout, self.settings.stuck_grace_s, self.recycle
        )
        self._boot_task = loop.create_task(self._boot())
        loop.call_later(1.0, self._watch_parent)

    async def _boot(self) -> None:
        slots = self.state.slots
        assert slots is not None
        result = await slots.submit_untimed(self._boot_job)
        if isinstance(result, BaseException):
            self._stop(BOOT_ERROR)
            return
        script: EntryScript = result[0]
        self.state.script = script
        self.state.invoker = Invoker(script)
        self.state.swagger = result[1]
        self.state.ready = True
        logger.info(f"Scoring timeout is set to {self.settings.scoring_timeout_ms}")
        logger.info(f"Worker with pid {os.getpid()} ready for serving traffic")
        logger.info(INIT_DONE_MARKER)

    def _boot_job(self) -> Any:
        try:
            return self._load_and_init()
        except _BootFailed as exc:
            return exc

    def _load_and_init(self) -> Any:
        """Runs on the first slot thread: v1's ``AMLInferenceBlueprint.setup``."""
        print("Initializing logger")
        redirect_print()
        logger.info("Starting up app insights client")
        if os.environ.get("AML_APP_INSIGHTS_ENABLED") == "true":
            logger.info(
                "Application Insights: the scoring server sends no telemetry itself; modelhost's router "
                "records requests for services with enable_app_insights=True (docs/telemetry.md)."
            )
        if self.settings.extra_config_keys:
            logger.warning(
                "Found extra keys in the config file that are not supported by the server.\n"
                f"Extra keys = {list(self.settings.extra_config_keys)}"
            )
        from .v1_compat import install_shims

        install_shims()
        self._extend_sys_path()
        try:
            script = load_entry_script(self.settings.entry_script_path)
        except BaseException as exc:
            self._log_load_failure()
            raise _BootFailed from exc
        self._init(script)
        from .swagger import build_swagger_docs

        try:
            docs = build_swagger_docs(
                script.run,
                app_root=self.settings.app_root,
                service_name=self.settings.service_name,
                service_version=self.settings.service_version,
                path_prefix=self.settings.service_path_prefix,
            )
        except BaseException as exc:
            logger.error(f"Encountered Exception while building the swagger: {traceback.format_exc()}")
            raise _BootFailed from exc
        return script, docs

    def _extend_sys_path(self) -> None:
        root = self.settings.app_root
        if root not in sys.path:
            sys.path.append(root)
        if self.settings.source_dir:
            source = os.path.join(root, self.settings.source_dir)
            if source not in sys.path:
                sys.path.append(source)

    def _log_load_failure(self) -> None:
        text = traceback.format_exc()
        if "No module named 'main'" in text:
            logger.error("No score script found. Expected score script main.py.")
            logger.error(f"Expected script to be found in PYTHONPATH: {sys.path}")
            root = self.settings.app_root
            if os.path.isdir(root):
                logger.error(f"Current contents of AML_APP_ROOT: {os.listdir(root)}")
            else:
                logger.error(f"The directory {root} not an accessible directory in the container.")
        elif "FileNotFoundError" in text:
            logger.error("No such file or directory.")
            logger.error(text)
        else:
            logger.error(text)

    def _init(self, script: EntryScript) -> None:
        logger.info("Invoking user's init function")
        try:
            result = script.init()
            if inspect.isawaitable(result):
                assert self.loop is not None
                asyncio.run_coroutine_threadsafe(_await(result), self.loop).result()
        except BaseException as exc:
            logger.error("User's init function failed")
            logger.error(f"Encountered Exception {traceback.format_exc()}")
            model_dir = self.settings.model_dir
            if model_dir and os.path.exists(model_dir):
                logger.info("Model Directory Contents:")
                tree = _walk(model_dir)
                for line in itertools.islice(tree, _TREE_LIMIT):
                    logger.info(line)
                if next(tree, None):
                    logger.info(f"Output Truncated. First {_TREE_LIMIT} lines shown.")
            raise _BootFailed from exc
        logger.info("Users's init has completed successfully")

    # --- lifecycle -----------------------------------------------------------------------------
    def _watch_parent(self) -> None:
        if os.getppid() != self.parent_pid:
            logger.error("The scoring supervisor process is gone; this worker stops.")
            self._stop(0)
            return
        assert self.loop is not None
        self.loop.call_later(1.0, self._watch_parent)

    def recycle(self) -> None:
        """A run() is stuck past deadline and grace: stop serving and exit; the supervisor restarts us."""
        if self.state.recycling:
            return
        logger.error(
            "Recycling this worker process: a fresh one will load the entry script and call init() again."
        )
        self.state.recycling = True
        self.state.ready = False
        if self.state.slots is not None:
            self.state.slots.close()
        self._stop(RECYCLE)

    def _stop(self, code: int) -> None:
        self.exit_code = code
        if self.server is not None:
            self.server.should_exit = True

    def serve(self) -> int:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            loop="uvloop",
            http="httptools",
            ws="none",
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            interface="asgi3",
            timeout_graceful_shutdown=max(1, int(self.settings.stuck_grace_s))
            if self.settings.stuck_grace_s
            else 1,
        )
        self.server = uvicorn.Server(config)
        self.server.run(sockets=self.sockets)
        if self.state.slots is not None:
            self.state.slots.stop()
        return self.exit_code


def _stop_data_collection() -> None:
    """Write the rows ModelDataCollector still buffers (lifespan shutdown: in-flight requests are done;
    the worker ends with os._exit or a re-raised SIGTERM, so atexit never runs)."""
    module = sys.modules.get("modelhost.scoring.data_collector")  # loaded only if the script collects
    if module is not None:
        module.shutdown()


async def _await(awaitable: Any) -> Any:
    return await awaitable


def run_worker(sockets: list[socket.socket], parent_pid: int) -> int:
    """The worker process's main: returns its exit code (the caller ``os._exit``-s with it)."""
    configure_logging()
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        logger.critical(
            "\n===============Configuration Error=================\n"
            f"{exc.key}: {exc.message} (environment variable: {exc.key})\n"
            "==================================================="
        )
        flush_streams()
        return BOOT_ERROR
    worker = Worker(settings, sockets, parent_pid)
    try:
        return worker.serve()
    finally:
        flush_streams()
