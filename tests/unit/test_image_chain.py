"""The image lookup chain's decisions and orchestration, the attach options that configure it, and the
Dockerfile a local build copies modelhost into. The registry answers are given as values (the chain's
lookups against a real registry are tests/k8s/test_oci.py and tests/k8s/test_image_chain.py); the
builder here records its calls, standing in for a Job or buildah."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from modelhost.errors import DeploymentFailedError, ModelhostError, ValidationError
from modelhost.runtime.image_chain import Build, EnvironmentImages, ImageSettings, Use, decide
from modelhost.runtime.k8s_render import BuildOptions, dockerfile
from modelhost.runtime.oci import ImageFound, NeedsBuild, Registry
from modelhost.spec.compute import parse_attach_request

H = "a" * 64
D = "sha256:" + "d" * 64
CLUSTER = Registry("reg.example/ml")
SHARED = Registry("shared.example/base")


@pytest.mark.parametrize(
    ("answer", "settings", "expected"),
    [
        (ImageFound(f"reg.example/ml/modelhost-env@{D}", "reg.example/ml", D), ImageSettings(CLUSTER),
         Use(f"reg.example/ml/modelhost-env@{D}",
             f"environment image reg.example/ml/modelhost-env@{D} found in reg.example/ml")),
        (ImageFound(f"shared.example/base/modelhost-env@{D}", "shared.example/base", D),
         ImageSettings(CLUSTER, SHARED),
         Use(f"shared.example/base/modelhost-env@{D}",
             f"environment image shared.example/base/modelhost-env@{D} found in shared.example/base "
             "(the shared registry: the nodes pull it from there)")),
        (NeedsBuild(f"reg.example/ml/modelhost-env:{H}", ("reg.example/ml", "shared.example/base")),
         ImageSettings(CLUSTER, SHARED, "kaniko"),
         Build(f"reg.example/ml/modelhost-env:{H}", "kaniko",
               "environment image not found in reg.example/ml, shared.example/base: building "
               f"reg.example/ml/modelhost-env:{H} in the cluster (a build Job)")),
        (NeedsBuild(f"reg.example/ml/modelhost-env:{H}", ("reg.example/ml",)),
         ImageSettings(CLUSTER, None, "local"),
         Build(f"reg.example/ml/modelhost-env:{H}", "local",
               f"environment image not found in reg.example/ml: building reg.example/ml/modelhost-env:{H} "
               "on this machine (buildah)")),
    ],
    ids=["cluster", "shared", "build-in-cluster", "build-locally"],
)
def test_decide(answer: ImageFound | NeedsBuild, settings: ImageSettings, expected: Use | Build) -> None:
    assert decide(answer, settings) == expected


def test_missing_image_without_builder_fails_with_the_fix() -> None:
    with pytest.raises(DeploymentFailedError) as err:
        decide(NeedsBuild(f"reg.example/ml/modelhost-env:{H}", ("reg.example/ml",)), ImageSettings(CLUSTER))
    assert "reg.example/ml" in err.value.message and "--builder" in str(err.value.hint)


class Recorder:
    """A builder that "pushes" by flipping what the fake lookup answers."""

    def __init__(self, pushed: dict[str, str], delay_s: float = 0.0) -> None:
        self.pushed, self.delay_s, self.calls = pushed, delay_s, []  # type: list[tuple[str, str | None]]

    def build(
        self, env_hash: str, requirements: Sequence[str], python: str | None, tag: str, log: object
    ) -> None:
        self.calls.append((tag, python))
        time.sleep(self.delay_s)
        self.pushed[env_hash] = D


def _images(pushed: dict[str, str], builder: Recorder, settings: ImageSettings) -> EnvironmentImages:
    def find(env_hash: str, chain: Sequence[Registry]) -> ImageFound | NeedsBuild:
        if env_hash in pushed:
            return ImageFound(f"{chain[0].prefix}/modelhost-env@{pushed[env_hash]}", chain[0].prefix, D)
        return NeedsBuild(f"{chain[0].prefix}/modelhost-env:{env_hash}", tuple(r.prefix for r in chain))

    return EnvironmentImages(settings, lambda _name: builder, find=find)


def test_ensure_builds_once_and_concurrent_deploys_share_the_build() -> None:
    pushed: dict[str, str] = {}
    builder = Recorder(pushed, delay_s=0.2)
    images = _images(pushed, builder, ImageSettings(CLUSTER, None, "kaniko"))
    results: list[str] = []
    logs: list[str] = []

    def deploy() -> None:
        results.append(images.ensure(H, ["numpy"], logs.append, python="3.12"))

    threads = [threading.Thread(target=deploy) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [f"reg.example/ml/modelhost-env@{D}"] * 3
    assert builder.calls == [(f"reg.example/ml/modelhost-env:{H}", "3.12")]
    assert sum("built and pushed" in line for line in logs) == 1
    found = [line for line in logs if line.startswith("environment image reg.example/ml/")]
    assert sum("found in" in line for line in found) == 2
    assert images.reference(H) == f"reg.example/ml/modelhost-env@{D}"


def test_a_build_that_pushes_nothing_is_an_error() -> None:
    builder = Recorder({})  # pushes into a dict the lookup never reads
    images = _images({}, builder, ImageSettings(CLUSTER, None, "kaniko"))
    with pytest.raises(DeploymentFailedError, match="does not hold the tag"):
        images.ensure(H, [], lambda _line: None)


def test_registry_errors_become_deploy_failures_naming_the_option() -> None:
    def find(env_hash: str, chain: Sequence[Registry]) -> ImageFound | NeedsBuild:
        raise ModelhostError("cannot reach registry reg.example: refused", hint="Check the registry address.")

    images = EnvironmentImages(ImageSettings(CLUSTER, None, "kaniko"), lambda _n: Recorder({}), find=find)
    with pytest.raises(DeploymentFailedError) as err:
        images.ensure(H, [], lambda _line: None)
    assert "cannot reach registry reg.example" in err.value.message and "--registry" in str(err.value.hint)


# -- attach options ---------------------------------------------------------------------------------


def _attach(**images: object) -> object:
    return parse_attach_request("kc", {"kubeconfig": "apiVersion: v1", **images})


def test_attach_image_options() -> None:
    req = _attach(registry="reg.example/ml", shared_registry="shared.example:5000/base", builder="local",
                  registry_insecure=True, registry_credentials={"username": "u", "password": "s3cret"})
    assert (req.shared_registry, req.builder, req.registry_insecure) == (  # type: ignore[attr-defined]
        "shared.example:5000/base", "local", True)
    assert req.registry_credentials == ("u", "s3cret")  # type: ignore[attr-defined]
    assert "s3cret" not in repr(req)
    plain = _attach()
    assert (plain.shared_registry, plain.builder) == (None, None)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("shared_registry", "https://x.example", "shared_registry must be null or a host"),
        ("builder", "docker", "builder must be null or one of kaniko, buildkit, local"),
        ("registry_insecure", "yes", "registry_insecure must be true or false"),
        ("registry_credentials", {"username": "u", "password": ""}, "registry_credentials must be null"),
    ],
    ids=["scheme", "builder", "insecure", "credentials"],
)
def test_attach_image_options_refused(field: str, value: object, words: str) -> None:
    with pytest.raises(ValidationError) as err:
        _attach(**{field: value})
    assert words in err.value.message
    assert "s3cret" not in err.value.message


# -- the Dockerfile of a local build ---------------------------------------------------------------------


def test_dockerfile_installs_modelhost_from_the_context_when_asked() -> None:
    text = dockerfile(H, ["numpy==1.26.4"], BuildOptions(base_image="localhost/base:1",
                                                         modelhost_source="modelhost-0.1-py3-none-any.whl"))
    assert "FROM localhost/base:1" in text
    wheel = "modelhost-0.1-py3-none-any.whl"
    assert f'COPY ["{wheel}", "/tmp/modelhost-src/{wheel}"]' in text
    assert '"/tmp/modelhost-src/modelhost-0.1-py3-none-any.whl", "numpy==1.26.4"]' in text
    assert "COPY" not in dockerfile(H, [], BuildOptions())
    with pytest.raises(ValidationError, match="modelhost_source"):
        dockerfile(H, [], BuildOptions(modelhost_source="../escape.whl"))
