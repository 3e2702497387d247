"""Fixtures: the control plane's workspace fixtures, a tiny registered model and an app folder.

The entry script reads its model through ``AZUREML_MODEL_DIR`` and imports a sibling module, as
v1 scripts do; services inherit the control plane's interpreter (no environment build) for speed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.sdk import Model, Webservice, Workspace
from tests.e2e.control import conftest as control
from tests.e2e.control.conftest import Home

# the control plane's workspace fixtures, shared: one control plane per module, one machine cache
machine_cache = control.machine_cache
home = control.home
shared_home = control.shared_home
ws = control.ws

SCORE = """\
import json
import os

from helper import VERSION

weights = None


def init():
    global weights
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "weights.json")) as f:
        weights = json.load(f)["w"]
    print("init done, weights", weights)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    return {"version": VERSION, "sums": [sum(w * x for w, x in zip(weights, row)) for row in rows]}
"""


def write_app(folder: Path, version: int = 1, score: str = SCORE) -> Path:
    """An app folder: score.py, helper.py (VERSION) and a file .amlignore keeps out."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "score.py").write_text(score)
    (folder / "helper.py").write_text(f"VERSION = {version}\n")
    (folder / "big.bin").write_bytes(b"\0" * 1024)
    (folder / ".amlignore").write_text("big.bin\n")
    return folder


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "weights.json"
    path.write_text(json.dumps({"w": [1, 2, 3, 4]}))
    return path


@pytest.fixture
def model(ws: Workspace, model_file: Path) -> Model:
    return Model.register(ws, model_file, "weights", show_output=False)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return write_app(tmp_path / "app")


@pytest.fixture
def cleanup(ws: Workspace) -> Iterator[list[str]]:
    """Names of services to delete after the test, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(Exception):  # already gone, or the test's failure is the news
            Webservice(ws, name).delete()


__all__ = ["SCORE", "Home", "write_app"]
