"""Find an environment's image in OCI registries (Distribution API), by tag, to run it by digest.

An environment's image is tagged with its content hash, ``<registry>/modelhost-env:<hash>``. Before a
deploy the control plane asks :func:`find_environment_image` along a chain of registries (the
cluster's own first, then a shared one): the first that holds the tag answers with the manifest's
digest and the runtime references ``<registry>/modelhost-env@sha256:<digest>`` (a tag can move, a
digest cannot); when none holds it the answer is :class:`NeedsBuild`.

One ``HEAD /v2/<repository>/manifests/<tag>`` per registry, accepting OCI and Docker v2 manifests
and indexes, reading ``Docker-Content-Digest``. Authentication: anonymous first; on 401 the
``WWW-Authenticate`` challenge says how: ``Basic`` (the credentials), or ``Bearer`` (a token from the
realm, with the credentials as Basic when given, as ``docker login`` does).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

from modelhost.errors import ModelhostError, ValidationError

__all__ = [
    "MANIFEST_TYPES",
    "ImageFound",
    "NeedsBuild",
    "Registry",
    "find_environment_image",
    "manifest_digest",
]

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
ENV_REPOSITORY = "modelhost-env"
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Registry:
    """A registry and path prefix (``host[:port][/path]``, as ``K8sOptions.registry``). ``insecure``:
    plain HTTP (default for localhost and 127.0.0.1, as Docker does)."""

    prefix: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # a secret
    insecure: bool | None = None

    @property
    def host(self) -> str:
        return self.prefix.split("/", 1)[0]

    @property
    def path(self) -> str:
        return self.prefix.split("/", 1)[1] if "/" in self.prefix else ""

    @property
    def base_url(self) -> str:
        local = self.host.split(":")[0] in ("localhost", "127.0.0.1")
        plain = self.insecure if self.insecure is not None else local
        return f"{'http' if plain else 'https'}://{self.host}"


@dataclass(frozen=True)
class ImageFound:
    """The image exists: ``reference`` is it by digest, in ``registry``."""

    reference: str
    registry: str
    digest: str


@dataclass(frozen=True)
class NeedsBuild:
    """No registry of the chain holds the tag: build and push ``tag_reference``."""

    tag_reference: str
    searched: tuple[str, ...]


def _basic(registry: Registry) -> str | None:
    if registry.username is None or registry.password is None:
        return None
    raw = f"{registry.username}:{registry.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _open(request: urllib.request.Request, timeout_s: float) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers.items()), b""


def _bearer_token(challenge: str, registry: Registry, timeout_s: float) -> str:
    params = dict(_CHALLENGE_RE.findall(challenge))
    realm = params.pop("realm", "")
    if not realm.startswith(("http://", "https://")):
        raise ModelhostError(
            f"registry {registry.host} asks for a token from an invalid realm {realm!r}",
            hint="Check the registry's token service configuration.",
        )
    url = realm + "?" + urllib.parse.urlencode(params)
    headers = {"Authorization": b} if (b := _basic(registry)) else {}
    status, _, body = _open(urllib.request.Request(url, headers=headers), timeout_s)
    if status != 200:
        raise ModelhostError(
            f"registry {registry.host}'s token service refused the request ({status})",
            hint="Check the registry credentials given for it.",
        )
    doc = json.loads(body)
    return str(doc.get("token") or doc.get("access_token") or "")


def manifest_digest(registry: Registry, repository: str, tag: str, *, timeout_s: float = 10.0) -> str | None:
    """The digest (``sha256:...``) of ``<repository>:<tag>`` in ``registry``, or None when absent.
    Raises ModelhostError when the registry cannot be asked (unreachable, refused credentials)."""
    url = f"{registry.base_url}/v2/{repository}/manifests/{tag}"
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    try:
        status, got, _ = _open(urllib.request.Request(url, headers=headers, method="HEAD"), timeout_s)
        challenge = {k.lower(): v for k, v in got.items()}.get("www-authenticate", "")
        if status == 401 and challenge:
            if challenge.lower().startswith("bearer"):
                headers["Authorization"] = "Bearer " + _bearer_token(challenge, registry, timeout_s)
            elif basic := _basic(registry):
                headers["Authorization"] = basic
            status, got, _ = _open(urllib.request.Request(url, headers=headers, method="HEAD"), timeout_s)
    except (OSError, ValueError) as exc:
        raise ModelhostError(
            f"cannot reach registry {registry.host}: {exc}",
            hint="Check the registry address and that this machine reaches it.",
        ) from exc
    if status == 404:
        return None
    if status in (401, 403):
        raise ModelhostError(
            f"registry {registry.host} refused to show {repository}:{tag} ({status})",
            hint="Give credentials that may pull from it.",
        )
    digest = {k.lower(): v for k, v in got.items()}.get("docker-content-digest", "")
    if status != 200 or not _DIGEST_RE.fullmatch(digest):
        raise ModelhostError(
            f"registry {registry.host} answered {status} without a manifest digest for {repository}:{tag}",
            hint="Use a registry that implements the OCI Distribution API.",
        )
    return digest


def find_environment_image(
    env_hash: str, chain: Sequence[Registry], *, timeout_s: float = 10.0
) -> ImageFound | NeedsBuild:
    """The environment's image by digest from the first registry of ``chain`` holding its tag,
    else :class:`NeedsBuild` naming the tag to push to the first registry."""
    if not re.fullmatch(r"[0-9a-f]{64}", env_hash):
        raise ValidationError(
            f"environment hash {env_hash!r} is not 64 hex digits", hint="Pass the environment's content hash."
        )
    if not chain:
        raise ValidationError(
            "no registry to look the image up in", hint="Name at least the cluster's registry."
        )
    for registry in chain:
        repository = f"{registry.path}/{ENV_REPOSITORY}".lstrip("/")
        digest = manifest_digest(registry, repository, env_hash, timeout_s=timeout_s)
        if digest is not None:
            return ImageFound(f"{registry.host}/{repository}@{digest}", registry.prefix, digest)
    first = chain[0]
    return NeedsBuild(f"{first.prefix}/{ENV_REPOSITORY}:{env_hash}", tuple(r.prefix for r in chain))
