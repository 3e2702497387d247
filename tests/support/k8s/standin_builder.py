"""A stand-in for kaniko's executor in the build Job's pod (stdlib only: it runs as a file).

kaniko needs a container runtime to run at all, and there is none here; the node agent runs this
script instead when a test registers the kaniko image reference to it (``LocalImages.register(...,
entrypoint=(python, this file))``). It takes kaniko's arguments (``--dockerfile``, ``--destination``,
``--insecure``...), reads the Dockerfile the build ConfigMap mounted, and pushes a real image to the
destination through the Distribution API: a config blob carrying the Dockerfile's ``LABEL``s (so the
stand-in kubelet can map the pushed digest back to the environment), one empty layer and an OCI
manifest under the tag. Nothing is installed: the "image" is the environment the test registered.

Test knobs (the image's environment, set at ``register``): ``STANDIN_BUILD_FAIL=<message>`` prints
``error building image: <message>`` and exits 1; ``STANDIN_BUILD_DELAY_S`` waits before pushing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import time
import urllib.parse
import urllib.request


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _open(request: urllib.request.Request) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as resp:
        return int(resp.status), str(resp.headers.get("Location") or "")


def _push_blob(base: str, repo: str, data: bytes) -> str:
    digest = _sha(data)
    _, location = _open(urllib.request.Request(f"{base}/v2/{repo}/blobs/uploads/", method="POST", data=b""))
    location = urllib.parse.urljoin(base, location)
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(
        f"{location}{sep}digest={digest}", data=data, method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    _open(put)
    return digest


def _labels(dockerfile: str) -> dict[str, str]:
    found = {}
    for line in dockerfile.splitlines():
        if line.startswith("LABEL "):
            for key, value in re.findall(r'([\w.-]+)="([^"]*)"', line):
                found[key] = value
    return found


def main(argv: list[str]) -> int:
    args = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    dockerfile = open(args.get("dockerfile", "/workspace/Dockerfile")).read()  # noqa: SIM115
    destination = args["destination"]
    base_line = next((ln for ln in dockerfile.splitlines() if ln.startswith("FROM ")), "FROM ?")
    print(f"INFO[0000] Retrieving image manifest {base_line[5:]} (stand-in: nothing is pulled)", flush=True)
    print(f"INFO[0000] Building {destination}", flush=True)
    if os.environ.get("STANDIN_BUILD_DELAY_S"):
        time.sleep(float(os.environ["STANDIN_BUILD_DELAY_S"]))
    if os.environ.get("STANDIN_BUILD_FAIL"):
        print(f"error building image: {os.environ['STANDIN_BUILD_FAIL']}", flush=True)
        return 1
    name, tag = destination.rsplit(":", 1)
    host, repo = name.split("/", 1)
    base = f"http://{host}"
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w"):
        pass
    layer = gzip.compress(tar.getvalue(), mtime=0)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [_sha(tar.getvalue())]},
        "config": {"Labels": _labels(dockerfile)},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _push_blob(base, repo, config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _push_blob(base, repo, layer), "size": len(layer)}],
    }).encode()
    _open(urllib.request.Request(
        f"{base}/v2/{repo}/manifests/{tag}", data=manifest, method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    ))
    print(f"INFO[0001] Pushed {name}@{_sha(manifest)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
