"""A real router, a real LocalRuntime and the real autoscaler loop, without the control plane.

Replicas are modelhost's scoring server (current interpreter) on an entry script whose ``run()``
sleeps 50 ms and names the replica that served. :class:`RuntimeTablePublisher` publishes the
ready replicas to the router; :class:`Clients` are closed-loop HTTP clients in threads.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelhost.autoscale import AutoscaleConfig
from modelhost.control.autoscaler import AutoscalerLoop, RouterLoadSource, RuntimeTablePublisher
from modelhost.runtime.base import ProbeSettings, ServiceDeployment
from modelhost.runtime.local import LocalRuntime
from modelhost.runtime.supervision import RestartPolicy
from modelhost.types import ServiceName
from tests.support.net import free_port, wait_until

ADMIN = "admin-token"
ENTRY_SCRIPT = """\
import os
import time


def init():
    pass


def run(raw_data):
    time.sleep(0.05)
    return {"replica": os.environ["MODELHOST_REPLICA_ID"]}
"""


@dataclass
class Answer:
    started: float  # time.time()
    ended: float
    status: int
    replica: str | None
    message: str | None


@dataclass
class Clients:
    """Closed-loop clients: each thread POSTs, waits for the answer, POSTs again, until stopped."""

    url: str
    answers: list[Answer] = field(default_factory=list)
    _threads: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)

    def resize(self, n: int) -> None:
        while len(self._threads) < n:
            stop = threading.Event()
            thread = threading.Thread(target=self._run, args=(stop,), daemon=True)
            thread.start()
            self._threads.append((thread, stop))
        while len(self._threads) > n:
            thread, stop = self._threads.pop()
            stop.set()
            thread.join(60)

    def _run(self, stop: threading.Event) -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                self.answers.append(post(client, self.url))


def post(client: httpx.Client, url: str) -> Answer:
    started = time.time()
    try:
        r = client.post(url, json={"data": [1]})
    except httpx.HTTPError as exc:  # recorded, so that a test sees it, instead of ending the thread
        return Answer(started, time.time(), 0, None, repr(exc))
    body = r.json()
    if r.status_code == 200:
        return Answer(started, time.time(), 200, json.loads(body)["replica"] if isinstance(body, str)
                      else body["replica"], None)
    return Answer(started, time.time(), r.status_code, None, body.get("message"))


class Decisions(logging.Handler):
    """The loop's INFO lines (decisions that change something, stops), with their wall time."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def of(self, service: str, action: str | None = None) -> list[logging.LogRecord]:
        return [r for r in self.records if getattr(r, "service", None) == service
                and (action is None or getattr(r, "action", None) == action)]


@dataclass
class Stack:
    router_url: str
    runtime: LocalRuntime
    publisher: RuntimeTablePublisher
    loop: AutoscalerLoop
    load_source: RouterLoadSource
    configs: dict[ServiceName, AutoscaleConfig]
    decisions: Decisions

    def score_url(self, service: str) -> str:
        return f"{self.router_url}/api/v1/service/{service}/score"

    def router_load(self, service: str) -> dict[str, Any]:
        return httpx.get(f"{self.router_url}/-/load").json()["services"].get(service, {})  # type: ignore[no-any-return]

    def ready(self, service: str) -> int:
        return len(self.runtime.status(ServiceName(service)).ready)


@pytest.fixture
def entry_script(tmp_path: Path) -> Path:
    path = tmp_path / "score.py"
    path.write_text(ENTRY_SCRIPT)
    return path


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/health").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def router_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "modelhost.router", "--port", str(port),
                             "--table", str(tmp_path / "table.json"), "--admin-token", ADMIN,
                             "--access-log", "off", "--log-level", "WARNING"])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url), 30, what="router")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(tmp_path / "home", gpus=lambda: (), stop_grace_s=5.0,
                      policy=RestartPolicy(base_s=0.2, cap_s=1.0, reset_after_s=60.0, max_start_failures=3))
    try:
        yield rt
    finally:
        for st in rt.services():
            rt.delete(st.service)
        rt.close()


@pytest.fixture
def make_stack(router_url: str, runtime: LocalRuntime, entry_script: Path) -> Iterator[Callable[..., Stack]]:
    """``make_stack({name: (config, route_options)}, replicas=1)`` deploys each service and starts
    the publisher and the loop."""
    made: list[Stack] = []
    logger = logging.getLogger("modelhost.autoscaler")
    level = logger.level
    logger.setLevel(logging.INFO)

    def make(services: dict[str, tuple[AutoscaleConfig, dict[str, Any]]], replicas: int = 1) -> Stack:
        for name in services:
            runtime.deploy(ServiceDeployment(
                service=ServiceName(name), generation=1, python=Path(sys.executable),
                entry_script=str(entry_script), source_dir="src", replicas=replicas,
                probe=ProbeSettings(period_seconds=1, initial_delay_seconds=60)))
        routes = {ServiceName(n): {"auth_enabled": False, **opts} for n, (_, opts) in services.items()}
        publisher = RuntimeTablePublisher(runtime, router_url, ADMIN, routes, interval_s=0.1)
        publisher.start()
        configs = {ServiceName(n): config for n, (config, _) in services.items()}
        decisions = Decisions()
        logger.addHandler(decisions)
        load_source = RouterLoadSource(router_url)
        loop = AutoscalerLoop(runtime, load_source, publisher, lambda: configs, drain_timeout_s=30.0)
        stack = Stack(router_url, runtime, publisher, loop, load_source, configs, decisions)
        made.append(stack)
        for name in services:
            wait_until(lambda name=name: stack.router_load(name).get("replicas") == replicas, 60,  # type: ignore[misc]
                       what=f"{replicas} replica(s) of {name} routed")
        loop.start()
        return stack

    yield make
    for stack in made:
        stack.loop.stop()
        stack.publisher.stop()
        stack.load_source.close()
        logger.removeHandler(stack.decisions)
    logger.setLevel(level)
