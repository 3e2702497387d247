"""modelhost demo: train a scikit-learn model, register it and build its environment the v1 way.

Run with ``make demo`` (or ``.venv/bin/python examples/demo/run_demo.py``). The SDK finds the
workspace's control plane (``MODELHOST_HOME``, default ``~/.modelhost``) or starts it in the
background. Running the demo again reuses what exists: the identical model version and the built
environment (a cache hit).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelhost.errors import ModelhostError
from modelhost.sdk import Environment, Model, Workspace

HERE = Path(__file__).resolve().parent
MODEL_NAME = "sklearn-iris"
ENV_NAME = "sklearn-iris-env"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def train(out_dir: Path) -> Path:
    """Train a small classifier on the bundled iris data and save it with joblib."""
    iris = load_iris()
    clf = LogisticRegression(max_iter=1000, random_state=0).fit(iris.data, iris.target)
    print(
        f"trained LogisticRegression on {len(iris.data)} iris samples, "
        f"training accuracy {clf.score(iris.data, iris.target):.3f}"
    )
    path = out_dir / "sklearn_iris.pkl"
    joblib.dump(clf, path)
    return path


def register(ws: Workspace, path: Path) -> Model:
    """Register the model, or reuse the version that holds exactly these bytes."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    same = Model.list(ws, name=MODEL_NAME, properties=[["sha256", digest]])
    if same:
        print(f"reusing model {same[0].id}: identical content already registered")
        return same[0]
    model = Model.register(
        ws,
        model_path=path,
        model_name=MODEL_NAME,
        tags={"data": "iris", "demo": "true"},
        properties={"sha256": digest},
        description="Iris classifier from the modelhost demo",
        model_framework=Model.Framework.SCIKITLEARN,
        model_framework_version=_sklearn_version(),
    )
    print(f"registered model {model.id} ({model.size} bytes)")
    return model


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def build_environment(ws: Workspace) -> dict[str, object]:
    """Build the v1 conda environment through the control plane, printing its log as it streams."""
    env = Environment.from_conda_specification(ENV_NAME, HERE / "myenv.yml")
    build = env.build(ws)
    print(f"environment {env.name}:{env.version}, build operation {build.id}")
    for line in build.stream():
        print(f"  | {line}", flush=True)
    error = build.error()
    if error is not None:
        raise error
    return build.result or {}


def smoke_test_entry_script(model: Model, work: Path) -> None:
    """Run score.py's init() and run() here against the model as downloaded from the control plane."""
    model_dir = work / "azureml-models" / model.name / str(model.version)
    model.download(model_dir, exist_ok=True)
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    spec = importlib.util.spec_from_file_location("demo_score", HERE / "score.py")
    assert spec is not None and spec.loader is not None
    score = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(score)
    score.init()
    sample = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    print(f"score.run({sample.tolist()}) -> {score.run(sample)}  (0 = setosa, 2 = virginica)")


def main() -> int:
    started = time.monotonic()
    step("Connecting to the workspace (the control plane starts in the background if needed)")
    ws = Workspace.from_config()
    print(f"workspace {ws.name} at {ws.home}, control plane {ws.url}")

    with tempfile.TemporaryDirectory(prefix="modelhost-demo-") as tmp:
        work = Path(tmp)
        step("Training a scikit-learn model")
        path = train(work)

        step("Registering the model (only blobs the workspace lacks are uploaded)")
        model = register(ws, path)

        step(f"Building the environment from {HERE / 'myenv.yml'} (v1 conda file)")
        result = build_environment(ws)
        how = f"cache hit ({result.get('source')})" if result.get("cache_hit") else "built"
        print(
            f"environment ready: {how} in {float(result.get('seconds', 0.0)):.2f} s, "  # type: ignore[arg-type]
            f"Python {result.get('python_version')}"
        )

        step("Checking the v1 entry script score.py against the registered model")
        smoke_test_entry_script(model, work)

    step(f"Done in {time.monotonic() - started:.1f} s")
    print(f"model {model.id} and environment {ENV_NAME} are in the workspace {ws.home}")
    print("list them:   .venv/bin/modelhost model list   /   .venv/bin/modelhost env list")
    print("the control plane keeps running; stop it with:   .venv/bin/modelhost down")
    ws.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ModelhostError as exc:
        print(f"demo failed: {exc.one_line()}", file=sys.stderr)
        sys.exit(1)
