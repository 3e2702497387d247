"""The init container of a Kubernetes replica: fetch the snapshot and the models by digest.

    python -m modelhost.runtime.fetch --artifact-url URL --manifest SHA256 --token-file PATH --app-root DIR

It runs in the model's environment image, which has modelhost's base layer only: standard library
here (``urllib``, ``zipfile``, ``hashlib``) plus :mod:`.layout`'s path rules. It reads the fetch
manifest (``k8s_render.fetch_manifest``) from ``<artifact-url>/api/v1/blobs/<sha256>`` with
``Authorization: Bearer <token>``, then the snapshot and each model file, hashing every download as
it is written and refusing a mismatch. The snapshot is unpacked into ``<app-root>/<source_dir>``,
models land at ``<app-root>/azureml-models/<name>/<version>/<path>`` (0444, 0555 when executable);
each file goes to a temporary name first and is renamed into place, and a marker written last
makes a second run (a recreated pod sandbox) a no-op. Connection errors, 429 and 5xx are retried
with backoff for ``--retry-for-s``; the exit code says what went wrong (see :data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from modelhost.errors import ValidationError
from modelhost.runtime.layout import MODELS_DIR, model_file_path

__all__ = ["EXIT_CODES", "FetchError", "Fetcher", "main"]

EXIT_CODES = {
    "usage": 2,
    "unauthorized": 10,  # 401/403: the token Secret is wrong or missing
    "not_found": 11,  # 404: a digest the artifact store does not hold
    "digest_mismatch": 12,  # the bytes do not hash to the digest asked for
    "unavailable": 13,  # connection errors, 429 or 5xx for longer than --retry-for-s
    "bad_manifest": 14,  # not a fetch manifest, or a path that leaves its folder
}
_MANIFEST_FORMAT = 1
_MANIFEST_MAX_BYTES = 64 << 20
_CHUNK = 1 << 20
_STATE_DIR = ".modelhost-fetch"  # temp files and the completion marker, inside the app root


class FetchError(Exception):
    """A failure with the exit code it maps to (a key of :data:`EXIT_CODES`)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Fetcher:
    """Downloads blobs by digest from the control plane's artifact API, verifying each."""

    artifact_url: str
    token: str = field(repr=False)  # a secret: never in a repr or a log line
    retry_for_s: float = 120.0
    timeout_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def download(self, digest: str, dest: Path) -> None:
        """Write blob ``digest`` to ``dest`` (created or replaced), retrying transient failures."""
        give_up_at = self.clock() + self.retry_for_s
        delay = 0.5
        while True:
            try:
                self._download_once(digest, dest)
                return
            except _Transient as exc:
                if self.clock() + delay > give_up_at:
                    raise FetchError(
                        "unavailable",
                        f"blob sha256:{digest} could not be fetched from {self.artifact_url} within "
                        f"{self.retry_for_s:g} s: {exc}",
                    ) from exc
                print(f"fetch: sha256:{digest[:12]}: {exc}; retrying in {delay:g} s", flush=True)
                self.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _download_once(self, digest: str, dest: Path) -> None:
        url = f"{self.artifact_url.rstrip('/')}/api/v1/blobs/{digest}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp, open(dest, "wb") as out:
                hasher = hashlib.sha256()
                while chunk := resp.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            raise _http_failure(exc, digest) from exc
        except (OSError, urllib.error.URLError) as exc:  # refused, reset, timed out mid-body
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if hasher.hexdigest() != digest:
            raise FetchError(
                "digest_mismatch",
                f"blob sha256:{digest} arrived with sha256 {hasher.hexdigest()}: refusing it",
            )


class _Transient(Exception):
    pass


def _http_failure(exc: urllib.error.HTTPError, digest: str) -> Exception:
    if exc.code in (401, 403):
        return FetchError(
            "unauthorized",
            f"the artifact API refused the fetch token ({exc.code}); check the Secret mounted at "
            "--token-file (K8sOptions.fetch_token_secret) holds the control plane's fetch token",
        )
    if exc.code == 404:
        return FetchError("not_found", f"the artifact store has no blob sha256:{digest} (404)")
    if exc.code == 429 or exc.code >= 500:
        return _Transient(f"HTTP {exc.code}")
    return FetchError("unavailable", f"the artifact API answered {exc.code} for sha256:{digest}")


def _sha256_of(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _read_manifest(fetcher: Fetcher, digest: str, tmp: Path) -> dict[str, Any]:
    path = tmp / f"manifest-{digest}"
    fetcher.download(digest, path)
    if path.stat().st_size > _MANIFEST_MAX_BYTES:
        raise FetchError("bad_manifest", f"blob sha256:{digest} is too large to be a fetch manifest")
    try:
        doc = json.loads(path.read_bytes())
    except ValueError as exc:
        raise FetchError("bad_manifest", f"blob sha256:{digest} is not a JSON fetch manifest") from exc
    if not isinstance(doc, dict) or doc.get("format") != _MANIFEST_FORMAT:
        raise FetchError("bad_manifest", f"blob sha256:{digest} is not a fetch manifest of format 1")
    return doc


def _extract(zip_path: Path, dest: Path) -> None:
    """Unpack a snapshot zip into ``dest``, restoring modes, refusing entries that leave it."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            rel = PurePosixPath(info.filename)
            if rel.is_absolute() or ".." in rel.parts:
                raise FetchError("bad_manifest", f"the snapshot holds an unsafe path {info.filename!r}")
            target = dest / rel
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            if mode := (info.external_attr >> 16) & 0o777:
                os.chmod(target, mode)


def _place_snapshot(fetcher: Fetcher, digest: str, source_dir: Path, tmp: Path) -> None:
    zip_path = tmp / f"snapshot-{digest}.zip"
    fetcher.download(digest, zip_path)
    staging = Path(tempfile.mkdtemp(prefix="src-", dir=tmp))
    _extract(zip_path, staging)
    if source_dir.exists():  # a half-written earlier attempt: replace it whole
        shutil.rmtree(source_dir)
    source_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, source_dir)
    zip_path.unlink()
    print(f"fetch: snapshot sha256:{digest[:12]} -> {source_dir}", flush=True)


def _place_model_file(fetcher: Fetcher, dest: Path, digest: str, executable: bool, tmp: Path) -> None:
    if _sha256_of(dest) == digest:
        print(f"fetch: {dest} already present", flush=True)
        return
    part = tmp / f"blob-{digest}"
    fetcher.download(digest, part)
    os.chmod(part, 0o555 if executable else 0o444)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, dest)
    print(f"fetch: sha256:{digest[:12]} -> {dest}", flush=True)


def _relative_dir(value: object) -> PurePosixPath:
    rel = PurePosixPath(str(value))
    if not isinstance(value, str) or not value or rel.is_absolute() or ".." in rel.parts:
        raise FetchError("bad_manifest", f"source_dir {value!r} is not a relative path")
    return rel


def fetch(fetcher: Fetcher, manifest: str, app_root: Path) -> None:
    """Lay the replica's app root out as the manifest says (idempotent)."""
    state = app_root / _STATE_DIR
    done = state / f"{manifest}.done"
    if done.exists():
        print(f"fetch: manifest sha256:{manifest[:12]} already fetched", flush=True)
        return
    state.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=state))
    try:
        doc = _read_manifest(fetcher, manifest, tmp)
        _place_snapshot(fetcher, str(doc["snapshot"]), app_root / _relative_dir(doc["source_dir"]), tmp)
        for model in doc.get("models", []):
            for f in model["files"]:
                try:
                    dest = model_file_path(app_root, model["name"], int(model["version"]), f["path"])
                except ValidationError as exc:
                    raise FetchError("bad_manifest", str(exc)) from exc
                _place_model_file(fetcher, dest, f["sha256"], bool(f.get("executable")), tmp)
        (app_root / MODELS_DIR).mkdir(exist_ok=True)
        (app_root / "outputs").mkdir(exist_ok=True)
        done.touch()
    except (KeyError, TypeError) as exc:
        raise FetchError("bad_manifest", f"the fetch manifest lacks or mistypes {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modelhost.runtime.fetch", description="Fetch a replica's snapshot and models."
    )
    parser.add_argument("--artifact-url", required=True, help="the control plane's URL as pods reach it")
    parser.add_argument("--manifest", required=True, help="sha256 of the fetch manifest blob")
    parser.add_argument("--token-file", required=True, type=Path, help="file holding the fetch token")
    parser.add_argument("--app-root", required=True, type=Path, help="the replica's app root")
    parser.add_argument("--retry-for-s", type=float, default=120.0, help="how long to retry transient errors")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    try:
        token = args.token_file.read_text().strip()
    except OSError as exc:
        print(f"fetch: cannot read the token file {args.token_file}: {exc.strerror}", file=sys.stderr)
        return EXIT_CODES["unauthorized"]
    if not token:
        print(f"fetch: the token file {args.token_file} is empty", file=sys.stderr)
        return EXIT_CODES["unauthorized"]
    fetcher = Fetcher(args.artifact_url, token, retry_for_s=args.retry_for_s)
    try:
        fetch(fetcher, args.manifest, args.app_root)
    except FetchError as exc:
        print(f"fetch: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CODES[exc.kind]
    return 0


if __name__ == "__main__":
    sys.exit(main())
