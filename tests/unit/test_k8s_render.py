"""The Kubernetes renderer (modelhost.runtime.k8s_render): every option, validated against the official
schemas of every claimed Kubernetes version (kubernetes-validate, strict), plus the values that matter."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

import modelhost
import modelhost.runtime.k8s_render as k8s_render
from modelhost.errors import ValidationError
from modelhost.runtime import k8s_names as names
from modelhost.runtime.base import ModelFileSpec, ModelSpec, ProbeSettings, Resources, ServiceDeployment
from modelhost.runtime.k8s_render import (
    KUBERNETES_VERSIONS,
    BuildOptions,
    K8sObject,
    K8sOptions,
    ServiceKeys,
    cpu_quantity,
    fetch_manifest,
    fetch_manifest_digest,
    memory_quantity,
    render_build,
    render_deployment,
    render_fetch_token_secret,
    render_scale,
    render_service,
)

ENV_HASH = "e" * 64
SNAPSHOT = "5" * 64
UID = "0b0c5d5e-1111-4222-8333-944455556666"
KEYS = ServiceKeys(primary="pk-Zq8s1-primary-secret", secondary="sk-Vt3w9-secondary-secret")
OPTIONS = K8sOptions(
    namespace="ml-serving", registry="registry.example.com/ml", artifact_url="http://modelhost.ml:8080"
)


def _blob(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


ONE_MODEL = (ModelSpec("sklearn-mnist", 3, (ModelFileSpec("model.pkl", sha256=_blob(1)),)),)
MANY_MODELS = (
    ModelSpec(
        "encoder",
        1,
        (
            ModelFileSpec("enc/weights.bin", sha256=_blob(2)),
            ModelFileSpec("enc/config.json", sha256=_blob(3)),
        ),
    ),
    ModelSpec("decoder", 7, (ModelFileSpec("dec.onnx", sha256=_blob(4), executable=True),)),
)


def _deployment(**changes: Any) -> ServiceDeployment:
    base = ServiceDeployment(
        service="svc-one",  # type: ignore[arg-type]
        generation=1,
        python=Path("/unused/on/kubernetes"),
        entry_script="score.py",
        source_dir="src",
        snapshot=Path("/snapshots/x.zip"),
        models=ONE_MODEL,
    )
    return replace(base, **changes)


RICH_OPTIONS = replace(
    OPTIONS,
    registry_secret="regcred",
    registry_insecure=True,
    image_pull_policy="Always",
    image_pull_secrets=("mirror-cred",),
    extra_labels={"team": "fraud", "example.com/cost-center": "cc-42"},
    service_account="modelhost-replica",
    node_selector={"kubernetes.io/os": "linux"},
    tolerations=({"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},),
    fetch_image="registry.example.com/ml/modelhost-fetch:0.1",
    app_volume_size_limit_gb=20,
    replica_timeout_margin_ms=2_000,
    prestop_delay_s=3,
)

# (id, deployment, options, render_service keyword arguments)
CASES: list[tuple[str, ServiceDeployment, K8sOptions, dict[str, Any]]] = [
    ("single-model", _deployment(), OPTIONS, {}),
    ("many-models", _deployment(models=MANY_MODELS), OPTIONS, {}),
    ("no-models", _deployment(models=()), OPTIONS, {}),
    ("requests-only", _deployment(resources=Resources(cpu_cores=0.25, memory_gb=1.5)), OPTIONS, {}),
    (
        "with-limits",
        _deployment(resources=Resources(0.5, 1.0, 0, cpu_cores_limit=2.0, memory_gb_limit=4.0)),
        OPTIONS,
        {},
    ),
    ("gpu", _deployment(resources=Resources(cpu_cores=4, memory_gb=16, gpu_cores=2)), OPTIONS, {}),
    ("probes-customised", _deployment(probe=ProbeSettings(5, 30, 4, 2, 6)), OPTIONS, {}),
    (
        "timeout-and-concurrency",
        _deployment(scoring_timeout_ms=300_000, max_concurrent_requests=8),
        OPTIONS,
        {},
    ),
    ("fixed-replicas", _deployment(replicas=3), OPTIONS, {"manage_replicas": True}),
    ("generation-2", _deployment(generation=2), OPTIONS, {}),
    ("no-owner-yet", _deployment(), OPTIONS, {"owner_uid": None}),
    ("no-keys", _deployment(), OPTIONS, {"keys": None}),
    ("lone-script", _deployment(snapshot=None, entry_script="/home/me/proj/score.py"), OPTIONS, {}),
    (
        "user-env",
        _deployment(env={"MY_FLAG": "1", "TEMPLATE": "$(NOT_A_VAR)", "AZUREML_MODEL_DIR": "/x"}),
        OPTIONS,
        {},
    ),
    ("rich-options", _deployment(resources=Resources(1, 2, 1)), RICH_OPTIONS, {}),
]
CASE_IDS = [c[0] for c in CASES]


def _render(case: tuple[str, ServiceDeployment, K8sOptions, dict[str, Any]]) -> list[K8sObject]:
    _, deployment, options, kwargs = case
    kwargs = {"keys": KEYS, "owner_uid": UID, **kwargs}
    return render_service(deployment, options, environment=ENV_HASH, snapshot=SNAPSHOT, **kwargs)


def _case(case_id: str) -> tuple[str, ServiceDeployment, K8sOptions, dict[str, Any]]:
    return CASES[CASE_IDS.index(case_id)]


def _by_kind(objects: list[K8sObject]) -> dict[str, K8sObject]:
    return {o["kind"]: o for o in objects}


def _pod(objects: list[K8sObject]) -> K8sObject:
    spec: K8sObject = _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    return spec


def _container(objects: list[K8sObject], name: str = "scoring") -> K8sObject:
    pod = _pod(objects)
    found: K8sObject = next(c for c in pod["containers"] + pod["initContainers"] if c["name"] == name)
    return found


def _env(container: K8sObject) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _validate(obj: K8sObject, version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


# ---------------------------------------------------------------------------------------------
# the official schemas


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_service_objects_validate(
    case: tuple[str, ServiceDeployment, K8sOptions, dict[str, Any]], version: str
) -> None:
    objects = _render(case)
    for obj in objects:
        _validate(obj, version)


BUILDS = {
    "kaniko": (OPTIONS, BuildOptions(builder="kaniko")),
    "buildkit": (OPTIONS, BuildOptions(builder="buildkit")),
    "kaniko-registry-secret": (RICH_OPTIONS, BuildOptions(builder="kaniko", python="3.12")),
    "buildkit-registry-secret": (
        RICH_OPTIONS,
        BuildOptions(builder="buildkit", base_image="python:3.10-bookworm"),
    ),
}
REQUIREMENTS = (
    "numpy==1.26.4",
    "scikit-learn>=1.4",
    "pandas ; python_version >= '3.9'",
    'pkg @ https://x/p"q.whl',
)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("build", list(BUILDS), ids=list(BUILDS))
def test_build_objects_validate(build: str, version: str) -> None:
    options, build_options = BUILDS[build]
    for obj in render_build(ENV_HASH, REQUIREMENTS, options, build_options):
        _validate(obj, version)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_scale_and_token_secret_validate(version: str) -> None:
    _validate(render_scale("svc-one-g1", "ml-serving", 4), version)
    _validate(render_fetch_token_secret("tok", RICH_OPTIONS), version)


def test_the_schema_oracle_is_strict() -> None:
    """Guards the tests above: an unknown field must fail, or they would prove nothing."""
    deployment = copy.deepcopy(_by_kind(_render(CASES[0]))["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment, KUBERNETES_VERSIONS[-1])


def test_claimed_versions_are_shipped_by_kubernetes_validate() -> None:
    shipped = {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}
    assert set(KUBERNETES_VERSIONS) <= shipped
    assert list(KUBERNETES_VERSIONS) == sorted(
        KUBERNETES_VERSIONS, key=lambda v: tuple(map(int, v.split(".")))
    )


# ---------------------------------------------------------------------------------------------
# purity, order, ownership, labels


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_rendering_is_pure(case: tuple[str, ServiceDeployment, K8sOptions, dict[str, Any]]) -> None:
    before = copy.deepcopy(case)
    first, second = _render(case), _render(case)
    assert first == second
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert case == before


def test_objects_come_in_apply_order() -> None:
    assert [o["kind"] for o in _render(CASES[0])] == ["ConfigMap", "Secret", "Service", "Deployment"]
    assert [o["kind"] for o in _render(_case("no-keys"))] == ["ConfigMap", "Service", "Deployment"]


def test_names() -> None:
    kinds = _by_kind(_render(CASES[0]))
    assert kinds["ConfigMap"]["metadata"]["name"] == "modelhost-svc-svc-one"
    assert kinds["Secret"]["metadata"]["name"] == "modelhost-keys-svc-one"
    assert kinds["Service"]["metadata"]["name"] == "modelhost-svc-one"
    assert kinds["Deployment"]["metadata"]["name"] == "svc-one-g1"
    assert _by_kind(_render(_case("generation-2")))["Deployment"]["metadata"]["name"] == "svc-one-g2"
    assert {o["metadata"]["namespace"] for o in kinds.values()} == {"ml-serving"}


def test_longest_names_fit() -> None:
    service = "a" * 32
    long_gen = 10**28
    assert len(names.deployment_name(service, long_gen)) <= 63
    objects = render_service(
        _deployment(service=service, generation=long_gen),
        OPTIONS,
        environment=ENV_HASH,
        snapshot=SNAPSHOT,
        keys=KEYS,
        owner_uid=UID,
    )
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63
        _validate(obj, KUBERNETES_VERSIONS[-1])


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("svc-one-g1", ("svc-one", 1)),
        ("foo-g1-g12", ("foo-g1", 12)),
        ("abc-g0", ("abc", 0)),
        ("svc-one", None),
        ("svc-one-g01", None),
        ("svc-one-g1-7d9f8-xk2p", None),
        ("Svc-g1", None),
    ],
)
def test_parse_deployment_name(name: str, parsed: tuple[str, int] | None) -> None:
    assert names.parse_deployment_name(name) == parsed


def test_owner_references_point_at_the_anchor() -> None:
    objects = _render(CASES[0])
    anchor, *owned = objects
    assert "ownerReferences" not in anchor["metadata"]
    assert len(owned) == 3
    for obj in owned:
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": anchor["metadata"]["name"],
            "uid": UID,
            "blockOwnerDeletion": True,
        }
    for obj in _render(_case("no-owner-yet")):
        assert "ownerReferences" not in obj["metadata"]


def _all_labels(obj: Any) -> Iterator[tuple[str, str]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if (
                key in ("labels", "matchLabels", "selector", "nodeSelector")
                and isinstance(value, dict)
                and all(isinstance(v, str) for v in value.values())
            ):
                yield from value.items()
            else:
                yield from _all_labels(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _all_labels(item)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_labels_are_valid_and_ours(case: tuple[str, ServiceDeployment, K8sOptions, dict[str, Any]]) -> None:
    objects = _render(case)
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels[names.LABEL_MANAGED_BY] == "modelhost"
        assert labels[names.LABEL_SERVICE] == case[1].service
        for key, value in case[2].extra_labels.items():
            assert labels[key] == value
    for key, value in _all_labels(objects):
        names.validate_labels({key: value})  # raises on a key or value Kubernetes refuses


def test_selectors_select_the_pods() -> None:
    gen1 = _by_kind(_render(CASES[0]))
    gen2 = _by_kind(_render(_case("generation-2")))
    service_selector = gen1["Service"]["spec"]["selector"]
    assert service_selector == gen2["Service"]["spec"]["selector"]
    assert names.LABEL_GENERATION not in service_selector
    for kinds, generation in ((gen1, "1"), (gen2, "2")):
        deployment = kinds["Deployment"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service_selector.items() <= pod_labels.items()  # the Service finds every generation
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert pod_labels[names.LABEL_GENERATION] == generation
        assert pod_labels["app.kubernetes.io/name"] == "modelhost-replica"
    # a generation's Deployment never adopts the other's pods
    assert not (
        gen1["Deployment"]["spec"]["selector"]["matchLabels"].items()
        <= gen2["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    )
    spread = _pod(_render(CASES[0]))["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
    assert spread == gen1["Deployment"]["spec"]["selector"]["matchLabels"]


def test_extra_labels_never_reach_selectors_or_override_ours() -> None:
    options = replace(OPTIONS, extra_labels={"team": "fraud", names.LABEL_MANAGED_BY: "someone-else"})
    kinds = _by_kind(render_service(_deployment(), options, environment=ENV_HASH, snapshot=SNAPSHOT))
    assert kinds["Deployment"]["metadata"]["labels"][names.LABEL_MANAGED_BY] == "modelhost"
    assert kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]["team"] == "fraud"
    assert "team" not in kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert "team" not in kinds["Service"]["spec"]["selector"]


# ---------------------------------------------------------------------------------------------
# replicas: the scale subresource owns them


def test_no_replicas_when_the_autoscaler_owns_them() -> None:
    for case in CASES:
        spec = _by_kind(_render(case))["Deployment"]["spec"]
        if case[3].get("manage_replicas"):
            assert spec["replicas"] == case[1].replicas == 3
        else:
            assert "replicas" not in spec


def test_scale_body() -> None:
    assert render_scale("svc-one-g2", "ml-serving", 5) == {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "svc-one-g2", "namespace": "ml-serving"},
        "spec": {"replicas": 5},
    }
    assert render_scale("svc-one-g2", "ml-serving", 0)["spec"] == {"replicas": 0}
    for bad in (-1, True, 1.5):
        with pytest.raises(ValidationError, match="replicas"):
            render_scale("svc-one-g2", "ml-serving", bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# resources


@pytest.mark.parametrize(
    ("cores", "quantity"),
    [
        (0.1, "100m"),
        (0.25, "250m"),
        (1, "1"),
        (1.0, "1"),
        (1.5, "1500m"),
        (2, "2"),
        (0.0001, "1m"),
        (0.3, "300m"),
    ],
)
def test_cpu_quantity(cores: float, quantity: str) -> None:
    assert cpu_quantity(cores) == quantity


@pytest.mark.parametrize(
    ("gb", "quantity"),
    [
        (0.5, "512Mi"),
        (1, "1Gi"),
        (1.5, "1536Mi"),
        (0.1, "103Mi"),
        (16, "16Gi"),
        (1024, "1Ti"),
        (0.001, "2Mi"),
    ],
)
def test_memory_quantity_is_gib(gb: float, quantity: str) -> None:
    assert memory_quantity(gb) == quantity


@pytest.mark.parametrize("bad", [0, -1, float("nan"), True])
def test_quantities_refuse_non_positive(bad: float) -> None:
    with pytest.raises(ValidationError):
        cpu_quantity(bad)
    with pytest.raises(ValidationError):
        memory_quantity(bad)


@pytest.mark.parametrize(
    ("case_id", "resources"),
    [
        ("single-model", {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}),
        ("requests-only", {"requests": {"cpu": "250m", "memory": "1536Mi"}, "limits": {"memory": "1536Mi"}}),
        (
            "with-limits",
            {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
        ),
        (
            "gpu",
            {
                "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
                "limits": {"memory": "16Gi", "nvidia.com/gpu": "2"},
            },
        ),
    ],
)
def test_resources(case_id: str, resources: K8sObject) -> None:
    objects = _render(_case(case_id))
    assert _container(objects)["resources"] == resources
    fetch = _container(objects, "fetch")["resources"]
    assert all("nvidia.com/gpu" not in part for part in fetch.values())  # fetching needs no GPU


def test_gpu_replicas_tolerate_gpu_nodes_and_see_their_gpus() -> None:
    gpu = _render(_case("gpu"))
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in _pod(gpu)["tolerations"]
    assert "CUDA_VISIBLE_DEVICES" not in _env(_container(gpu))  # the device plugin decides
    cpu = _render(CASES[0])
    assert "tolerations" not in _pod(cpu)
    assert _env(_container(cpu))["CUDA_VISIBLE_DEVICES"] == ""


def test_gpu_resource_name_is_an_option() -> None:
    options = replace(OPTIONS, gpu_resource="amd.com/gpu")
    objects = render_service(
        _deployment(resources=Resources(1, 2, 1)), options, environment=ENV_HASH, snapshot=SNAPSHOT
    )
    assert _container(objects)["resources"]["limits"]["amd.com/gpu"] == "1"
    _validate(_by_kind(objects)["Deployment"], KUBERNETES_VERSIONS[0])


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (Resources(1.0, 1.0, cpu_cores_limit=0.5), "cpu_cores_limit=0.5 is below cpu_cores=1"),
        (Resources(1.0, 2.0, memory_gb_limit=1.0), "memory_gb_limit=1 is below memory_gb=2"),
        (Resources(0, 1.0), "cpu_cores=0"),
        (Resources(1.0, 1.0, gpu_cores=-1), "gpu_cores=-1"),
    ],
)
def test_bad_resources_are_refused(resources: Resources, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        render_deployment(_deployment(resources=resources), OPTIONS, environment=ENV_HASH, snapshot=SNAPSHOT)


# ---------------------------------------------------------------------------------------------
# the scoring container: command, env, probes, timeouts


def test_scoring_command_and_image() -> None:
    scoring = _container(_render(CASES[0]))
    assert scoring["image"] == f"registry.example.com/ml/modelhost-env:{ENV_HASH}"
    assert scoring["command"] + scoring["args"] == [
        "python",
        "-m",
        "modelhost.scoring",
        "--entry_script",
        "/var/azureml-app/src/score.py",
        "--model_dir",
        "/var/azureml-app/azureml-models/sklearn-mnist/3",
        "--port",
        "5001",
        "--host",
        "$(POD_IP)",  # Kubernetes expands it: the pod's IP (env POD_IP from status.podIP)
    ]
    assert scoring["ports"] == [{"name": "http", "containerPort": 5001, "protocol": "TCP"}]
    assert scoring["workingDir"] == "/var/azureml-app"
    assert scoring["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize(
    ("case_id", "model_dir"),
    [
        ("single-model", "/var/azureml-app/azureml-models/sklearn-mnist/3"),
        ("many-models", "/var/azureml-app/azureml-models"),
        ("no-models", "/var/azureml-app/azureml-models"),
    ],
)
def test_v1_model_dir_rule(case_id: str, model_dir: str) -> None:
    scoring = _container(_render(_case(case_id)))
    assert _env(scoring)["AZUREML_MODEL_DIR"] == model_dir
    assert scoring["args"][scoring["args"].index("--model_dir") + 1] == model_dir


def test_scoring_env() -> None:
    env = _env(_container(_render(CASES[0])))
    assert env["AML_APP_ROOT"] == "/var/azureml-app"
    assert env["AZUREML_ENTRY_SCRIPT"] == "src/score.py"
    assert env["AZUREML_SOURCE_DIRECTORY"] == "src"
    assert env["SCORING_TIMEOUT_MS"] == "65000"  # router's 60 s + 5 s: the router's 504 wins
    assert env["MODELHOST_MAX_CONCURRENT_REQUESTS"] == "1"
    assert env["SERVICE_NAME"] == "svc-one"
    assert env["MODELHOST_REPLICA_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    tuned = _env(_container(_render(_case("timeout-and-concurrency"))))
    assert tuned["SCORING_TIMEOUT_MS"] == "305000"
    assert tuned["MODELHOST_MAX_CONCURRENT_REQUESTS"] == "8"


def test_user_env_is_kept_literal_and_cannot_move_modelhost_paths() -> None:
    container = _container(_render(_case("user-env")))
    names_in_order = [e["name"] for e in container["env"]]
    assert len(names_in_order) == len(set(names_in_order))  # server-side apply refuses duplicate keys
    env = _env(container)
    assert env["MY_FLAG"] == "1"
    assert env["TEMPLATE"] == "$$(NOT_A_VAR)"  # Kubernetes turns $$( back into a literal $(
    assert env["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models/sklearn-mnist/3"


def test_lone_script_lands_in_source_dir() -> None:
    scoring = _container(_render(_case("lone-script")))
    assert _env(scoring)["AZUREML_ENTRY_SCRIPT"] == "src/score.py"
    assert scoring["args"][1] == "/var/azureml-app/src/score.py"


@pytest.mark.parametrize("case_id", ["single-model", "probes-customised"])
def test_probes(case_id: str) -> None:
    probe = _case(case_id)[1].probe
    scoring = _container(_render(_case(case_id)))
    live, ready = scoring["livenessProbe"], scoring["readinessProbe"]
    get = {"path": "/", "port": 5001, "scheme": "HTTP"}
    assert live == {
        "httpGet": get,
        "initialDelaySeconds": probe.initial_delay_seconds,
        "periodSeconds": probe.period_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "successThreshold": 1,
        "failureThreshold": probe.failure_threshold,
    }
    assert ready["httpGet"] == get
    assert ready["initialDelaySeconds"] <= 1 and ready["periodSeconds"] == 1
    assert ready["successThreshold"] == probe.success_threshold
    assert ready["timeoutSeconds"] == probe.timeout_seconds


def test_v1_probe_defaults() -> None:
    live = _container(_render(CASES[0]))["livenessProbe"]
    assert (
        live["initialDelaySeconds"],
        live["periodSeconds"],
        live["timeoutSeconds"],
        live["failureThreshold"],
    ) == (310, 10, 2, 3)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_draining_outlasts_the_longest_request(
    case: tuple[str, ServiceDeployment, K8sOptions, dict[str, Any]],
) -> None:
    objects = _render(case)
    pod, scoring = _pod(objects), _container(objects)
    replica_timeout_s = int(_env(scoring)["SCORING_TIMEOUT_MS"]) / 1000
    assert replica_timeout_s > case[1].scoring_timeout_ms / 1000
    prestop = case[2].prestop_delay_s
    assert pod["terminationGracePeriodSeconds"] >= prestop + replica_timeout_s
    assert f"time.sleep({prestop})" in scoring["lifecycle"]["preStop"]["exec"]["command"][-1]


def test_rollout_settings() -> None:
    spec = _by_kind(_render(CASES[0]))["Deployment"]["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert spec["progressDeadlineSeconds"] == 300 + 310 + 3 * 10
    custom = _by_kind(_render(_case("probes-customised")))["Deployment"]["spec"]
    assert custom["progressDeadlineSeconds"] == 300 + 30 + 6 * 5


def test_pod_meets_the_restricted_profile() -> None:
    pod = _pod(_render(CASES[0]))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"] + pod["initContainers"]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }


def test_rich_options_reach_the_pod() -> None:
    objects = _render(_case("rich-options"))
    pod = _pod(objects)
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}]
    assert pod["serviceAccountName"] == "modelhost-replica"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["tolerations"][1]["key"] == "nvidia.com/gpu"
    assert {"name": "app", "emptyDir": {"sizeLimit": "20Gi"}} in pod["volumes"]
    assert _container(objects, "fetch")["image"] == "registry.example.com/ml/modelhost-fetch:0.1"
    assert _container(objects)["imagePullPolicy"] == "Always"
    assert _env(_container(objects))["SCORING_TIMEOUT_MS"] == "62000"


# ---------------------------------------------------------------------------------------------
# keys: only in the Secret


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_keys_only_in_the_secret(case: tuple[str, ServiceDeployment, K8sOptions, dict[str, Any]]) -> None:
    objects = _render(case)
    secrets = [o for o in objects if o["kind"] == "Secret"]
    others = json.dumps([o for o in objects if o["kind"] != "Secret"])
    for key in (KEYS.primary, KEYS.secondary):
        assert key not in others
        assert base64.b64encode(key.encode()).decode() not in others
    if case[3].get("keys", KEYS) is None:
        assert secrets == []
        return
    (secret,) = secrets
    assert "stringData" not in secret
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "primaryKey": KEYS.primary,
        "secondaryKey": KEYS.secondary,
    }
    assert secret["type"] == "Opaque"


def test_the_fetch_token_reaches_only_the_init_container() -> None:
    objects = _render(CASES[0])
    pod = _pod(objects)
    token_volume = next(v for v in pod["volumes"] if v["name"] == "fetch-token")
    assert token_volume["secret"]["secretName"] == "modelhost-fetch-token"
    assert all(m["name"] != "fetch-token" for m in _container(objects)["volumeMounts"])
    assert {
        "name": "fetch-token",
        "mountPath": "/var/run/secrets/modelhost/fetch",
        "readOnly": True,
    } in _container(objects, "fetch")["volumeMounts"]
    secret = render_fetch_token_secret("t0ken", OPTIONS)
    assert secret["metadata"]["name"] == "modelhost-fetch-token"
    assert base64.b64decode(secret["data"]["token"]) == b"t0ken"
    assert "ownerReferences" not in secret["metadata"]


# ---------------------------------------------------------------------------------------------
# the init container and its fetch manifest


def test_init_container_fetches_by_manifest_digest() -> None:
    objects = _render(CASES[0])
    deployment = _deployment()
    digest = hashlib.sha256(fetch_manifest(deployment, SNAPSHOT)).hexdigest()
    assert digest == fetch_manifest_digest(deployment, SNAPSHOT)
    fetch = _container(objects, "fetch")
    assert fetch["command"] + fetch["args"] == [
        "python",
        "-m",
        "modelhost.runtime.fetch",
        "--artifact-url",
        "http://modelhost.ml:8080",
        "--manifest",
        digest,
        "--token-file",
        "/var/run/secrets/modelhost/fetch/token",
        "--app-root",
        "/var/azureml-app",
    ]
    assert fetch["image"] == _container(objects)["image"]
    assert {"name": "app", "mountPath": "/var/azureml-app"} in fetch["volumeMounts"]
    assert {"name": "app", "mountPath": "/var/azureml-app"} in _container(objects)["volumeMounts"]
    annotations = _by_kind(objects)["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "modelhost.io/environment": ENV_HASH,
        "modelhost.io/fetch-manifest": digest,
        "modelhost.io/snapshot": SNAPSHOT,
    }


def test_fetch_manifest_content() -> None:
    doc = json.loads(fetch_manifest(_deployment(models=MANY_MODELS), SNAPSHOT))
    assert doc == {
        "format": 1,
        "source_dir": "src",
        "snapshot": SNAPSHOT,
        "models": [
            {
                "name": "encoder",
                "version": 1,
                "files": [
                    {"path": "enc/weights.bin", "sha256": _blob(2), "executable": False},
                    {"path": "enc/config.json", "sha256": _blob(3), "executable": False},
                ],
            },
            {
                "name": "decoder",
                "version": 7,
                "files": [{"path": "dec.onnx", "sha256": _blob(4), "executable": True}],
            },
        ],
    }


def test_new_content_rolls_the_pods() -> None:
    """The pod template changes exactly when what the replica runs changes."""

    def template(d: ServiceDeployment, env_hash: str = ENV_HASH, snapshot: str = SNAPSHOT) -> K8sObject:
        rendered = render_deployment(d, OPTIONS, environment=env_hash, snapshot=snapshot)
        result: K8sObject = rendered["spec"]["template"]
        return result

    base = template(_deployment())
    assert template(_deployment()) == base
    new_blob = (ModelSpec("sklearn-mnist", 3, (ModelFileSpec("model.pkl", sha256=_blob(9)),)),)
    assert template(_deployment(models=new_blob)) != base
    assert template(_deployment(), snapshot="6" * 64) != base
    assert template(_deployment(), env_hash="f" * 64) != base


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ((ModelSpec("m", 1, (ModelFileSpec("model.pkl", source=Path("/tmp/model.pkl")),)),), "has no sha256"),
        ((ModelSpec("m", 1, (ModelFileSpec("model.pkl", sha256="ABC"),)),), "is not a sha256 digest"),
        ((ModelSpec("m", 1, (ModelFileSpec("../escape", sha256=_blob(1)),)),), "is not a relative path"),
        ((ModelSpec("a/b", 1, ()),), "invalid name or version"),
    ],
)
def test_bad_models_are_refused(models: tuple[ModelSpec, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        render_deployment(_deployment(models=models), OPTIONS, environment=ENV_HASH, snapshot=SNAPSHOT)


# ---------------------------------------------------------------------------------------------
# refusals that name the problem


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: render_deployment(
                _deployment(),
                replace(OPTIONS, namespace="ML_Serving"),
                environment=ENV_HASH,
                snapshot=SNAPSHOT,
            ),
            "namespace 'ML_Serving'",
        ),
        (
            lambda: render_deployment(_deployment(), OPTIONS, environment="latest", snapshot=SNAPSHOT),
            "environment hash 'latest'",
        ),
        (
            lambda: render_deployment(_deployment(), OPTIONS, environment=ENV_HASH, snapshot="x"),
            "snapshot digest",
        ),
        (
            lambda: render_deployment(
                _deployment(),
                replace(OPTIONS, registry="https://reg/"),
                environment=ENV_HASH,
                snapshot=SNAPSHOT,
            ),
            "image registry",
        ),
        (
            lambda: render_deployment(
                _deployment(),
                replace(OPTIONS, artifact_url="modelhost:8080"),
                environment=ENV_HASH,
                snapshot=SNAPSHOT,
            ),
            "artifact URL",
        ),
        (
            lambda: render_deployment(
                _deployment(),
                replace(OPTIONS, extra_labels={"team": "a b"}),
                environment=ENV_HASH,
                snapshot=SNAPSHOT,
            ),
            "label team=",
        ),
        (
            lambda: render_deployment(
                _deployment(service="Bad_Name"), OPTIONS, environment=ENV_HASH, snapshot=SNAPSHOT
            ),
            "service name",
        ),
        (
            lambda: render_deployment(
                _deployment(generation=-1), OPTIONS, environment=ENV_HASH, snapshot=SNAPSHOT
            ),
            "generation -1",
        ),
        (
            lambda: render_deployment(
                _deployment(entry_script="../score.py"), OPTIONS, environment=ENV_HASH, snapshot=SNAPSHOT
            ),
            "entry_script",
        ),
        (
            lambda: render_deployment(
                _deployment(probe=ProbeSettings(period_seconds=0)),
                OPTIONS,
                environment=ENV_HASH,
                snapshot=SNAPSHOT,
            ),
            "period_seconds=0",
        ),
        (
            lambda: render_service(
                _deployment(), OPTIONS, environment=ENV_HASH, snapshot=SNAPSHOT, keys=ServiceKeys("", "x")
            ),
            "primary key",
        ),
        (
            lambda: render_fetch_token_secret("t", replace(OPTIONS, fetch_token_key="a/b")),
            "secret key 'a/b'",
        ),
        (lambda: render_build(ENV_HASH, ["--index-url=https://evil"], OPTIONS), "requirement"),
        (
            lambda: render_build(ENV_HASH, ["numpy"], OPTIONS, BuildOptions(builder="docker")),  # type: ignore[arg-type]
            "builder 'docker'",
        ),
    ],
    ids=[
        "namespace",
        "env-hash",
        "snapshot",
        "registry",
        "artifact-url",
        "label",
        "service",
        "generation",
        "entry-script",
        "probe",
        "empty-key",
        "token-key",
        "pip-option",
        "builder",
    ],
)
def test_refusals(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        call()
    assert info.value.hint


# ---------------------------------------------------------------------------------------------
# the build Job


def test_kaniko_build() -> None:
    context, job = render_build(ENV_HASH, REQUIREMENTS, OPTIONS, BuildOptions(builder="kaniko"))
    assert context["kind"] == "ConfigMap" and job["kind"] == "Job"
    name = f"modelhost-build-{ENV_HASH[:16]}"
    assert context["metadata"]["name"] == job["metadata"]["name"] == name
    dockerfile = context["data"]["Dockerfile"]
    assert "FROM python:3.11-slim\n" in dockerfile
    install = next(line for line in dockerfile.splitlines() if "pip" in line)
    assert json.loads(install.removeprefix("RUN ")) == [
        "/opt/modelhost-env/bin/python",
        "-m",
        "pip",
        "install",
        "--no-cache-dir",
        "--disable-pip-version-check",
        f"modelhost=={modelhost.__version__}",
        *REQUIREMENTS,
    ]
    assert "COPY" not in dockerfile
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("gcr.io/kaniko-project/executor:")
    assert f"--destination=registry.example.com/ml/modelhost-env:{ENV_HASH}" in container["args"]
    assert "--digest-file=/dev/termination-log" in container["args"]
    assert {"name": "context", "configMap": {"name": name}} in pod["volumes"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    assert job["metadata"]["annotations"]["modelhost.io/environment"] == ENV_HASH


def test_buildkit_build_with_registry_credentials() -> None:
    _, job = render_build(ENV_HASH, REQUIREMENTS, RICH_OPTIONS, BuildOptions(builder="buildkit"))
    template = job["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["command"] == ["buildctl-daemonless.sh"]
    output = container["args"][container["args"].index("--output") + 1]
    image = f"registry.example.com/ml/modelhost-env:{ENV_HASH}"
    assert output == f"type=image,name={image},push=true,registry.insecure=true"
    assert container["securityContext"]["runAsUser"] == 1000
    assert template["metadata"]["annotations"] == {
        "container.apparmor.security.beta.kubernetes.io/build": "unconfined"
    }
    assert {"name": "BUILDKITD_FLAGS", "value": "--oci-worker-no-process-sandbox"} in container["env"]
    registry = next(v for v in template["spec"]["volumes"] if v["name"] == "registry")
    assert registry["secret"] == {
        "secretName": "regcred",
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
    }
    assert {"name": "registry", "mountPath": "/home/user/.docker", "readOnly": True} in container[
        "volumeMounts"
    ]


def test_kaniko_registry_credentials_and_base_image() -> None:
    context, job = render_build(ENV_HASH, ["numpy"], RICH_OPTIONS, BuildOptions(python="3.12"))
    assert "FROM python:3.12-slim\n" in context["data"]["Dockerfile"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "--insecure" in container["args"]
    assert {"name": "registry", "mountPath": "/kaniko/.docker", "readOnly": True} in container["volumeMounts"]
    assert job["metadata"]["labels"]["team"] == "fraud"


# ---------------------------------------------------------------------------------------------
# the public surface


def test_exported_names() -> None:
    assert sorted(k8s_render.__all__) == sorted(
        [
            "ANCHOR_ROUTE_KEYS",
            "FETCH_MANIFEST_FORMAT",
            "FETCH_TOKEN_DIR",
            "KUBERNETES_VERSIONS",
            "TOKEN_KEYS_CONFIGMAP",
            "BuildOptions",
            "K8sObject",
            "K8sOptions",
            "ServiceKeys",
            "cpu_quantity",
            "dockerfile",
            "environment_image",
            "fetch_manifest",
            "fetch_manifest_digest",
            "memory_quantity",
            "progress_deadline_s",
            "render_anchor",
            "render_build",
            "render_build_context",
            "render_build_job",
            "render_deployment",
            "render_discovery_service",
            "render_fetch_token_secret",
            "render_keys_secret",
            "render_scale",
            "render_service",
            "render_token_keys",
            "route_json",
            "termination_grace_s",
        ]
    )
    assert all(hasattr(k8s_render, name) for name in k8s_render.__all__)
