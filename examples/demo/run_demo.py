"""modelhost demo: train, register, build, deploy, score and autoscale a model the v1 way.

Run with ``make demo`` (or ``.venv/bin/python examples/demo/run_demo.py``). The SDK finds the
workspace's control plane (``MODELHOST_HOME``, default ``~/.modelhost``) or starts it in the
background, with the router. The service is deployed with v1's ``Model.deploy`` and an
``AksWebservice.deploy_configuration``, scored through the router with its key, and left running so
the printed ``try it`` and curl lines work. Running the demo again reuses what exists: the identical
model version, the built environment (a cache hit) and the healthy service.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelhost.errors import ModelhostError
from modelhost.sdk import AksWebservice, Environment, InferenceConfig, Model, Webservice, Workspace

HERE = Path(__file__).resolve().parent
MODEL_NAME = "sklearn-iris"
ENV_NAME = "sklearn-iris-env"
SERVICE_NAME = "iris-demo"
SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


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


def build_environment(ws: Workspace) -> tuple[Environment, dict[str, object]]:
    """Build the v1 conda environment through the control plane, printing its log as it streams."""
    env = Environment.from_conda_specification(ENV_NAME, HERE / "myenv.yml")
    build = env.build(ws)
    print(f"environment {env.name}:{env.version}, build operation {build.id}")
    for line in build.stream():
        print(f"  | {line}", flush=True)
    error = build.error()
    if error is not None:
        raise error
    return env, build.result or {}


def existing_service(ws: Workspace, model: Model) -> Webservice | None:
    """The demo's service if it already serves this model version and is healthy."""
    try:
        service = Webservice(ws, SERVICE_NAME)
    except ModelhostError:
        return None
    if service.state == "Healthy" and model.id in service.model_ids:
        return service
    return None


def deploy(ws: Workspace, model: Model, env: Environment) -> Webservice:
    """v1's Model.deploy with an AKS-style configuration: key auth, autoscaling 1..4 replicas."""
    service = existing_service(ws, model)
    if service is not None:
        print(f"reusing service {SERVICE_NAME}: Healthy and serving {model.id}")
        return service
    inference_config = InferenceConfig(entry_script="score.py", source_directory=str(HERE), environment=env)
    deployment_config = AksWebservice.deploy_configuration(
        autoscale_enabled=True,
        autoscale_min_replicas=1,
        autoscale_max_replicas=4,
        autoscale_target_utilization=70,
        cpu_cores=0.5,
        memory_gb=1,
    )
    service = Model.deploy(ws, SERVICE_NAME, [model], inference_config, deployment_config, overwrite=True)
    service.wait_for_deployment(show_output=True)
    return service


def burst(service: Webservice, seconds: float = 4.0, clients: int = 16) -> int:
    """Score from ``clients`` threads for ``seconds``: enough queued load for the autoscaler to act."""
    body = json.dumps(SAMPLE)
    deadline = time.monotonic() + seconds

    def client() -> int:
        served = 0
        while time.monotonic() < deadline:
            try:
                service.run(body)
                served += 1
            except ModelhostError:
                pass  # a 503 while the queue is full is the signal the autoscaler reacts to
        return served

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(lambda _: client(), range(clients)))


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
        env, result = build_environment(ws)
        how = f"cache hit ({result.get('source')})" if result.get("cache_hit") else "built"
        print(
            f"environment ready: {how} in {float(result.get('seconds', 0.0)):.2f} s, "  # type: ignore[arg-type]
            f"Python {result.get('python_version')}"
        )

        step("Checking the v1 entry script score.py against the registered model")
        smoke_test_entry_script(model, work)

    step(f"Deploying {model.id} as service {SERVICE_NAME} (Model.deploy, AksWebservice config)")
    service = deploy(ws, model, env)

    step("Scoring through the router with the service key (Webservice.run)")
    print(f"service.run({json.dumps(SAMPLE)}) -> {service.run(json.dumps(SAMPLE))}")

    step("Autoscaling: 16 concurrent clients for 4 s (target utilization 70 %, 1..4 replicas)")
    served = burst(service)
    service.update_deployment_state()
    settle = time.monotonic() + 15.0  # new replicas load the model before they join routing
    while service.ready_replicas < service.desired_replicas and time.monotonic() < settle:
        time.sleep(0.5)
        service.update_deployment_state()
    print(
        f"served {served} requests; replicas now: {service.ready_replicas} ready, "
        f"{service.desired_replicas} desired (they fall back after about a minute idle)"
    )

    # the key is not printed (terminals end up in logs and screenshots); the shell reads it instead
    curl = (
        f"curl -H \"Authorization: Bearer $(.venv/bin/modelhost service keys {SERVICE_NAME} | head -1 | "
        f"awk '{{print $NF}}')\" -H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(SAMPLE))} {service.scoring_uri}"
    )
    step(f"Done in {time.monotonic() - started:.1f} s")
    print(f"model {model.id}, environment {ENV_NAME} and service {SERVICE_NAME} are in {ws.home}")
    print(f"scoring URI: {service.scoring_uri}")
    print(f"swagger:     {service.swagger_uri}")
    body = shlex.quote(json.dumps(SAMPLE))
    print(f"try it:      .venv/bin/modelhost service run {SERVICE_NAME} --data {body}")
    print(f"with curl:   {curl}")
    print("inspect:     .venv/bin/modelhost status   /   .venv/bin/modelhost service show iris-demo")
    print("stop all:    .venv/bin/modelhost down   (the service comes back with 'modelhost up')")
    ws.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ModelhostError as exc:
        print(f"demo failed: {exc.one_line()}", file=sys.stderr)
        sys.exit(1)
